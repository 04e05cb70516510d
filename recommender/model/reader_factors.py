"""Collaborative signal that works for papers nobody has saved yet.

From all subscribers' stars we learn item factors (a truncated SVD of the paper-by-user
matrix), then a ridge regression from the paper's text (an LSA projection of its TF-IDF row
beside its sum of word vectors, ``word_vectors``) to those factors. A brand-new paper gets
factors from its text alone; a user's factor vector is the weighted mean of the factors of
the papers they starred (learned factors where the paper had savers, text-predicted ones
otherwise). The score is the cosine between the two, blended with the content score by
``ranking.collaborative_weight``. ``ranking.community`` decides whether it runs: "off" ranks
each reader from their own signals alone, "on" always uses everyone's stars, "auto" from
``collaborative_min_users`` readers with stars once there are too many for classifiers of
their own (``uses_community``).
"""

from __future__ import annotations

import logging
import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.base.config import CommunityMode, RankingConfig
from recommender.model import own_classifier, word_vectors
from recommender.model.tfidf import TextModel, settings_key
from recommender.model.unit_rows import unit_rows

log = logging.getLogger(__name__)
MODEL_FORMAT = 4  # 3: word-vector sums beside the LSA text dimensions; 4: factors fit a chunk of readers at a time
READER_CHUNK = 10_000  # readers' columns per product of the factors' fit (10,000 x 490 floats: 39 MB)
NO_MODEL = "no collaborative model"  # cached when there is none (too few readers, or switched off)


@dataclass
class CollabModel:
    predicted: np.ndarray  # papers x k, unit rows: factors predicted from text
    has_learned: np.ndarray  # papers, bool: the paper had savers when the model was fit
    index: dict[str, int]
    combined: np.ndarray  # papers x k: learned factors where a paper had savers, else predicted


def _frequent_terms(matrix: sp.csr_matrix, limit: int) -> sp.csr_matrix:
    """The columns of the ``limit`` terms found in most papers (bounds the SVD's memory)."""
    if matrix.shape[1] <= limit:
        return matrix
    document_frequency = np.bincount(matrix.indices, minlength=matrix.shape[1])
    keep = np.sort(np.argsort(-document_frequency, kind="stable")[:limit])
    return matrix[:, keep]


def star_bucket(stars: int) -> int:
    """Refit when the number of stars has grown by about 10% (not on every star)."""
    return 0 if stars <= 0 else int(math.log(stars) / math.log(1.1))


def switched_on(ranking: RankingConfig) -> bool:
    return ranking.community != CommunityMode.OFF and ranking.collaborative_weight > 0


def uses_community(ranking: RankingConfig, readers_with_stars: int) -> bool:
    """Whether other readers' stars take part in ranking: ``[ranking] community``, where "auto"
    turns them on from ``collaborative_min_users`` readers with stars (factors need two), but
    not while the readers get classifiers of their own (``personal`` "on", or "auto" up to
    ``personal_max_users`` readers): on CiteULike installs of 20 to 200 readers, each reader's
    own classifier ranks better than the community's factors (bench/RESULTS.md)."""
    if not switched_on(ranking) or readers_with_stars < 2:
        return False
    if ranking.community == CommunityMode.ON:
        return True
    return (readers_with_stars >= ranking.collaborative_min_users
            and not own_classifier.wanted(ranking, readers_with_stars))


def fit(model: TextModel, interactions: Iterable[tuple[int, str]], ranking: RankingConfig) -> CollabModel | None:
    # Each star kept as two 8-byte numbers as it is read (as Python tuples, a list and an index
    # of every reader, about 300 bytes a star: 300 MB of a refit at 100,000 readers of 10 stars).
    user_of, row_of = array("q"), array("q")
    index = model.index
    for user, paper in interactions:
        user_of.append(user)
        row_of.append(index.get(paper, -1))
    users, columns = np.unique(np.frombuffer(user_of, dtype=np.int64), return_inverse=True)
    if not uses_community(ranking, len(users)):
        return None
    rows = np.frombuffer(row_of, dtype=np.int64)
    known = rows >= 0  # stars of papers the model does not hold count their readers, not a save
    n_papers = len(model.paper_ids)
    saves = sp.csr_matrix((np.ones(int(known.sum())), (rows[known], columns[known])), shape=(n_papers, len(users)))
    saves.data[:] = 1.0
    has_learned = np.asarray(saves.getnnz(axis=1)).ravel() > 0
    k = min(ranking.cf_factors, len(users) - 1, int(has_learned.sum()) - 1)
    d = min(ranking.lsa_dims, n_papers - 1, model.matrix.shape[1] - 1)
    if k < 2 or d < 2:
        return None
    # Imported here: only fitting needs it, and it costs every command's start-up 0.15 s.
    from sklearn.decomposition import TruncatedSVD

    factors = paper_factors(unit_rows(saves), k)
    # The text projection in float32: half the memory traffic of its sparse products and
    # factorisations, twice as fast (74 -> 39 s for 30,000 papers here); the regression below
    # runs in float64 again.
    text = TruncatedSVD(d, algorithm="randomized", n_iter=3, random_state=0).fit_transform(
        _frequent_terms(model.matrix, ranking.lsa_max_terms).astype(np.float32)).astype(np.float64)
    # Word vectors predict a new paper's readers better than LSA alone (on all CiteULike DEV
    # readers, R@50 0.464 -> 0.476 on titles, 0.438 -> 0.445 on word bags).
    words = word_vectors.paper_sums(model, ranking.word_dims) if ranking.cf_word_weight > 0 else None
    if words is not None:
        text = np.hstack([text, ranking.cf_word_weight * words])
    train = np.flatnonzero(has_learned)
    z = text[train]
    weights = np.linalg.solve(z.T @ z + ranking.cf_ridge * np.eye(text.shape[1]), z.T @ factors[train])
    predicted = unit_rows(text @ weights).astype(np.float32)
    learned = unit_rows(factors).astype(np.float32)
    learned[~has_learned] = 0
    log.info("collaborative model: %d users, %d saved papers, %d factors, %d text dimensions (%d of word vectors)",
             len(users), int(has_learned.sum()), k, text.shape[1], 0 if words is None else words.shape[1])
    combined = np.where(has_learned[:, None], learned, predicted).astype(np.float32)
    return CollabModel(predicted, has_learned, dict(model.index), combined)


def paper_factors(saves: sp.csr_matrix, k: int, n_iter: int = 7, oversample: int = 10,
                  chunk: int = READER_CHUNK) -> np.ndarray:
    """The papers' ``k`` leading factors of ``saves`` (papers x readers): U S of its truncated
    SVD, by a randomized range finder in the papers' space (Halko, Martinsson and Tropp, 2011;
    what scikit-learn's TruncatedSVD runs) with every product taken ``chunk`` readers at a time:
    no array has a row per reader (scikit-learn's holds readers x (k + 10) floats several
    times, about 12 KB a reader at k = 480). Seven power iterations, scikit-learn's own choice
    for a small k (its TruncatedSVD's five left the factors further from the exact SVD than
    these: bench/RESULTS.md). Signs as scikit-learn's ``svd_flip``: each column's largest
    entry positive."""
    columns = saves.tocsc()
    n_papers, n_readers = columns.shape
    width = min(k + oversample, n_papers, n_readers)
    # Sliced once (together the size of ``saves``), not again at every pass.
    blocks = [columns[:, start:start + chunk] for start in range(0, n_readers, chunk)]
    found = np.zeros((n_papers, width))
    for number, block in enumerate(blocks):  # a random mix of the readers' columns
        found += block @ np.random.default_rng([0, number]).standard_normal((block.shape[1], width))
    for _ in range(n_iter):  # power iterations: (saves saves^T)^n_iter sharpens the leading directions
        basis = np.linalg.qr(found)[0]
        found = np.zeros_like(basis)
        for block in blocks:
            found += block @ (block.T @ basis)
    basis = np.linalg.qr(found)[0]
    gram = np.zeros((basis.shape[1], basis.shape[1]))
    for block in blocks:  # (basis^T saves)(basis^T saves)^T: the small side of the SVD
        projected = np.asarray(block.T @ basis)
        gram += projected.T @ projected
    values, vectors = np.linalg.eigh(gram)
    order = np.argsort(values)[::-1][:k]
    left = basis @ vectors[:, order]
    left *= np.sign(left[np.argmax(np.abs(left), axis=0), np.arange(left.shape[1])])
    return left * np.sqrt(np.maximum(values[order], 0.0))


def cache_key(model: TextModel, ranking: RankingConfig, stars: int) -> str:
    """The key of the reader factors fit on ``model`` with ``stars`` stars stored (in buckets:
    a few new stars do not refit) and these settings."""
    return (f"{MODEL_FORMAT}:{model.version}:{settings_key(ranking)}:{star_bucket(stars)}:"
            f"{ranking.collaborative_min_users}:{ranking.community}:{ranking.personal}:{ranking.personal_max_users}:"
            f"{ranking.lsa_dims}:{ranking.cf_factors}:{ranking.cf_ridge}:{ranking.lsa_max_terms}:{ranking.word_dims}:"
            f"{ranking.cf_word_weight}")
