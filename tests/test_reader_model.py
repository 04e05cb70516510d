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


@pytest.mark.parametrize("papers", [6, 40, 300])  # Woodbury, and (with the groups) more rows than features
def test_a_refit_against_the_nearest_groups_is_the_full_system_with_those_groups_as_heavier_negatives(papers: int):
    rng = np.random.default_rng(papers)
    features = rng.normal(size=(600, 80)).astype(np.float32)  # 6 or 40 papers and 30 groups: Woodbury; 300: whole
    factors = rng.normal(size=(600, 8)).astype(np.float32)
    older = np.arange(100, 600)  # the first 100: the newest batch, in no group
    basis = reader_model.fit_basis(features, 3.0)
    near = reader_model.fit_near(features, factors, older, basis, 60)
    assert near is not None and near.sizes.sum() == 500 and len(near.sizes) == 60
    basis.near = near
    chosen = np.sort(rng.choice(600, papers, replace=False))
    pulls = np.ones(papers)
    pull = sp.csr_matrix((pulls, (np.zeros(papers, dtype=int), chosen)), shape=(1, 600))
    reader_factors = rng.normal(size=(1, 8))
    weights, fitted = reader_model.weights(features, basis, pull, reader_factors, 0.7)
    first = _plain_solve(features, chosen, pulls, 3.0)
    assert np.allclose(reader_model.weights(features, basis, pull)[0][0], first, atol=1e-5)  # no factors: no refit
    top = np.argsort(-(near.factors @ reader_factors[0] + 0.7 * near.rows[:, :-1] @ first))[:reader_model.NEAR_COUNT]
    # The same model written out: every paper, the reader's papers, and the groups as rows.
    n = features.shape[0]
    rows = np.vstack([np.hstack([features.astype(np.float64), np.ones((n, 1))]), near.rows[top]])
    weight, label = np.r_[np.ones(n), near.sizes[top] * (reader_model.NEAR_WEIGHT - 1)], -np.ones(n + len(top))
    weight[chosen], label[chosen] = (n - papers) / papers, 1
    w = np.linalg.solve(rows.T @ (weight[:, None] * rows) + 3.0 * np.eye(81), rows.T @ (weight * label))[:-1]
    assert fitted.tolist() == [True]
    assert np.allclose(weights[0] / np.linalg.norm(weights[0]), w / np.linalg.norm(w), atol=1e-5)
    # and its spread over the corpus NEAR_SCALE times the first fit's
    spread = np.sqrt(weights[0] @ near.covariance @ weights[0]) / np.sqrt(first @ near.covariance @ first)
    assert spread == pytest.approx(reader_model.NEAR_SCALE, rel=1e-4)


@pytest.mark.parametrize("abstracts", [True, False])
def test_near_groups_are_the_older_papers_and_only_where_papers_have_abstracts(tmp_path: Path, abstracts: bool):
    """The groups hold the papers before the newest batch (the candidates are no negatives); on
    titles alone there are none (they cost CiteULike-a's titles recall), and either way Ada's
    transport papers rank first."""
    config, store, batches = _install(tmp_path, "crowd", 16, "auto", personal_max_users=12, abstracts=abstracts,
                                      ranking="reader_model_near_groups = 4\n")
    try:
        models = pipeline.load_models(store, config)
        assert models.space is not None and models.space.basis is not None
        near = models.space.basis.near
        if abstracts:
            assert near is not None and len(near.sizes) == 4 and near.sizes.sum() == 24  # the 24 old papers
            again = pipeline.load_models(store, config).space
            assert again is not None and again.basis is not None and again.basis.near is not None
            assert np.array_equal(again.basis.near.rows, near.rows)  # cached, not fit again
        else:
            assert near is None
        with store.read() as conn:  # kept as "no groups" either way: no later command seeks them again
            assert conn.exec_driver_sql("SELECT count(*) FROM model_cache WHERE kind = 'near'").scalar() == 1
        picks = pipeline.recommend(config, store, [config.users[0]], batches)["ada@example.org"]
        assert picks[0].paper.id.startswith("newtransport")
    finally:
        store.close()


def test_near_groups_of_a_large_corpus_are_those_of_a_sample_standing_for_every_older_paper():
    rng = np.random.default_rng(7)
    papers = reader_model.NEAR_SAMPLE + 5_000
    features = (rng.normal(size=(papers, 6)) + 3.0).astype(np.float32)
    factors = rng.normal(size=(papers, 3)).astype(np.float32)
    basis = reader_model.fit_basis(features, 3.0)
    near = reader_model.fit_near(features, factors, np.arange(papers), basis, 40)
    assert near is not None and near.sizes.sum() == pytest.approx(papers)
    # each group's row is the mean of its papers: weighted by their counts, the corpus's mean
    mean = (near.sizes[:, None] * near.rows[:, :-1]).sum(axis=0) / near.sizes.sum()
    assert np.allclose(mean, features.mean(axis=0), atol=0.02) and np.all(near.rows[:, -1] == 1)
