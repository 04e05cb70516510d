"""The fast score matrix (dense product for frequent terms + scatter for rare ones) equals the
plain sparse computation, on either path for the rare terms."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from recommender.model.scoring import PoolScorer


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
@pytest.mark.parametrize("profile_aware", [True, False], ids=["dense-by-work", "dense-by-share"])
def test_scores_equal_the_plain_sparse_product(split, compiled_min_work, with_readers, profile_aware):
    rng = np.random.default_rng(3)
    candidates = zipf_rows(rng, 700, 5000, 60)
    profiles = zipf_rows(rng, 300, 5000, 150)
    profiles.data[profiles.indptr[7]:profiles.indptr[8]] = 0  # an empty profile
    profiles.eliminate_zeros()
    readers = normalize(rng.normal(size=(300, 16))).astype(np.float32) if with_readers else None
    reader_rows = normalize(rng.normal(size=(700, 16))).astype(np.float32) if with_readers else None
    weights = rng.random(300).astype(np.float32)
    scorer = PoolScorer(candidates, reader_rows, split=split, compiled_min_work=compiled_min_work,
                        profiles=profiles if profile_aware else None)
    # both parts are in play when split; unsplit, no dense terms (and no slot table) at all
    assert (scorer.dense_slot is not None and 0 < scorer.dense_slot.max() + 1 < 5000) == split

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
    assert scorer.dense_slot is None
    np.testing.assert_allclose(scorer.scores(profiles, None, np.zeros(4, np.float32)),
                               (profiles @ candidates.T).toarray(), atol=1e-6)


@pytest.mark.parametrize("min_work", [0, 10**12], ids=["compiled", "plain"])
def test_block_dots_and_shared_terms_match_numpy(min_work):
    from recommender.model import sparse_loops

    rng = np.random.default_rng(11)
    matrix = zipf_rows(rng, 60, 800, 40)
    matrix.sort_indices()
    blocks = [(rng.choice(60, size=int(rng.integers(1, 6)), replace=False), rng.choice(60, size=int(rng.integers(1, 4)),
                                                                                     replace=False)) for _ in range(7)]
    sizes = [len(a) * len(b) for a, b in blocks]
    out, head = np.zeros(sum(sizes)), np.full(800, -1, dtype=np.int64)
    offsets = lambda lengths: np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)  # noqa: E731
    sparse_loops.run(sparse_loops.block_dots, 0, matrix.indptr, matrix.indices, matrix.data, offsets(sizes),
                np.concatenate([a for a, _ in blocks]).astype(np.int64), offsets([len(a) for a, _ in blocks]),
                np.concatenate([b for _, b in blocks]).astype(np.int64), offsets([len(b) for _, b in blocks]),
                head, out, min_work=min_work)
    assert (head == -1).all()  # left as found, for the next call
    dense = matrix.toarray()
    expected = np.concatenate([(dense[a] @ dense[b].T).ravel() for a, b in blocks])
    np.testing.assert_allclose(out, expected, atol=1e-12)

    def plain_dot(first: int, second: int) -> float:  # the products added in the first row's term order
        row = dict(zip(matrix[second].indices.tolist(), matrix[second].data.tolist(), strict=True))
        total = 0.0
        for term, weight in zip(matrix[first].indices.tolist(), matrix[first].data.tolist(), strict=True):
            total += weight * row.get(term, 0.0)
        return total

    assert out.tolist() == [plain_dot(i, j) for a, b in blocks for i in a for j in b]  # bit for bit

    first, second = rng.choice(60, size=30).astype(np.int64), rng.choice(60, size=30).astype(np.int64)
    terms, values = np.zeros((30, 3), dtype=np.int64), np.zeros((30, 3))
    sparse_loops.run(sparse_loops.pair_top_terms, 0, matrix.indptr, matrix.indices, matrix.data, first, second, terms, values,
                min_work=min_work)
    for n in range(30):
        products = dense[first[n]] * dense[second[n]]
        best = [int(t) for t in np.lexsort((np.arange(800), -products))[:3] if products[t] > 0]
        assert terms[n][terms[n] >= 0].tolist() == best
        np.testing.assert_allclose(values[n, :len(best)], products[best])


@pytest.mark.parametrize("min_work", [0, 10**12], ids=["compiled", "plain"])
def test_block_top_two_equals_sorting_each_block_s_columns(min_work):
    from recommender.model import sparse_loops

    rng = np.random.default_rng(12)
    shapes = [(int(rng.integers(1, 7)), int(rng.integers(1, 5))) for _ in range(40)]  # (firsts, seconds) a block
    sims = np.concatenate([rng.choice([-0.5, 0.0, 0.25, 0.5, 0.75], size=f * s) for f, s in shapes])  # many ties
    ranks = rng.permutation(sum(f for f, _ in shapes)).astype(np.int64)
    offsets = lambda lengths: np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)  # noqa: E731
    first_ptr, second_ptr = offsets([f for f, _ in shapes]), offsets([s for _, s in shapes])
    top, values = np.full((second_ptr[-1], 2), 7, dtype=np.int64), np.full((second_ptr[-1], 2), 7.0)
    sparse_loops.run(sparse_loops.block_top_two, 0, offsets([f * s for f, s in shapes]), first_ptr, second_ptr, ranks,
                     sims, top, values, min_work=min_work)
    at = 0
    for b, (f, s) in enumerate(shapes):
        block = sims[at:at + f * s].reshape(f, s)
        at += f * s
        own_ranks = ranks[first_ptr[b]:first_ptr[b + 1]]
        for n in range(s):  # highest value first, then lowest rank; only positive values
            best = [j for j in np.lexsort((own_ranks, -block[:, n]))[:2] if block[j, n] > 0]
            expected = [first_ptr[b] + j for j in best] + [-1] * (2 - len(best))
            assert top[second_ptr[b] + n].tolist() == expected
            assert values[second_ptr[b] + n, :len(best)].tolist() == block[best, n].tolist()


def test_dense_terms_are_chosen_by_the_scatter_work_they_would_cost():
    rng = np.random.default_rng(8)
    candidates = zipf_rows(rng, 2000, 3000, 60)
    profiles = zipf_rows(rng, 200, 3000, 100)
    frequency = np.bincount(candidates.indices, minlength=3000)
    profiles.data[profiles.indices == np.argmax(frequency)] = 0  # the commonest term: in no profile
    profiles.eliminate_zeros()
    share = np.bincount(profiles.indices, minlength=3000) / 200
    dense = PoolScorer(candidates, None, profiles=profiles).dense_slot >= 0
    # A term many candidates hold but no profile uses stays out of the dense product, and the
    # choice follows frequency x share, not frequency alone.
    unused = (share == 0) & (frequency >= 64)
    assert unused.any() and not dense[unused].any()
    assert np.array_equal(dense, (frequency >= 64) & (frequency * share >= 0.02 * 2000))
    assert dense.any() and (~dense & (frequency >= 64)).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_compiled_selection_equals_a_stable_descending_sort(dtype):
    from recommender.model import sparse_loops
    from recommender.model.ranking import COMPILED_SELECTION_FROM, best_columns

    rng = np.random.default_rng(4)
    keys = rng.integers(0, 40, size=(COMPILED_SELECTION_FROM // 300 + 1, 300)).astype(dtype)  # many ties
    keys[keys == 7] = -np.inf  # blocked papers
    keys[0] = -np.inf  # a row with nothing left
    for k in (1, 20, 300):
        expected = np.argsort(-keys, axis=1, kind="stable")[:, :k]
        assert np.array_equal(best_columns(keys, k), expected)  # compiled (large)
        assert np.array_equal(best_columns(keys[:3], k), expected[:3])  # sorted (small)
        plain = np.empty((3, k), dtype=np.int64)
        sparse_loops.top_columns(keys[:3], k, plain)  # the same kernel uncompiled
        assert np.array_equal(plain, expected[:3])


def test_few_profiles_score_the_same_against_dense_or_sparse_columns(monkeypatch: pytest.MonkeyPatch):
    import recommender.model.scoring as scoring

    rng = np.random.default_rng(11)
    candidates = zipf_rows(rng, 900, 4000, 60)
    profiles = zipf_rows(rng, 5, 4000, 300).astype(np.float32)
    scorer = PoolScorer(candidates, None, split=False)
    dense = scorer.scores(profiles, None, np.zeros(5, dtype=np.float32))
    monkeypatch.setattr(scoring, "DENSE_PROFILES_MAX_VALUES", 0)
    sparse = scorer.scores(profiles, None, np.zeros(5, dtype=np.float32))
    np.testing.assert_array_equal(dense, sparse)  # the same sums, bit for bit
    np.testing.assert_allclose(dense, (profiles @ candidates.T).toarray(), atol=2e-6)
    assert (dense > 0).sum() > 1000
