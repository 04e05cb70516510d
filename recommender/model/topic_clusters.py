"""Suggested topics: a reader's starred papers split into a few coherent groups, each named by
its most telling terms. k-means (scikit-learn) on the papers' unit dense vectors (the LSA
space the install fits for readers' own classifiers, else the text-predicted reader factors,
else an LSA of the stars' own TF-IDF rows); the number of groups, up to ``max_k``, is the one
with the best cosine silhouette among splits that leave no group below ``MIN_GROUP`` papers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.model.tfidf import TextModel
from recommender.model.unit_rows import unit_rows

MIN_GROUP = 3  # a smaller group is no topic: too few stars for a profile of its own (own_classifier.MIN_POSITIVES)
NAME_TERMS = 3  # terms in a group's name
SHOWN_PAPERS = 3  # papers shown per group


@dataclass(frozen=True)
class Group:
    """One suggested topic: its papers (rows of the input, nearest the centre first) and terms."""

    members: list[int]
    terms: list[str]

    @property
    def name(self) -> str:
        return " / ".join(self.terms[:2]) if self.terms else f"topic of {len(self.members)} papers"


def dense_rows(model: TextModel, paper_ids: list[str], given: np.ndarray | None) -> np.ndarray:
    """Unit dense vectors of these papers: ``given`` (one row each, from a space the install
    fits) when there is one, else an LSA of their own TF-IDF rows."""
    if given is not None:
        return unit_rows(np.asarray(given, dtype=np.float64))
    rows = [model.index[p] for p in paper_ids]
    from sklearn.decomposition import TruncatedSVD  # on use: it costs every command's start-up

    tfidf = model.matrix[rows]
    dims = max(1, min(50, len(rows) - 1, tfidf.shape[1] - 1))
    return unit_rows(TruncatedSVD(dims, random_state=0).fit_transform(tfidf))


def split(vectors: np.ndarray, max_k: int) -> np.ndarray:
    """A group label per row (0..k-1, the largest group 0); all zeros when no split into at
    least two groups of ``MIN_GROUP`` papers exists."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = vectors.shape[0]
    best: tuple[float, np.ndarray] | None = None
    for k in range(2, min(max_k, n // MIN_GROUP) + 1):
        labels = KMeans(k, n_init=10, random_state=0).fit_predict(vectors)
        sizes = np.bincount(labels, minlength=k)
        if sizes.min() < MIN_GROUP:
            continue
        score = float(silhouette_score(vectors, labels, metric="cosine"))
        if best is None or score > best[0]:
            best = (score, labels)
    if best is None:
        return np.zeros(n, dtype=np.int64)
    labels = best[1]
    order = np.argsort(-np.bincount(labels), kind="stable")  # largest first
    return np.argsort(order)[labels].astype(np.int64)


def groups(model: TextModel, paper_ids: list[str], vectors: np.ndarray, labels: np.ndarray) -> list[Group]:
    """Each label's papers, nearest its centre first, and the terms that set it apart: its
    papers' mean TF-IDF weight minus the other papers'."""
    tfidf = sp.csr_matrix(model.matrix[[model.index[p] for p in paper_ids]])
    found = []
    for label in range(int(labels.max(initial=0)) + 1):
        inside = np.flatnonzero(labels == label)
        centre = vectors[inside].mean(axis=0)
        near = inside[np.argsort(-(vectors[inside] @ centre), kind="stable")]
        mean_in = np.asarray(tfidf[inside].mean(axis=0)).ravel()
        outside = np.flatnonzero(labels != label)
        mean_out = np.asarray(tfidf[outside].mean(axis=0)).ravel() if len(outside) else 0.0
        telling = mean_in - mean_out
        terms: list[str] = []
        for t in np.argsort(-telling, kind="stable")[:10 * NAME_TERMS].tolist():
            words = set(str(model.shown_terms[t]).split())
            # "transport" says nothing "optimal transport" did not: one of the two
            if telling[t] > 0 and not any(words <= set(c.split()) or set(c.split()) <= words for c in terms):
                terms.append(str(model.shown_terms[t]))
        found.append(Group([int(i) for i in near], terms[:NAME_TERMS]))
    return found
