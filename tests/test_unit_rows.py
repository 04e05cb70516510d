import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from recommender.model.unit_rows import unit_rows


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unit_rows_matches_scikit_learn_on_sparse_rows_with_empty_ones(dtype):
    rng = np.random.default_rng(3)
    matrix = sp.random(40, 30, density=0.1, random_state=4, format="csr", dtype=dtype)
    matrix = sp.vstack([sp.csr_matrix((2, 30), dtype=dtype), matrix, sp.csr_matrix((3, 30), dtype=dtype)]).tocsr()
    matrix.data -= rng.random(matrix.nnz).astype(dtype) * 0.5
    ours = unit_rows(matrix)
    assert sp.isspmatrix_csr(ours) and ours.dtype == dtype
    np.testing.assert_allclose(ours.toarray(), normalize(matrix).toarray(), rtol=1e-6)
    assert np.all(ours[:2].toarray() == 0) and np.all(ours[-3:].toarray() == 0)
    assert matrix.data.min() != ours.data.min()  # the input is left as it was


def test_unit_rows_matches_scikit_learn_on_dense_rows_and_integers():
    rng = np.random.default_rng(5)
    dense = rng.normal(size=(20, 7)).astype(np.float32)
    dense[4] = 0
    np.testing.assert_allclose(unit_rows(dense), normalize(dense), rtol=1e-6)
    assert unit_rows(dense).dtype == np.float32
    counts = sp.csr_matrix(np.array([[0, 3, 4], [0, 0, 0]]))
    np.testing.assert_allclose(unit_rows(counts).toarray(), [[0, 0.6, 0.8], [0, 0, 0]])


@pytest.mark.parametrize("rows_per_step", [1, 4, 7, 8192])
def test_scaling_in_steps_of_rows_gives_the_same_rows(monkeypatch, rows_per_step):
    monkeypatch.setattr("recommender.model.unit_rows.ROWS_PER_STEP", rows_per_step)
    matrix = sp.random(45, 30, density=0.15, random_state=8, format="csr")
    matrix = sp.vstack([matrix, sp.csr_matrix((3, 30))]).tocsr()
    np.testing.assert_allclose(unit_rows(matrix).toarray(), normalize(matrix).toarray(), rtol=1e-12)
