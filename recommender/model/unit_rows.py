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
        return scale_to_unit_rows(rows)
    array = np.asarray(matrix)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[norms == 0] = 1
    return array / norms


ROWS_PER_STEP = 8192  # bounds the temporaries of scaling a large matrix (fresh pages are costly)


def scale_to_unit_rows(rows: sp.csr_matrix) -> sp.csr_matrix:
    """Scale a float CSR matrix's rows to unit L2 norm in place (all-zero rows stay zero)."""
    indptr = rows.indptr
    for first in range(0, rows.shape[0], ROWS_PER_STEP):
        last = min(first + ROWS_PER_STEP, rows.shape[0])
        data = rows.data[indptr[first]:indptr[last]]
        lengths = np.diff(indptr[first:last + 1])
        row_of_entry = np.repeat(np.arange(last - first), lengths)
        norms = np.sqrt(np.bincount(row_of_entry, weights=np.square(data, dtype=np.float64),
                                    minlength=last - first)).astype(rows.dtype)
        norms[norms == 0] = 1
        data /= norms[row_of_entry]
    return rows
