"""The match a reader sees beside each pick: its place among the reader's candidates, 0-100."""

from __future__ import annotations

import numpy as np

from recommender.model import sparse_loops


def matches_among(total: np.ndarray, scores: np.ndarray, blocked_rows: list[int], blocked_cols: list[int],
                  counts: np.ndarray | None = None) -> np.ndarray:
    """Each pick's match, 0-100: the share of the reader's other candidates (the batch's papers
    but those they starred or were already sent: ``blocked``) that score below it, ties counted
    half. A percentile, not the raw score: a reader's own classifier scores every paper below
    zero and a cosine rarely passes 0.5, while "ranks above 73% of today's papers for you" reads
    the same for both; it rises with the score, and the same reader and batch give the same
    value. ``total`` is users x candidates, ``scores`` users x picks (each row's best, best
    first), ``counts`` how many of a row's picks count (default: all); the others get 0."""
    n_users, n_picks = scores.shape
    counts = np.full(n_users, n_picks, dtype=np.int64) if counts is None else counts.astype(np.int64)
    if total.shape[1] == 0 or n_picks == 0:
        return np.zeros(scores.shape, dtype=np.int64)
    below = np.zeros(scores.shape, dtype=np.int64)
    equal = np.zeros(scores.shape, dtype=np.int64)
    others = np.zeros(n_users, dtype=np.int64)
    # (Each blocked cell once: a reader's skips are a set.)
    sparse_loops.run(sparse_loops.places_among, total.size, total, scores.astype(total.dtype), counts,
                     np.array(blocked_rows, dtype=np.int64), np.array(blocked_cols, dtype=np.int64), below, equal, others)
    share = (below + np.maximum(equal - 1, 0) / 2) / np.maximum(others, 1)[:, None]
    share[others == 0] = 1.0  # the only candidate: nothing ranks above it
    match = np.clip(np.rint(share * 100), 0, 100).astype(np.int64)
    match[np.arange(n_picks)[None, :] >= counts[:, None]] = 0
    return match
