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
size. Where papers have abstracts, each model is then refit once against the groups of older
papers nearest the reader (``NearGroups``: the papers an SVM's margin counts), 30 rows more.
Measured on CiteULike DEV readers (bench/RESULTS.md): with everyone's stars it ranks above the
reader factors alone and above each reader's own SVM (``own_classifier``), which costs 0.3-0.5 s
a reader.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

log = logging.getLogger(__name__)
MIN_POSITIVES = 3  # fewer papers pulling towards the reader: no model (the reader factors and terms rank alone)


NEAR_COUNT = 30  # the groups nearest a reader's first model that it is refit against
NEAR_WEIGHT = 5.0  # how many negatives each of their papers then counts as
NEAR_SCALE = 1.5  # the refit model's scores spread this much wider than the first's
NEAR_CHUNK = 256  # readers whose groups are ranked together
NEAR_SAMPLE = 25_000  # older papers grouped at most (a corpus's size does not change the groups' cost)


@dataclass
class NearGroups:
    """The older papers in groups of like features (k-means over their text-predicted reader
    factors beside their dense features), each group one row ``[mean 1]`` of the dense
    features (``rows``, and ``solved``: ``rows B^-1``) standing for its ``sizes`` papers, and
    its mean factors. A reader's model is refit with the ``NEAR_COUNT`` groups their first
    ranking (factors and first model) scores highest as heavier negatives: the papers a hinge
    loss (the SVM a reader alone gets) counts are those near the boundary, and a squared loss
    that weighs them more ranks like it, at the cost of a few more rows in the reader's
    system, whatever the corpus's size (bench/RESULTS.md)."""

    rows: np.ndarray
    solved: np.ndarray
    sizes: np.ndarray
    factors: np.ndarray  # groups x factors
    covariance: np.ndarray  # the dense features' covariance: a model's score spread over the corpus
    products: np.ndarray  # rows @ solved.T (groups x groups: 8 MB for 1,024)


@dataclass
class ReaderBasis:
    """The corpus's share of every reader's ridge system, solved once: ``solved`` is
    ``[X 1] B^-1`` (papers x dims + 1, float32), ``offset`` is ``B^-1`` times the sum of the
    rows of ``[X 1]``, ``system`` is ``B`` itself (for readers with more papers than dims)."""

    solved: np.ndarray
    offset: np.ndarray
    system: np.ndarray
    near: NearGroups | None = None


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


def fit_near(features: np.ndarray, factors: np.ndarray, older: np.ndarray, basis: ReaderBasis,
             groups: int) -> NearGroups | None:
    """The ``older`` papers' (rows: those readers have seen, not the newest batch's) ``NearGroups``
    by their ``factors`` beside their ``features``; None when there are too few of them."""
    if groups <= 0 or len(older) <= groups:
        return None
    papers = len(older)
    # Imported here: only fitting needs it, and it costs every command's start-up.
    from sklearn.cluster import MiniBatchKMeans

    started = time.perf_counter()
    if len(older) > NEAR_SAMPLE:  # groups of a sample, each standing for its share of them all
        older = np.sort(np.random.default_rng(0).choice(older, NEAR_SAMPLE, replace=False))
    dense = features[older].astype(np.float64)
    together = np.hstack([factors[older], dense]).astype(np.float32)
    # k-means++ started from 2,048 papers, once: 4.5 s of 21,000 papers where sklearn's defaults
    # took 107 s, and on CiteULike-t R@50 +0.0045 over 750 readers (random starts: +0.0018).
    labels = MiniBatchKMeans(groups, init_size=2048, n_init=1, random_state=0, batch_size=4096).fit(together).labels_
    counts = np.bincount(labels, minlength=groups)
    means = np.zeros((groups, together.shape[1]))
    np.add.at(means, labels, together.astype(np.float64))
    kept = counts > 0
    means = means[kept] / counts[kept, None]
    rows = _with_constant(means[:, factors.shape[1]:])
    log.info("reader models' near groups: %d older papers in %d groups in %.1f s", papers, int(kept.sum()),
             time.perf_counter() - started)
    solved = rows @ np.linalg.inv(basis.system)
    return NearGroups(rows, solved, counts[kept] * (papers / len(older)), means[:, :factors.shape[1]],
                      np.cov(dense, rowvar=False), rows @ solved.T)


def no_near_groups(dims: int, factors: int) -> NearGroups:
    """Near groups of no papers (kept where there are none, so that they are not sought again)."""
    return NearGroups(np.zeros((0, dims + 1)), np.zeros((0, dims + 1)), np.zeros(0), np.zeros((0, factors)),
                      np.zeros((dims, dims)), np.zeros((0, 0)))


def weights(features: np.ndarray, basis: ReaderBasis, pull: sp.csr_matrix, factors: np.ndarray | None = None,
            model_share: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Each reader's weights over ``features`` (users x dims, float32) from a users x papers
    matrix of pulls, and which readers got a model (at least MIN_POSITIVES papers pulling
    towards them; the others' rows are zero). Unit weights; with the basis's near groups and
    the readers' ``factors`` (users x factors, their unit reader factors, which ranking weighs
    1 to the model's ``model_share``), each refit against the groups that rank highest for them
    and scaled to ``NEAR_SCALE`` times the unit first fit's spread."""
    out = np.zeros((pull.shape[0], features.shape[1]), dtype=np.float32)
    fitted = np.zeros(pull.shape[0], dtype=bool)
    near = basis.near if factors is not None else None  # (stored_models attaches no empty groups)
    if near is not None:  # (contiguous float32 copies: the groups are ranked a chunk of readers at a time)
        group_factors, group_features = (np.ascontiguousarray(m.T, dtype=np.float32) for m in (near.factors,
                                                                                               near.rows[:, :-1]))
    started = time.perf_counter()
    # Single-threaded BLAS: each system is small, and threads waking for one cost more than it
    # (0.25 against 18 ms a reader on a busy 2-core machine).
    with threadpool_limits(limits=1, user_api="blas"):
        for begin in range(0, pull.shape[0], NEAR_CHUNK):
            readers = {}  # user -> their rows of the system, for the refit
            for user in range(begin, min(begin + NEAR_CHUNK, pull.shape[0])):
                start, end = pull.indptr[user], pull.indptr[user + 1]
                papers, pulls = pull.indices[start:end], pull.data[start:end].astype(np.float64)
                positive = pulls > 0
                count = int(positive.sum())
                if count < MIN_POSITIVES or count >= features.shape[0]:
                    continue
                reader = _reader_rows(features, basis, papers, pulls, positive, count)
                w = _solve(basis, *reader)[:-1]
                norm = float(np.linalg.norm(w))
                if norm:
                    out[user], fitted[user] = w / norm, True
                    readers[user] = reader
            if near is not None and factors is not None and readers:
                # Ranked as ranking would (factors, then the first model), for a chunk at once:
                # one matrix product, not a product per reader (0.09 ms a reader).
                chosen = np.fromiter(readers, dtype=np.int64, count=len(readers))
                ranked = factors[chosen] @ group_factors + model_share * (out[chosen] @ group_features)
                count = min(NEAR_COUNT, ranked.shape[1])
                refit = np.stack([_refit_near(basis, near, readers[user], top) for user, top in
                                  zip(chosen.tolist(), np.argpartition(-ranked, count - 1, axis=1)[:, :count],
                                      strict=True)])
                # Each scaled to NEAR_SCALE times its first fit's spread over the corpus (the
                # features' covariance), for the chunk at once.
                first = out[chosen].astype(np.float64)
                spreads = [np.einsum("ij,ij->i", w @ near.covariance, w) for w in (first, refit)]
                scale = NEAR_SCALE * np.sqrt(spreads[0] / np.where(spreads[1] > 0, spreads[1], np.inf))
                out[chosen] = np.where(scale[:, None] > 0, scale[:, None] * refit, first)
    if fitted.any():
        log.info("fitted %d reader models in %.2f s", int(fitted.sum()), time.perf_counter() - started)
    return out, fitted


def _refit_near(basis: ReaderBasis, near: NearGroups, reader: Reader, top: np.ndarray) -> np.ndarray:
    """The reader's model refit with the groups ``top`` as heavier negatives (unscaled)."""
    push = near.sizes[top] * (NEAR_WEIGHT - 1.0)
    group_rows, group_solved = near.rows[top], near.solved[top]
    papers, total = len(reader.rows), len(reader.rows) + len(top)
    extra, right = np.concatenate([reader.extra, push]), np.concatenate([reader.right, -push])
    if reader.products is None or total >= reader.rows.shape[1]:
        return _solve(basis, np.vstack([reader.rows, group_rows]), np.vstack([reader.solved, group_solved]), extra,
                      right)[:-1]
    # _solve's Woodbury step, its blocks kept apart (no copies of the rows: 0.1 ms of a reader's
    # 1 ms): the reader's block of the products is the first solve's, the groups' with each other
    # the basis's, and (B^-1 symmetric) the papers' with the groups' the groups' with the papers'.
    products = np.empty((total, total))
    products[:papers, :papers] = reader.products
    products[papers:, :papers] = group_rows @ reader.solved.T
    products[:papers, papers:] = products[papers:, :papers].T
    products[papers:, papers:] = near.products[top[:, None], top]
    plain = reader.solved.T @ reader.right - group_solved.T @ push - basis.offset
    along = np.concatenate([reader.rows @ plain, group_rows @ plain])
    inner = np.eye(total) + extra[:, None] * products
    z = np.linalg.solve(inner, extra * along)
    return (plain - reader.solved.T @ z[:papers] - group_solved.T @ z[papers:])[:-1]


class Reader(NamedTuple):
    """A reader's papers' rows of their system (see ``_solve``)."""

    rows: np.ndarray  # [x 1]
    solved: np.ndarray  # the same times B^-1
    extra: np.ndarray  # each one's weight beyond the weight 1 every paper has as a negative
    right: np.ndarray  # its right side
    products: np.ndarray | None  # rows @ solved.T (None where the system is solved whole)


def _reader_rows(features: np.ndarray, basis: ReaderBasis, papers: np.ndarray, pulls: np.ndarray,
                 positive: np.ndarray, count: int) -> Reader:
    """The reader's papers' rows of their system (``Reader``). Classes
    balanced: the positives together weigh as much as all other papers, a strong pull (a
    "more") counts more, a "less" is a negative weighted by its push."""
    n_papers = basis.solved.shape[0]
    balance = (n_papers - count) / count
    weight = np.where(positive, balance * np.maximum(1.0, pulls), np.maximum(1.0, np.abs(pulls)))
    label = np.where(positive, 1.0, -1.0)
    rows, solved = _with_constant(features[papers]), basis.solved[papers].astype(np.float64)
    # The right side's +1 takes back the -1 every paper already has in B's (see _solve).
    return Reader(rows, solved, weight - 1.0, weight * label + 1.0,
                  rows @ solved.T if len(rows) < rows.shape[1] else None)


def _solve(basis: ReaderBasis, rows: np.ndarray, solved: np.ndarray, extra: np.ndarray,
           right: np.ndarray, products: np.ndarray | None = None) -> np.ndarray:
    """The weights (with the constant's last) solving ``(B + R' diag(extra) R) w = R' right -
    (sum of every paper's row)``: every paper a negative of weight 1, and ``rows`` (R) on top;
    ``products``: ``rows @ solved.T`` when known."""
    if len(rows) >= rows.shape[1]:  # more rows than features: one system of the features' size
        system = basis.system + rows.T @ (extra[:, None] * rows)
        # The rows' sum is B times the offset.
        return np.linalg.solve(system, rows.T @ right - basis.system @ basis.offset)
    plain = solved.T @ right - basis.offset  # B^-1 b
    inner = np.eye(len(rows)) + extra[:, None] * (rows @ solved.T if products is None else products)  # Woodbury
    return plain - solved.T @ np.linalg.solve(inner, extra * (rows @ plain))
