"""Word vectors learnt from the corpus itself (no download), and each paper's sum of them.

A word's vector is its row of the truncated SVD of the positive pointwise mutual information
of words found in the same papers (context counts smoothed as in word2vec: what its
skip-gram approximates, Levy & Goldberg 2014). LSA factors papers by their words; these
factor words by the company they keep, so "car" and "automobile", which never meet in one
paper but share neighbours, end up close. A paper's sum of its words' vectors lets a short
title match papers that say the same thing in other words: the readers' own classifiers
(``own_classifier``) and the text-to-reader-factors regression (``reader_factors``) use it.

Cost: the 10,000 x 10,000 PMI matrix, dense, once per corpus (the collaborative model's fit
in bench/RESULTS.md includes it).
"""

from __future__ import annotations

import weakref

import numpy as np

from recommender.model.tfidf import TextModel
from recommender.model.unit_rows import unit_rows

VOCABULARY = 10_000  # words with vectors: the most frequent; bounds the co-occurrence matrix (10k x 10k)
MIN_PAPERS = 3  # rarer words get no vector (their co-occurrence counts are noise)
CONTEXT_SMOOTHING = 0.75  # context counts raised to this power in PMI (word2vec's; lowers rare contexts' PMI)


# One refit asks twice (reader factors, then the readers' own models' space): the second is
# the first's array, while the model lives (9 s of 70 for 30,000 papers: bench/RESULTS.md, ingest).
_SUMS: dict[tuple[int, int], np.ndarray | None] = {}


def paper_sums(model: TextModel, dims: int) -> np.ndarray | None:
    """``_paper_sums`` of this model, computed once while it lives (callers do not change it)."""
    key = (id(model), dims)
    if key not in _SUMS:
        _SUMS[key] = _paper_sums(model, dims)
        weakref.finalize(model, _SUMS.pop, key, None)
    return _SUMS[key]


def _paper_sums(model: TextModel, dims: int) -> np.ndarray | None:
    """Each paper's unit sum of its words' unit vectors, weighted by its TF-IDF (papers x
    dims), or None when the corpus has too few words. Words with vectors: the VOCABULARY most
    frequent single words found in at least MIN_PAPERS papers."""
    from sklearn.utils.extmath import randomized_svd

    single = np.flatnonzero([" " not in term for term in model.terms])
    papers_with = np.bincount(model.matrix.indices, minlength=model.matrix.shape[1])[single]
    frequent = np.argsort(-papers_with, kind="stable")[:VOCABULARY]
    frequent = np.sort(frequent[papers_with[frequent] >= MIN_PAPERS])
    dims = min(dims, len(frequent) - 1)
    if dims < 2:
        return None
    weights = model.matrix[:, single[frequent]]
    seen = weights.astype(np.float32)
    seen.data[:] = 1.0
    # Dense, in place: abstracts' frequent words mostly meet, so the matrix is nearly full, and
    # dense it fits 8x faster (8.5 against 65 s for 20,000 of bench/synthetic.py's papers).
    pmi = (seen.T @ seen).toarray()  # papers in which both words occur
    word_counts = pmi.sum(axis=1, dtype=np.float64)
    contexts = word_counts ** CONTEXT_SMOOTHING
    contexts /= contexts.sum()
    # log P(w, c) / (P(w) P(c)) = log together - log count(w) - log P(c): the total of all pairs cancels.
    with np.errstate(divide="ignore"):  # words never together: log 0, then cut to 0 below
        np.log(pmi, out=pmi)
    pmi -= np.log(word_counts).astype(np.float32)[:, None]
    pmi -= np.log(contexts).astype(np.float32)[None, :]
    np.maximum(pmi, 0, out=pmi)
    np.fill_diagonal(pmi, 0)
    vectors, strengths, _ = randomized_svd(pmi, dims, n_iter=5, random_state=0)
    return unit_rows(np.asarray(weights @ unit_rows(vectors * strengths)))
