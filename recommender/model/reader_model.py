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

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

log = logging.getLogger(__name__)
MIN_POSITIVES = 3  # fewer papers pulling towards the reader: no model (the reader factors and terms rank alone)


NEAR_COUNT = 30  # the groups nearest a reader's first model that it is refit against
NEAR_WEIGHT = 5.0  # how many negatives each of their papers then counts as
NEAR_SCALE = 1.5  # the refit model's scores spread this much wider than the first's
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
    return NearGroups(rows, rows @ np.linalg.inv(basis.system), counts[kept] * (papers / len(older)),
                      means[:, :factors.shape[1]], np.cov(dense, rowvar=False))


def no_near_groups(dims: int, factors: int) -> NearGroups:
    """Near groups of no papers (kept where there are none, so that they are not sought again)."""
    return NearGroups(np.zeros((0, dims + 1)), np.zeros((0, dims + 1)), np.zeros(0), np.zeros((0, factors)),
                      np.zeros((dims, dims)))


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
    near = basis.near if factors is not None else None
    started = time.perf_counter()
    # Single-threaded BLAS: each system is small, and threads waking for one cost more than it
    # (0.25 against 18 ms a reader on a busy 2-core machine).
    with threadpool_limits(limits=1, user_api="blas"):
        for user in range(pull.shape[0]):
            start, end = pull.indptr[user], pull.indptr[user + 1]
            papers, pulls = pull.indices[start:end], pull.data[start:end].astype(np.float64)
            positive = pulls > 0
            count = int(positive.sum())
            if count < MIN_POSITIVES or count >= features.shape[0]:
                continue
            reader = _reader_rows(features, basis, papers, pulls, positive, count)
            w = _solve(basis, *reader)[:features.shape[1]]
            norm = float(np.linalg.norm(w))
            if not norm:
                continue
            w /= norm
            if near is not None and factors is not None:
                w = _refit_near(basis, near, reader, w, near.factors @ factors[user] + model_share * (near.rows[:, :-1] @ w))
            out[user], fitted[user] = w, True
    if fitted.any():
        log.info("fitted %d reader models in %.2f s", int(fitted.sum()), time.perf_counter() - started)
    return out, fitted


def _refit_near(basis: ReaderBasis, near: NearGroups, reader: tuple[np.ndarray, ...], first: np.ndarray,
                ranked: np.ndarray) -> np.ndarray:
    """The reader's model refit with the ``NEAR_COUNT`` groups ``ranked`` highest (all, of fewer) as heavier
    negatives, scaled to ``NEAR_SCALE`` times the spread of the unit ``first`` fit."""
    rows, solved, extra, right = reader
    count = min(NEAR_COUNT, len(ranked))
    top = np.argpartition(-ranked, count - 1)[:count]
    push = near.sizes[top] * (NEAR_WEIGHT - 1.0)
    w = _solve(basis, np.vstack([rows, near.rows[top]]), np.vstack([solved, near.solved[top]]),
               np.concatenate([extra, push]), np.concatenate([right, -push]))[:len(first)]
    spread = float(w @ near.covariance @ w)
    return w * (NEAR_SCALE * np.sqrt(float(first @ near.covariance @ first) / spread)) if spread > 0 else first


def _reader_rows(features: np.ndarray, basis: ReaderBasis, papers: np.ndarray, pulls: np.ndarray,
                 positive: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The reader's papers' rows of their system: ``[x 1]``, the same times B^-1, each one's
    weight beyond the weight 1 every paper has as a negative, and its right side. Classes
    balanced: the positives together weigh as much as all other papers, a strong pull (a
    "more") counts more, a "less" is a negative weighted by its push."""
    n_papers = basis.solved.shape[0]
    balance = (n_papers - count) / count
    weight = np.where(positive, balance * np.maximum(1.0, pulls), np.maximum(1.0, np.abs(pulls)))
    label = np.where(positive, 1.0, -1.0)
    # The right side's +1 takes back the -1 every paper already has in B's (see _solve).
    return (_with_constant(features[papers]), basis.solved[papers].astype(np.float64), weight - 1.0,
            weight * label + 1.0)


def _solve(basis: ReaderBasis, rows: np.ndarray, solved: np.ndarray, extra: np.ndarray,
           right: np.ndarray) -> np.ndarray:
    """The weights (with the constant's last) solving ``(B + R' diag(extra) R) w = R' right -
    (sum of every paper's row)``: every paper a negative of weight 1, and ``rows`` (R) on top."""
    if len(rows) >= rows.shape[1]:  # more rows than features: one system of the features' size
        system = basis.system + rows.T @ (extra[:, None] * rows)
        # The rows' sum is B times the offset.
        return np.linalg.solve(system, rows.T @ right - basis.system @ basis.offset)
    plain = solved.T @ right - basis.offset  # B^-1 b
    inner = np.eye(len(rows)) + extra[:, None] * (rows @ solved.T)  # Woodbury
    return plain - solved.T @ np.linalg.solve(inner, extra * (rows @ plain))
