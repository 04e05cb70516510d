"""A reader's term classifier (term_ridge): the Woodbury solve over the corpus's term factors
gives the weights of the plain weighted ridge regression with an intercept, and a community
install's profiles carry it, scaled to the plain profile's spread."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import Ridge
from test_ranking import _install

from recommender import pipeline
from recommender.model import term_ridge
from recommender.model.profiles import profile_rows


def _corpus(seed: int) -> tuple[sp.csr_matrix, term_ridge.TermBasis]:
    """A small corpus and its basis from an exact SVD of full rank (so the Gram matrix is exact:
    what is left to test is the solve)."""
    matrix = sp.random(80, 40, density=0.15, random_state=seed, format="csr")
    _, values, components = np.linalg.svd(matrix.toarray(), full_matrices=False)
    return matrix, term_ridge.fit_basis(matrix, components, values, rank=40)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_readers_term_weights_are_the_weighted_ridge_regression_with_an_intercept(seed: int):
    matrix, basis = _corpus(seed)
    rng = np.random.default_rng(seed)
    papers = np.sort(rng.choice(80, 7, replace=False))
    pulls = np.array([1.0, 1.0, 1.0, 2.0, 0.25, -0.5, -2.0])  # stars, a "more", an "open", two "less"
    support, weights = term_ridge.weights(basis, matrix, papers, pulls, 1.5)
    # The same model written out: each of the 80 papers weighted and labelled, sklearn's solve.
    positive, n = pulls > 0, 80
    weight, label = np.full(n, n / (2 * (n - 5))), -np.ones(n)
    weight[papers] = np.where(positive, n / (2 * 5), n / (2 * (n - 5))) * np.maximum(1, np.abs(pulls))
    label[papers[positive]] = 1
    expected = Ridge(alpha=1.5).fit(matrix[:, support].toarray(), label, sample_weight=weight).coef_
    assert np.array_equal(support, np.unique(matrix[papers[positive]].indices))
    assert np.allclose(weights, expected, atol=1e-4 * np.abs(expected).max())


def test_readers_rows_keep_their_plain_terms_and_spread_and_few_stars_keep_the_sum():
    matrix, basis = _corpus(3)
    pull = sp.csr_matrix(np.array([[1.0 if p in (1, 5, 9, 30) else 0 for p in range(80)],
                                   [1.0 if p in (2, 3) else 0 for p in range(80)],  # two stars: too few
                                   [1.0 if p in (4, 6, 8) else 0 for p in range(80)]]))  # not wanted
    plain = sp.csr_matrix(pull @ matrix)
    plain = sp.csr_matrix(plain.multiply(1 / np.sqrt(plain.multiply(plain).sum(axis=1))))
    data, fitted = term_ridge.reweighed(basis, matrix, pull, plain, 1.0, np.array([True, True, False]))
    rows = sp.csr_matrix((data, plain.indices, plain.indptr), shape=plain.shape)
    assert fitted.tolist() == [True, False, False] and np.allclose(rows[1:].toarray(), plain[1:].toarray(), rtol=1e-6)
    # scaled so that its scores spread over the corpus's papers as the plain profile's do
    assert np.std((matrix @ rows[0].T).toarray()) == pytest.approx(np.std((matrix @ plain[0].T).toarray()), rel=1e-4)
    assert not np.allclose(rows[0].toarray(), plain[0].toarray(), atol=1e-3)


def test_a_community_install_weighs_its_readers_terms_by_their_classifier(tmp_path: Path):
    """In a community install the space keeps the term factors and a reader's term profile is
    their classifier, over the terms of the sum of their stars; `term_ridge = 0` gives the sum."""
    config, store, _ = _install(tmp_path, "crowd", 16, "auto", personal_max_users=12)
    try:
        models = pipeline.load_models(store, config)
        space = models.space
        assert models.collab is not None and space is not None and space.terms is not None
        assert space.terms.factors.shape[0] == models.text.matrix.shape[1]
        assert 0 < space.terms.factors.shape[1] <= term_ridge.TERM_FACTORS
        ranking = config.ranking
        pull = sp.csr_matrix(([1.0] * 4, ([0] * 4, [0, 1, 2, 3])), shape=(1, models.text.matrix.shape[0]))
        weighed, _ = profile_rows(models.text, models.collab, pull, [()], ranking, space)
        summed, _ = profile_rows(models.text, models.collab, pull, [()], replace(ranking, term_ridge=0.0), space)
        assert np.isclose(sp.linalg.norm(summed), 1.0) and set(weighed.indices) <= set(summed.indices)
        assert not np.allclose(weighed.toarray(), summed.toarray(), atol=1e-3)
        # a reader whose interests keywords join the profile keeps the sum
        with_interests, _ = profile_rows(models.text, models.collab, pull, [("transport",)], ranking, space)
        assert np.isclose(sp.linalg.norm(with_interests), 1.0)
    finally:
        store.close()
