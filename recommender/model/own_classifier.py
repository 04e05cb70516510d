"""A reader's own classifier, for readers ranked without the community's stars.

When other readers' stars take no part (``[ranking] community``), a reader's profile is the
weight vector of a linear SVM trained on their own signals: the papers they starred (or
clicked "more"/"open" on) against every other paper of the corpus, those they marked "less
like this" weighted as negatives; arxiv-sanity-lite's per-user SVM, on richer features. Each
paper is its TF-IDF row beside two dense views of it, which let a short title match papers
about the same thing in other words: its unit coordinates in an LSA space of the corpus
(``personal_dims`` dimensions, weighted ``personal_lsa_weight``), and the unit sum of its
words' vectors (``word_dims``, weighted ``personal_word_weight``; ``word_vectors`` says how
they differ from LSA). The classifier's term weights become the profile's term vector and its
dense weights the profile's dense part (where reader factors go when the community takes
part), so scoring and caching are unchanged.

Cost: one fit per reader whenever their profile is rebuilt (ingest, star imports, a click),
and the word vectors once per corpus (the 10,000 x 10,000 PMI matrix; seconds per reader in
bench/RESULTS.md's quality tables); ``personal`` says when it is used.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.base.config import PersonalMode, RankingConfig
from recommender.model import reader_model, term_ridge, word_vectors
from recommender.model.reader_model import ReaderBasis
from recommender.model.term_ridge import TermBasis
from recommender.model.tfidf import TextModel, settings_key
from recommender.model.unit_rows import unit_rows

log = logging.getLogger(__name__)
MODEL_FORMAT = 9  # part of the cache key: a change in how the space is fit never reads old ones
MIN_POSITIVES = 3  # fewer papers pulling a profile towards them: the Rocchio profile instead
# Fewer other papers to tell them from (an install whose only papers are the reader's stars,
# before any feed): no classifier can be fit, so the Rocchio profile too.
MIN_NEGATIVES = 3
PERSONAL_TERMS = 2000  # term weights kept per classifier


@dataclass
class LsaSpace:
    """Every paper's dense features (papers x dims, model order): its unit LSA coordinates
    times ``personal_lsa_weight``, then its unit word-vector sum times ``personal_word_weight``;
    and the corpus's share of every reader model over them (``reader_model``), when wanted;
    and the corpus's term factors from the same fit, for readers' term classifiers (``term_ridge``)."""

    coordinates: np.ndarray  # float32
    basis: ReaderBasis | None = None
    terms: TermBasis | None = None


def wanted(ranking: RankingConfig, readers_with_stars: int) -> bool:
    """Whether ``[ranking] personal`` asks for readers' own classifiers: "on", or "auto" while
    at most ``personal_max_users`` readers have stars (the community part decides the rest)."""
    if ranking.personal == PersonalMode.OFF:
        return False
    return ranking.personal == PersonalMode.ON or readers_with_stars <= ranking.personal_max_users


def used(ranking: RankingConfig, community: bool, readers_with_stars: int) -> bool:
    """Whether readers get their own classifier: when ``wanted`` and the community's stars take
    no part."""
    return not community and wanted(ranking, readers_with_stars)


def fit_space(model: TextModel, ranking: RankingConfig, community: bool = True) -> LsaSpace | None:
    """``community``: readers are ranked with the community (their term classifiers' basis is kept)."""
    n_papers, n_terms = model.matrix.shape
    dims = min(ranking.personal_dims, n_papers - 1, n_terms - 1)
    if dims < 2:
        return None
    # Imported here: only fitting needs it, and it costs every command's start-up 0.15 s.
    from sklearn.decomposition import TruncatedSVD

    svd = TruncatedSVD(dims, algorithm="randomized", n_iter=3, random_state=0)
    coordinates = svd.fit_transform(model.matrix.astype(np.float32))
    # Unit rows: measured on CiteULike, the direction is what helps (unscaled coordinates did not).
    parts = [ranking.personal_lsa_weight * unit_rows(coordinates.astype(np.float64))]
    words = word_vectors.paper_sums(model, ranking.word_dims)
    if words is not None:
        parts.append(ranking.personal_word_weight * words)
    log.info("dense features for personal classifiers: %d papers, %d LSA dimensions, %d word-vector dimensions",
             n_papers, dims, 0 if len(parts) == 1 else parts[1].shape[1])
    coordinates = np.hstack(parts).astype(np.float32)
    basis = reader_model.fit_basis(coordinates, ranking.reader_model_ridge) if ranking.reader_model_weight > 0 else None
    terms = term_ridge.fit_basis(model.matrix, svd.components_, svd.singular_values_) if community and ranking.term_ridge > 0 else None
    return LsaSpace(coordinates, basis, terms)


def classifier_rows(model: TextModel, space: LsaSpace, pull: sp.csr_matrix, ranking: RankingConfig,
                    progress: Callable[[int], None] | None = None) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Each user's classifier as (users x terms: its ``PERSONAL_TERMS`` strongest term weights,
    users x dims: its weights of the space's dense features), scaled together to unit length,
    and which users got one (those with at least MIN_POSITIVES papers pulling towards them and
    MIN_NEGATIVES other papers to set them against; the others' rows are zero). ``progress`` is told of each reader done."""
    from sklearn.svm import LinearSVC

    features: sp.csr_matrix | None = None  # built for the first reader who gets a classifier, if any
    n_terms, dims = model.matrix.shape[1], space.coordinates.shape[1]
    terms = sp.lil_matrix((pull.shape[0], n_terms), dtype=np.float32)
    dense = np.zeros((pull.shape[0], dims), dtype=np.float32)
    fitted = np.zeros(pull.shape[0], dtype=bool)
    started = time.perf_counter()
    for user in range(pull.shape[0]):
        if progress is not None and user:
            progress(1)
        start, end = pull.indptr[user], pull.indptr[user + 1]
        papers, pulls = pull.indices[start:end], pull.data[start:end]
        positives = int((pulls > 0).sum())
        if positives < MIN_POSITIVES or pull.shape[1] - positives < MIN_NEGATIVES:
            continue
        if features is None:  # (a copy of the corpus: not for a ranking that only rebuilds Rocchio rows)
            features = sp.hstack([model.matrix, sp.csr_matrix(space.coordinates.astype(np.float64))], format="csr")
        labels = np.zeros(features.shape[0], dtype=np.int8)
        labels[papers[pulls > 0]] = 1
        sample_weight = np.ones(features.shape[0])
        sample_weight[papers] = np.maximum(1.0, np.abs(pulls))  # a strong pull (a "more", a "less") counts more
        # The dual solver, also where papers outnumber terms (sklearn's "auto" picks the primal
        # there): on CiteULike-a's titles 0.48 s a reader against 0.88 s, the same ranking.
        classifier = LinearSVC(C=ranking.personal_c, class_weight="balanced", dual=True, tol=1e-4, max_iter=10_000,
                               random_state=0)
        classifier.fit(features, labels, sample_weight=sample_weight)
        coef = classifier.coef_.ravel()
        norm = float(np.linalg.norm(coef))
        if not norm:
            continue
        # The strongest terms carry the score (measured: cutting to 1,000 changed nothing).
        keep = np.sort(np.argpartition(-np.abs(coef[:n_terms]), PERSONAL_TERMS - 1)[:PERSONAL_TERMS]) \
            if n_terms > PERSONAL_TERMS else np.arange(n_terms)
        terms[user, keep] = coef[keep] / norm
        dense[user] = coef[n_terms:] / norm
        fitted[user] = True
    if progress is not None and pull.shape[0]:
        progress(1)
    if fitted.any():
        log.info("fitted %d readers' own classifiers in %.1f s", int(fitted.sum()), time.perf_counter() - started)
    return terms.tocsr(), dense, fitted


def cache_key(model: TextModel, ranking: RankingConfig, community: bool = True) -> str:
    """The key of the dense features fit on ``model`` with these settings (``fit_space``)."""
    return (f"{MODEL_FORMAT}:{model.version}:{settings_key(ranking)}:{ranking.personal_dims}:"
            f"{ranking.word_dims}:{ranking.personal_word_weight}:{ranking.personal_lsa_weight}:"
            f"{ranking.reader_model_weight > 0}:{ranking.reader_model_ridge}:{community and ranking.term_ridge > 0}")
