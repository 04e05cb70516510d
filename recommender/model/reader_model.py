"""Each reader's own linear model over the corpus's dense features, cheap enough for every
reader of a large install.

A reader's model is a class-balanced ridge classifier (regularized least squares, labels +1
for the papers they starred or clicked towards, -1 for every other paper and for "less like
this") over each paper's dense features, the LSA coordinates and word-vector sum of
``own_classifier.fit_space`` and a constant. Its weights, cut to unit length, are a vector of
``personal_dims + word_dims`` floats (320 float32: 1.3 KB) that ranking scores against the
candidates' features beside the content score and the reader factors (``reader_model_weight``).

Every reader's system shares the corpus's part: with X the papers' features, the reader's
matrix is ``B + X_u' D X_u``, where ``B = X'X + ridge I`` is the same for all and the reader's
few papers ``X_u`` change it by their extra weights ``D``. ``fit_basis`` solves the shared part
once per corpus (``X B^-1``: one more float32 copy of the features); a reader then costs a
system as small as their number of papers (Woodbury), well under a millisecond for a few dozen
stars, or, when they have more papers than there are features, one system of the features'
size. Measured on CiteULike DEV readers (bench/RESULTS.md): with everyone's stars it ranks
above the reader factors alone and above each reader's own SVM (``own_classifier``), which
costs 0.3-0.5 s a reader.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

log = logging.getLogger(__name__)
MIN_POSITIVES = 3  # fewer papers pulling towards the reader: no model (the reader factors and terms rank alone)


@dataclass
class ReaderBasis:
    """The corpus's share of every reader's ridge system, solved once: ``solved`` is
    ``[X 1] B^-1`` (papers x dims + 1, float32), ``offset`` is ``B^-1`` times the sum of the
    rows of ``[X 1]``, ``system`` is ``B`` itself (for readers with more papers than dims)."""

    solved: np.ndarray
    offset: np.ndarray
    system: np.ndarray


def _with_constant(rows: np.ndarray) -> np.ndarray:
    return np.hstack([rows.astype(np.float64), np.ones((rows.shape[0], 1))])


def fit_basis(features: np.ndarray, ridge: float) -> ReaderBasis:
    """The shared part of every reader's system over ``features`` (papers x dims)."""
    started = time.perf_counter()
    rows = _with_constant(features)
    system = rows.T @ rows + ridge * np.eye(rows.shape[1])
    inverse = np.linalg.inv(system)
    basis = ReaderBasis((rows @ inverse).astype(np.float32), inverse @ rows.sum(axis=0), system)
    log.info("reader models' shared system: %d papers x %d features in %.1f s", *features.shape,
             time.perf_counter() - started)
    return basis


def weights(features: np.ndarray, basis: ReaderBasis, pull: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Each reader's unit weights over ``features`` (users x dims, float32) from a users x
    papers matrix of pulls, and which readers got a model (at least MIN_POSITIVES papers
    pulling towards them; the others' rows are zero)."""
    out = np.zeros((pull.shape[0], features.shape[1]), dtype=np.float32)
    fitted = np.zeros(pull.shape[0], dtype=bool)
    started = time.perf_counter()
    # Single-threaded BLAS: each system is small, and threads waking for one cost more than it
    # (0.25 against 18 ms a reader on a busy 2-core machine).
    with threadpool_limits(limits=1, user_api="blas"):
        for user in range(pull.shape[0]):
            _fit_one(features, basis, pull, user, out, fitted)
    if fitted.any():
        log.info("fitted %d reader models in %.2f s", int(fitted.sum()), time.perf_counter() - started)
    return out, fitted


def _fit_one(features: np.ndarray, basis: ReaderBasis, pull: sp.csr_matrix, user: int, out: np.ndarray,
             fitted: np.ndarray) -> None:
    """Row ``user`` of ``out`` (and ``fitted``): that reader's unit weights, when they have a model."""
    start, end = pull.indptr[user], pull.indptr[user + 1]
    papers, pulls = pull.indices[start:end], pull.data[start:end].astype(np.float64)
    positive = pulls > 0
    count = int(positive.sum())
    if count < MIN_POSITIVES or count >= features.shape[0]:
        return
    w = _solve(features, basis, papers, pulls, positive, count)[:features.shape[1]]
    norm = float(np.linalg.norm(w))
    if norm:
        out[user] = w / norm
        fitted[user] = True


def _solve(features: np.ndarray, basis: ReaderBasis, papers: np.ndarray, pulls: np.ndarray, positive: np.ndarray,
           count: int) -> np.ndarray:
    """One reader's ridge weights (with the constant's last). Classes balanced: the positives
    together weigh as much as all other papers, a strong pull (a "more") counts more, a "less"
    is a negative weighted by its push."""
    n_papers = basis.solved.shape[0]
    balance = (n_papers - count) / count
    weight = np.where(positive, balance * np.maximum(1.0, pulls), np.maximum(1.0, np.abs(pulls)))
    label = np.where(positive, 1.0, -1.0)
    extra = weight - 1.0  # beyond the weight 1 every paper has as a negative
    rows = _with_constant(features[papers])
    if len(papers) >= rows.shape[1]:  # more papers than features: one system of the features' size
        system = basis.system + rows.T @ (extra[:, None] * rows)
        # The right side: every paper's -1 (the rows' sum is B times the offset), then each
        # of the reader's papers' own label and weight.
        total = rows.T @ (weight * label + 1.0) - basis.system @ basis.offset
        return np.linalg.solve(system, total)
    solved = basis.solved[papers].astype(np.float64)  # the reader's rows of X B^-1
    plain = solved.T @ (weight * label + 1.0) - basis.offset  # B^-1 b
    inner = np.eye(len(papers)) + extra[:, None] * (rows @ solved.T)
    return plain - solved.T @ np.linalg.solve(inner, extra * (rows @ plain))
