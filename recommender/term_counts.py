"""Term counts of a corpus: exactly what scikit-learn's CountVectorizer gives (same tokens,
stop words, unigrams and bigrams, document-frequency pruning, sorted columns), counted with
numpy instead of a Python dictionary lookup per term occurrence.

Fitting the vocabulary of 100,000 abstracts took CountVectorizer about a minute, nearly all of
it in that per-occurrence loop; here each token is looked up once, bigrams are pairs of token
ids, and the counting is a sparse sum. Longer n-grams go to scikit-learn itself.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp


def analyzer(token_pattern: str, stop_words: frozenset[str]):
    """A document's tokens as CountVectorizer sees them: lowercased, matched, stop words out."""
    findall = re.compile(token_pattern).findall

    def tokens(text: str) -> list[str]:
        return [t for t in findall(text.lower()) if t not in stop_words]

    return tokens


def fit_counts(texts: Sequence[str], token_pattern: str, stop_words: frozenset[str], ngram_max: int,
               min_df: float, max_df: float) -> tuple[list[str], sp.csr_matrix]:
    """(sorted terms, documents x terms counts) as ``CountVectorizer(...).fit_transform`` gives
    them, float64. Raises ValueError where it does (no terms at all, none left after pruning)."""
    if ngram_max > 2:
        return _fit_with_scikit_learn(texts, token_pattern, stop_words, ngram_max, min_df, max_df)
    tokens = analyzer(token_pattern, stop_words)
    ids: dict[str, int] = {}
    flat: list[int] = []
    lengths = np.zeros(len(texts), dtype=np.int64)
    for n, text in enumerate(texts):
        found = tokens(text)
        lengths[n] = len(found)
        flat.extend([ids.setdefault(t, len(ids)) for t in found])
    unigrams = np.array(flat, dtype=np.int64)
    documents = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    n_words = len(ids)
    features, feature_documents, pair_codes = unigrams, documents, np.zeros(0, dtype=np.int64)
    if ngram_max == 2 and len(unigrams) > 1:
        same_document = documents[:-1] == documents[1:]
        codes = unigrams[:-1][same_document] * n_words + unigrams[1:][same_document]
        pair_codes, pair_ids = np.unique(codes, return_inverse=True)
        features = np.concatenate([unigrams, n_words + pair_ids.ravel()])
        feature_documents = np.concatenate([documents, documents[:-1][same_document]])
    n_features = n_words + len(pair_codes)
    if n_features == 0:
        raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
    counts = sp.csr_matrix((np.ones(len(features)), (feature_documents, features)), shape=(len(texts), n_features))
    counts.sum_duplicates()
    keep = _within_document_frequency(counts, len(texts), min_df, max_df)
    words = list(ids)
    names = [words[f] if f < n_words else f"{words[pair_codes[f - n_words] // n_words]} "
             f"{words[pair_codes[f - n_words] % n_words]}" for f in keep.tolist()]
    order = sorted(range(len(names)), key=names.__getitem__)
    column = np.full(n_features, -1, dtype=np.int64)
    column[keep[order]] = np.arange(len(order))
    return [names[i] for i in order], _remap_columns(counts, column, len(order))


def count_known(texts: Sequence[str], vocabulary: dict[str, int], token_pattern: str, stop_words: frozenset[str],
                ngram_max: int) -> sp.csr_matrix:
    """Counts of the vocabulary's terms in ``texts`` (``CountVectorizer.transform``)."""
    tokens = analyzer(token_pattern, stop_words)
    rows: list[int] = []
    columns: list[int] = []
    for n, text in enumerate(texts):
        found = tokens(text)
        grams = list(found)
        for size in range(2, ngram_max + 1):
            grams.extend(" ".join(found[i:i + size]) for i in range(len(found) - size + 1))
        known = [vocabulary[g] for g in grams if g in vocabulary]
        rows.extend([n] * len(known))
        columns.extend(known)
    counts = sp.csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(len(texts), len(vocabulary)))
    counts.sum_duplicates()
    return counts


def _within_document_frequency(counts: sp.csr_matrix, n_documents: int, min_df: float, max_df: float) -> np.ndarray:
    """Feature indices found in at least ``min_df`` and at most ``max_df`` documents (counts when
    integers, fractions of the corpus otherwise), as CountVectorizer prunes them."""
    most = max_df if isinstance(max_df, numbers.Integral) else max_df * n_documents
    least = min_df if isinstance(min_df, numbers.Integral) else min_df * n_documents
    if most < least:
        raise ValueError("max_df corresponds to < documents than min_df")
    frequency = np.bincount(counts.indices, minlength=counts.shape[1])
    keep = np.flatnonzero((frequency >= least) & (frequency <= most))
    if len(keep) == 0:
        raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
    return keep


def _remap_columns(counts: sp.csr_matrix, column: np.ndarray, width: int) -> sp.csr_matrix:
    """``counts`` with column c moved to ``column[c]`` (dropped where -1), indices sorted."""
    new_columns = column[counts.indices]
    kept = new_columns >= 0
    rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))[kept]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=counts.shape[0]))])
    result = sp.csr_matrix((counts.data[kept], new_columns[kept], indptr), shape=(counts.shape[0], width))
    result.sort_indices()
    return result


def _fit_with_scikit_learn(texts: Sequence[str], token_pattern: str, stop_words: frozenset[str], ngram_max: int,
                           min_df: float, max_df: float) -> tuple[list[str], sp.csr_matrix]:
    from sklearn.feature_extraction.text import CountVectorizer

    counter = CountVectorizer(stop_words=sorted(stop_words), token_pattern=token_pattern, lowercase=True,
                              ngram_range=(1, ngram_max), min_df=min_df, max_df=max_df, dtype=np.float64)
    counts = counter.fit_transform(texts).tocsr()
    counts.sort_indices()
    return counter.get_feature_names_out().tolist(), counts
