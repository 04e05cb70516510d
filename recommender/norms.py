"""Row L2 normalisation of sparse and dense matrices.

Our own few lines instead of ``sklearn.preprocessing.normalize``: importing scikit-learn costs
every command about a second of start-up, and ranking only ever needs this one operation.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def unit_rows(matrix):
    """``matrix`` with each row scaled to unit L2 norm (all-zero rows stay zero); sparse input
    gives a CSR matrix, dense input an array, both of the input's float type."""
    if sp.issparse(matrix):
        rows = sp.csr_matrix(matrix, copy=True)
        if not np.issubdtype(rows.dtype, np.floating):
            rows = rows.astype(np.float64)
        lengths = np.diff(rows.indptr)
        row_of_entry = np.repeat(np.arange(rows.shape[0]), lengths)
        norms = np.sqrt(np.bincount(row_of_entry, weights=np.square(rows.data, dtype=np.float64),
                                    minlength=rows.shape[0])).astype(rows.dtype)
        norms[norms == 0] = 1
        rows.data /= np.repeat(norms, lengths)
        return rows
    array = np.asarray(matrix)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[norms == 0] = 1
    return array / norms
