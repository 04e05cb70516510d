"""Each reader's own ridge model over the dense features (reader_model): the shared system
solved once gives every reader the weights a plain weighted least-squares solve gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from test_ranking import _install

from recommender import pipeline
from recommender.model import reader_model
from recommender.pipeline.breakdown import explain


def _plain_solve(features: np.ndarray, papers: np.ndarray, pulls: np.ndarray, ridge: float) -> np.ndarray:
    """The same model written out: every paper weighted and labelled, one full system."""
    n = features.shape[0]
    rows = np.hstack([features.astype(np.float64), np.ones((n, 1))])
    positive = pulls > 0
    count = positive.sum()
    weight, label = np.ones(n), -np.ones(n)
    weight[papers] = np.where(positive, (n - count) / count * np.maximum(1, pulls), np.maximum(1, np.abs(pulls)))
    label[papers] = np.where(positive, 1, -1)
    system = rows.T @ (weight[:, None] * rows) + ridge * np.eye(rows.shape[1])
    w = np.linalg.solve(system, rows.T @ (weight * label))[:-1]
    return w / np.linalg.norm(w)


@pytest.mark.parametrize("papers", [4, 15, 40])  # fewer papers than features (Woodbury), and more
def test_a_readers_weights_are_those_of_the_full_weighted_system(papers: int):
    rng = np.random.default_rng(papers)
    features = rng.normal(size=(400, 24)).astype(np.float32)
    basis = reader_model.fit_basis(features, 3.0)
    chosen = np.sort(rng.choice(400, papers, replace=False))
    pulls = rng.choice([1.0, 2.0, -0.5], papers)
    pulls[:3] = 1.0  # at least three papers pulling towards the reader
    pull = sp.csr_matrix((pulls, (np.zeros(papers, dtype=int), chosen)), shape=(2, 400))  # the second reader: none
    weights, fitted = reader_model.weights(features, basis, pull)
    assert fitted.tolist() == [True, False] and not weights[1].any()
    assert np.allclose(weights[0], _plain_solve(features, chosen, pulls, 3.0), atol=1e-5)


def test_in_a_community_each_reader_also_gets_a_reader_model(tmp_path: Path):
    """Beside the reader factors, Ada's own model scores the topics she starred; the breakdown
    names both parts, and `reader_model_weight = 0` leaves the factors alone."""
    from dataclasses import replace

    config, store, batches = _install(tmp_path, "crowd", 16, "auto", personal_max_users=12)
    try:
        models = pipeline.load_models(store, config)
        assert models.collab is not None and models.space is not None and models.space.basis is not None
        picks = pipeline.recommend(config, store, [config.users[0]], batches)["ada@example.org"]
        assert picks[0].paper.id.startswith(("newtransport", "newproteins"))
        breakdown = explain(config, store, config.users[0], picks[0].paper.id)
        assert breakdown["collaborative"] != 0 and breakdown["topics"] > 0
        assert breakdown["score"] == pytest.approx(breakdown["content"] + breakdown["collaborative"] + breakdown["topics"]
                                                   + breakdown["interests"], abs=1e-5)
        # The space also weighs Ada's terms (term_ridge): with the plain sum of her papers' terms,
        # the reader model and the factors are the same and only the content part moves.
        summed = replace(config, ranking=replace(config.ranking, term_ridge=0.0))
        with_sum = explain(summed, store, config.users[0], picks[0].paper.id)
        assert with_sum["content"] != pytest.approx(breakdown["content"], abs=1e-4)
        assert (with_sum["topics"], with_sum["collaborative"]) == pytest.approx((breakdown["topics"],
                                                                                 breakdown["collaborative"]), abs=1e-6)
        plain = replace(summed, ranking=replace(summed.ranking, reader_model_weight=0.0))
        assert pipeline.load_models(store, plain).space is None
        without = explain(plain, store, config.users[0], picks[0].paper.id)
        assert without["topics"] == 0 and without["collaborative"] == pytest.approx(breakdown["collaborative"], abs=1e-6)
        assert without["score"] == pytest.approx(with_sum["score"] - with_sum["topics"], abs=1e-5)
    finally:
        store.close()
