"""The fast score matrix (dense product for frequent terms + scatter for rare ones) equals the
plain sparse computation, on either path for the rare terms."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from recommender.scoring import PoolScorer


def zipf_rows(rng: np.random.Generator, n: int, vocabulary: int, terms: int) -> sp.csr_matrix:
    """Unit rows whose term frequencies follow a Zipf law, like paper abstracts."""
    weights = 1.0 / np.arange(1, vocabulary + 1) ** 1.1
    weights /= weights.sum()
    indptr, indices, data = [0], [], []
    for _ in range(n):
        row = np.unique(rng.choice(vocabulary, size=terms, p=weights))
        indices.extend(row.tolist())
        data.extend(rng.random(len(row)).tolist())
        indptr.append(len(indices))
    return normalize(sp.csr_matrix((data, indices, indptr), shape=(n, vocabulary)))


@pytest.mark.parametrize(("split", "compiled_min_work"), [(True, 0), (True, 10**12), (False, 0)],
                         ids=["compiled", "scipy", "unsplit"])
@pytest.mark.parametrize("with_readers", [True, False])
def test_scores_equal_the_plain_sparse_product(split, compiled_min_work, with_readers):
    rng = np.random.default_rng(3)
    candidates = zipf_rows(rng, 700, 5000, 60)
    profiles = zipf_rows(rng, 300, 5000, 150)
    profiles.data[profiles.indptr[7]:profiles.indptr[8]] = 0  # an empty profile
    profiles.eliminate_zeros()
    readers = normalize(rng.normal(size=(300, 16))).astype(np.float32) if with_readers else None
    reader_rows = normalize(rng.normal(size=(700, 16))).astype(np.float32) if with_readers else None
    weights = rng.random(300).astype(np.float32)
    scorer = PoolScorer(candidates, reader_rows, split=split, compiled_min_work=compiled_min_work)
    assert (0 < scorer.dense_slot.max() + 1 < 5000) == split  # both parts are in play when split

    got = scorer.scores(profiles, readers, weights)

    expected = (profiles @ candidates.T).toarray()
    if with_readers:
        expected += weights[:, None] * (readers.astype(np.float64) @ reader_rows.T.astype(np.float64))
    assert got.shape == (300, 700)
    np.testing.assert_allclose(got, expected, atol=2e-6)
    assert not got[7].any() or with_readers
    picked = np.argsort(-got, axis=1)[:, :5]
    parts = scorer.reader_part(readers, weights, picked)
    if with_readers:
        np.testing.assert_allclose(parts, np.take_along_axis(
            weights[:, None] * (readers @ reader_rows.T), picked, axis=1), atol=1e-6)
    else:
        assert not parts.any()


def test_a_pool_too_small_for_dense_terms_is_scored_sparsely():
    rng = np.random.default_rng(5)
    candidates = zipf_rows(rng, 20, 300, 30)
    profiles = zipf_rows(rng, 4, 300, 40)
    scorer = PoolScorer(candidates, None)
    assert scorer.dense_slot.max() == -1
    np.testing.assert_allclose(scorer.scores(profiles, None, np.zeros(4, np.float32)),
                               (profiles @ candidates.T).toarray(), atol=1e-6)
