"""Term counts of a corpus: exactly what scikit-learn's CountVectorizer gives (same tokens,
stop words, unigrams and bigrams, document-frequency pruning, sorted columns), counted with
numpy instead of a Python dictionary lookup per term occurrence.

Fitting the vocabulary of 100,000 abstracts took CountVectorizer about a minute, nearly all of
it in that per-occurrence loop; here each token is looked up once (a large corpus is tokenized
on two cores), bigrams are pairs of token ids, and all the counting is one sort of
(feature, document) keys. Longer n-grams go to scikit-learn itself.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp

from recommender import halves

PARALLEL_FROM = 20_000  # texts; below, starting a process costs more than half the tokenizing


def analyzer(token_pattern: str, stop_words: frozenset[str]):
    """A document's tokens as CountVectorizer sees them: lowercased, matched, stop words out."""
    findall = re.compile(token_pattern).findall

    def tokens(text: str) -> list[str]:
        return [t for t in findall(text.lower()) if t not in stop_words]

    return tokens


def fit_counts(texts: Sequence[str], token_pattern: str, stop_words: frozenset[str], ngram_max: int,
               min_df: float, max_df: float, parallel_from: int = PARALLEL_FROM) -> tuple[list[str], sp.csr_matrix]:
    """(sorted terms, documents x terms counts) as ``CountVectorizer(...).fit_transform`` gives
    them, float64. Raises ValueError where it does (no terms at all, none left after pruning).
    From ``parallel_from`` texts on, a forked child tokenizes the second half."""
    if ngram_max > 2:
        return _fit_with_scikit_learn(texts, token_pattern, stop_words, ngram_max, min_df, max_df)
    words, unigrams, lengths = _token_ids(texts, analyzer(token_pattern, stop_words), parallel_from)
    n_documents, n_words = len(texts), len(words)
    documents = np.repeat(np.arange(n_documents, dtype=np.int64), lengths)
    # A feature is a word id, or n_words + (first word id * n_words + second) for a bigram.
    features, feature_documents = unigrams, documents
    width = n_words
    if ngram_max == 2 and len(unigrams) > 1:
        same_document = documents[:-1] == documents[1:]
        features = np.concatenate([unigrams, n_words + unigrams[:-1][same_document] * n_words
                                   + unigrams[1:][same_document]])
        feature_documents = np.concatenate([documents, documents[:-1][same_document]])
        width = n_words + n_words * n_words
    if len(features) == 0:
        raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
    if width * n_documents >= 2**62:  # (feature, document) keys would overflow int64
        return _fit_with_scikit_learn(texts, token_pattern, stop_words, ngram_max, min_df, max_df)
    # One sort of (feature, document) keys: equal keys are one feature's occurrences in one
    # document (their number is its count there); runs of one feature give its document frequency.
    keys = np.sort(features * n_documents + feature_documents)
    pair_starts = _run_starts(keys)
    pair_counts = np.diff(np.append(pair_starts, len(keys))).astype(np.float64)
    pair_keys = keys[pair_starts]
    pair_features = pair_keys // n_documents
    pair_documents = pair_keys - pair_features * n_documents
    del keys
    feature_starts = _run_starts(pair_features)
    frequency = np.diff(np.append(feature_starts, len(pair_features)))
    keep = _within_document_frequency(frequency, n_documents, min_df, max_df)
    kept = pair_features[feature_starts][keep]
    names = [words[f] if f < n_words else f"{words[(f - n_words) // n_words]} {words[(f - n_words) % n_words]}"
             for f in kept.tolist()]
    order = sorted(range(len(names)), key=names.__getitem__)
    kept_pairs = np.repeat(keep, frequency)
    by_feature = sp.csc_matrix((pair_counts[kept_pairs], pair_documents[kept_pairs],
                                np.concatenate([[0], np.cumsum(frequency[keep])])), shape=(n_documents, len(kept)))
    counts = by_feature[:, order].tocsr()
    counts.sort_indices()
    return [names[i] for i in order], counts


def _run_starts(values: np.ndarray) -> np.ndarray:
    """Where each run of equal values of a sorted array starts."""
    return np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))


def _token_ids(texts: Sequence[str], tokens: Callable[[str], list[str]],
               parallel_from: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(the words in id order, every token's word id, the number of tokens of each text)."""
    if len(texts) < parallel_from:
        words, ids, lengths = _token_ids_here(texts, tokens)
        return words, ids.astype(np.int64), lengths
    (words, ids, lengths), (child_words, child_ids, child_lengths) = halves.in_two(
        lambda part: _token_ids_here(part, tokens), texts)
    index = {w: i for i, w in enumerate(words)}
    to_ours = np.array([index.setdefault(w, len(index)) for w in child_words], dtype=np.int64)
    return list(index), np.concatenate([ids.astype(np.int64), to_ours[child_ids]]), np.concatenate([lengths, child_lengths])


def _token_ids_here(texts: Sequence[str], tokens: Callable[[str], list[str]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Word ids as int32 (half the bytes to send back from the child)."""
    ids: dict[str, int] = {}
    flat: list[int] = []
    lengths = np.zeros(len(texts), dtype=np.int64)
    for n, text in enumerate(texts):
        found = tokens(text)
        lengths[n] = len(found)
        flat.extend([ids.setdefault(t, len(ids)) for t in found])
    return list(ids), np.array(flat, dtype=np.int32), lengths


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


def _within_document_frequency(frequency: np.ndarray, n_documents: int, min_df: float, max_df: float) -> np.ndarray:
    """Which features (a mask) are found in at least ``min_df`` and at most ``max_df`` documents
    (counts when integers, fractions of the corpus otherwise), as CountVectorizer prunes them."""
    most = max_df if isinstance(max_df, numbers.Integral) else max_df * n_documents
    least = min_df if isinstance(min_df, numbers.Integral) else min_df * n_documents
    if most < least:
        raise ValueError("max_df corresponds to < documents than min_df")
    keep = (frequency >= least) & (frequency <= most)
    if not keep.any():
        raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
    return keep


def _fit_with_scikit_learn(texts: Sequence[str], token_pattern: str, stop_words: frozenset[str], ngram_max: int,
                           min_df: float, max_df: float) -> tuple[list[str], sp.csr_matrix]:
    from sklearn.feature_extraction.text import CountVectorizer

    counter = CountVectorizer(stop_words=sorted(stop_words), token_pattern=token_pattern, lowercase=True,
                              ngram_range=(1, ngram_max), min_df=min_df, max_df=max_df, dtype=np.float64)
    counts = counter.fit_transform(texts).tocsr()
    counts.sort_indices()
    return counter.get_feature_names_out().tolist(), counts
