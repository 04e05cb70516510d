"""Term counts of a corpus: exactly what scikit-learn's CountVectorizer gives (same tokens,
stop words, unigrams and bigrams, document-frequency pruning, sorted columns), counted with
numpy instead of a Python dictionary lookup per term occurrence.

Fitting the vocabulary of 100,000 abstracts took CountVectorizer about a minute, nearly all of
it in that per-occurrence loop; here each token is looked up once (a large corpus is tokenized
in worker processes, ``--jobs``), bigrams are pairs of token ids, and all the counting is one sort of
(feature, document) keys. Longer n-grams go to scikit-learn itself.
"""

from __future__ import annotations

import numbers
import re
from array import array
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.base import parallel

PARALLEL_FROM = 20_000  # texts; below, starting a process costs more than half the tokenizing
PARALLEL_SORT_FROM = 1_000_000  # keys; below, a plain sort takes milliseconds
Stem = Callable[[list[str]], list[str]]  # words -> their stems, one for one


def english_stemmer() -> Stem:
    """Snowball's English stemmer (PyStemmer, in C): "networks" and "networked" count as
    "network". Measured on CiteULike-a's titles: the per-user SVM's recall@50 0.394 -> 0.416."""
    import Stemmer  # (on use: only fitting and counting new texts need it)

    return Stemmer.Stemmer("english").stemWords  # type: ignore[no-any-return]


def analyzer(token_pattern: str, stop_words: frozenset[str]):
    """A document's tokens as CountVectorizer sees them: lowercased, matched, stop words out."""
    findall = re.compile(token_pattern).findall

    def tokens(text: str) -> list[str]:
        return [t for t in findall(text.lower()) if t not in stop_words]

    return tokens


@dataclass(frozen=True)
class Counting:
    """What a term is, in CountVectorizer's words: a token matching ``token_pattern``, lower
    case, not in ``stop_words``, in n-grams up to ``ngram_max``, kept when its document
    frequency is within ``min_df``..``max_df``; with ``stem``, each token counts as its stem."""

    token_pattern: str
    stop_words: frozenset[str]
    ngram_max: int
    min_df: float
    max_df: float
    stem: Stem | None = None


def fit_counts(texts: Sequence[str], counting: Counting, parallel_from: int = PARALLEL_FROM,
               prefixes: Sequence[str] | None = None, prefix_weight: float = 1.0,
               surface: dict[str, str] | None = None) -> tuple[list[str], sp.csr_matrix]:
    """(sorted terms, documents x terms counts) as ``CountVectorizer(...).fit_transform`` gives
    them, float64. Raises ValueError where it does (no terms at all, none left after pruning).
    From ``parallel_from`` texts a part on, forked children tokenize all parts but the first.

    With ``prefixes`` (titles), document i is ``f"{prefixes[i]} {texts[i]}"``, and each
    occurrence of a term inside the prefix counts ``prefix_weight`` times: the same as fitting
    the joined texts and adding ``prefix_weight - 1`` times the prefixes' own counts.

    With ``stem``, each token (stop words out first) counts as its stem, as CountVectorizer
    with an analyzer that stems would count; ``surface`` then receives, for each stem that is
    not itself a word of the texts' most frequent form, that word (to show terms as words)."""
    token_pattern, stop_words, ngram_max = counting.token_pattern, counting.stop_words, counting.ngram_max
    min_df, max_df, stem = counting.min_df, counting.max_df, counting.stem
    if ngram_max > 2:
        return _fit_with_scikit_learn(texts, counting, prefixes, prefix_weight)
    weighted = prefixes is not None and prefix_weight != 1
    words, unigrams, lengths, prefix_lengths = _token_ids(texts, token_pattern, stop_words, parallel_from, prefixes)
    if stem is not None:  # each distinct word is stemmed once, not each token
        words, unigrams = _stemmed(words, unigrams, stem, surface)
    n_documents, n_words = len(texts), len(words)
    # A feature is a word id, or n_words + (first word id * n_words + second) for a bigram.
    bigrams = ngram_max == 2 and len(unigrams) > 1
    width = n_words + n_words * n_words if bigrams else n_words
    if len(unigrams) == 0:
        raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
    if width * n_documents * 2 >= 2**62:  # (feature, document, in prefix) keys would overflow int64
        return _fit_with_scikit_learn(texts, counting, prefixes, prefix_weight)
    # One sort of (feature, document) keys: equal keys are one feature's occurrences in one
    # document (their number is its count there); runs of one feature give its document frequency.
    # Weighted, the key's lowest bit says "in the prefix", so each (feature, document) is at
    # most two runs, side by side. Arrays are built in place and dropped as soon as they are used:
    # on a virtual machine every page touched for the first time is expensive (seconds per few
    # GB), and a large corpus has tens of millions of keys.
    keys = _feature_document_keys(unigrams, lengths, n_words, n_documents, bigrams,
                                  prefix_lengths if weighted else None)
    del unigrams
    _sort_on_two_cores(keys)
    pair_keys, pair_counts = _runs(keys)
    del keys
    if weighted:
        # the low bit, written one byte a key (not as another eight-byte array of the keys)
        in_prefix = np.bitwise_and(pair_keys, 1, out=np.empty(len(pair_keys), dtype=np.uint8), casting="unsafe")
        pair_counts[in_prefix.view(bool)] *= prefix_weight
        del in_prefix
        pair_keys >>= 1
        pair_starts = _run_starts(pair_keys)
        pair_keys, pair_counts = pair_keys[pair_starts], np.add.reduceat(pair_counts, pair_starts)
        del pair_starts
    pair_features, pair_documents = np.divmod(pair_keys, n_documents)
    del pair_keys
    pair_documents = pair_documents.astype(np.int32)
    feature_starts = _run_starts(pair_features)
    frequency = np.diff(feature_starts, append=len(pair_features))
    keep = _within_document_frequency(frequency, n_documents, min_df, max_df)
    kept = pair_features[feature_starts][keep]
    del pair_features, feature_starts
    names = [words[f] if f < n_words else f"{words[(f - n_words) // n_words]} {words[(f - n_words) % n_words]}"
             for f in kept.tolist()]
    order = sorted(range(len(names)), key=names.__getitem__)
    if not keep.all():
        kept_pairs = np.repeat(keep, frequency)
        pair_counts, pair_documents = pair_counts[kept_pairs], pair_documents[kept_pairs]
        del kept_pairs
    by_feature = sp.csc_matrix((pair_counts, pair_documents, np.concatenate([[0], np.cumsum(frequency[keep])])),
                               shape=(n_documents, len(kept)))
    del pair_counts, pair_documents
    counts = by_feature[:, order].tocsr()
    del by_feature
    counts.sort_indices()
    return [names[i] for i in order], counts


def _stemmed(words: list[str], unigrams: np.ndarray, stem: Stem,
             surface: dict[str, str] | None) -> tuple[list[str], np.ndarray]:
    """(the stems in id order, every token's stem id) from the words and their tokens' word ids."""
    stems = stem(words)
    index: dict[str, int] = {}
    to_stem = np.fromiter((index.setdefault(s, len(index)) for s in stems), dtype=np.int64, count=len(stems))
    if surface is not None:
        frequency = np.bincount(unigrams, minlength=len(words)).tolist()
        best: dict[str, tuple[int, str]] = {}
        for word, stemmed, count in zip(words, stems, frequency, strict=True):
            held = best.get(stemmed)
            if held is None or count > held[0] or (count == held[0] and word < held[1]):
                best[stemmed] = (count, word)
        surface.update({stemmed: word for stemmed, (_, word) in best.items() if word != stemmed})
    return list(index), to_stem[unigrams].astype(unigrams.dtype)


def _sort_on_two_cores(keys: np.ndarray) -> None:
    """``keys.sort()``, a large array split first (in place, around its median) into halves
    that two threads sort at once: numpy sorts without holding the GIL."""
    half = len(keys) // 2
    if len(keys) < PARALLEL_SORT_FROM:
        keys.sort()
        return
    keys.partition(half)
    with ThreadPoolExecutor(max_workers=2) as sorters:
        list(sorters.map(np.ndarray.sort, (keys[:half], keys[half:])))


def _runs(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each distinct key, how often it occurs, float64) of a sorted array."""
    starts = _run_starts(sorted_keys)
    counts = np.empty(len(starts), dtype=np.float64)  # the gaps between starts, written as floats at once
    np.subtract(starts[1:], starts[:-1], out=counts[:-1])
    counts[-1:] = len(sorted_keys) - starts[-1:]
    return sorted_keys[starts], counts


def _feature_document_keys(unigrams: np.ndarray, lengths: np.ndarray, n_words: int, n_documents: int,
                           bigrams: bool, prefix_lengths: np.ndarray | None) -> np.ndarray:
    """``feature * n_documents + document`` of every unigram and (within a document) bigram,
    int64; with ``prefix_lengths``, times two plus one for the grams inside a document's prefix."""
    documents = np.repeat(np.arange(n_documents, dtype=np.int32), lengths)
    same_document = documents[:-1] == documents[1:] if bigrams else np.zeros(0, dtype=bool)
    n_unigrams, n_bigrams = len(unigrams), int(np.count_nonzero(same_document))
    keys = np.empty(n_unigrams + n_bigrams, dtype=np.int64)
    head, tail = keys[:n_unigrams], keys[n_unigrams:]
    np.multiply(unigrams, n_documents, out=head, dtype=np.int64)
    head += documents
    if n_bigrams:
        np.multiply(unigrams[:-1][same_document], n_words, out=tail, dtype=np.int64)
        tail += unigrams[1:][same_document]
        tail += n_words
        tail *= n_documents
        tail += documents[:-1][same_document]
    if prefix_lengths is not None:
        in_prefix = _in_prefix(lengths, prefix_lengths)
        keys *= 2
        head += in_prefix
        if n_bigrams:
            tail += in_prefix[1:][same_document]  # both words in the prefix: the second one is
    return keys


def _in_prefix(lengths: np.ndarray, prefix_lengths: np.ndarray) -> np.ndarray:
    """1 for each token inside its document's prefix, else 0 (int8), for documents of these
    lengths laid end to end: a step up where a document starts, a step down where its prefix
    ends, summed in one byte a token (not eight, as token places would take)."""
    starts = np.cumsum(lengths) - lengths
    steps = np.zeros(int(lengths.sum()) + 1, dtype=np.int8)
    np.add.at(steps, starts, 1)
    np.add.at(steps, starts + prefix_lengths, -1)
    return np.cumsum(steps[:-1], dtype=np.int8)


def _run_starts(values: np.ndarray) -> np.ndarray:
    """Where each run of equal values of a sorted array starts (one mask, filled in place)."""
    first = np.empty(len(values), dtype=bool)
    first[:1] = True
    np.not_equal(values[1:], values[:-1], out=first[1:])
    return np.flatnonzero(first)


def _token_ids(texts: Sequence[str], token_pattern: str, stop_words: frozenset[str], parallel_from: int,
               prefixes: Sequence[str] | None = None) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray | None]:
    """(the words in id order, every token's word id (int32), the number of tokens of each
    document, of which the first so many are its prefix's)."""
    documents = list(zip(prefixes, texts, strict=True)) if prefixes is not None else texts

    def here(part: Sequence[Any]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray | None]:
        return _token_ids_here(part, token_pattern, stop_words, prefixes is not None)

    parts = parallel.parts_for(len(texts), parallel_from // 2)
    if parts < 2:
        return here(documents)
    results = parallel.in_parts(here, documents, parts)
    words, ids, lengths, prefix_lengths = results[0]
    index = {w: i for i, w in enumerate(words)}
    all_ids, all_lengths, all_prefix_lengths = [ids], [lengths], [prefix_lengths]
    for child_words, child_ids, child_lengths, child_prefix_lengths in results[1:]:
        to_ours = np.array([index.setdefault(w, len(index)) for w in child_words], dtype=np.int32)
        all_ids.append(to_ours[child_ids])
        all_lengths.append(child_lengths)
        all_prefix_lengths.append(child_prefix_lengths)
    return (list(index), np.concatenate(all_ids), np.concatenate(all_lengths),
            None if prefixes is None else np.concatenate(all_prefix_lengths))  # type: ignore[arg-type]


DEFAULT_TOKEN_PATTERN = r"(?u)\b[^\W\d_][^\W_]+\b"  # nosec B105  # a regex, not a password; scikit-learn's; the ASCII fast path below is its equivalent
# ASCII text, lowercased: every byte that is not a word character (\w: letters, digits, "_")
# becomes a space, so a split gives the maximal runs of word characters.
_ASCII_WORD_RUNS = bytes(c if chr(c).isascii() and (chr(c).isalnum() or chr(c) == "_") else 0x20 for c in range(256))


def _token_ids_here(documents: Sequence[Any], token_pattern: str,  # texts, or (prefix, text) pairs
                    stop_words: frozenset[str], with_prefixes: bool,
                    ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray | None]:
    """Word ids as int32 (half the bytes to send back from the child).

    Each candidate token is looked up once in a dictionary, with no Python code per token:
    stop words, and for ASCII text the runs the token pattern would not match, are given ids
    like any word and dropped afterwards by one array mask over their ids. With the default
    pattern an ASCII text's candidates are its runs of word characters (a translate and a
    split); the pattern matches exactly the runs of two or more that start with a letter and
    hold no "_" (a run is all word characters, so \\b only falls at its ends)."""
    vocabulary: defaultdict[bytes, int] = defaultdict()
    vocabulary.default_factory = vocabulary.__len__  # a new word gets the next id
    word_id = vocabulary.__getitem__
    findall = re.compile(token_pattern).findall
    fast = token_pattern == DEFAULT_TOKEN_PATTERN

    def candidates(text: str) -> list[bytes]:
        text = text.lower()
        if fast and text.isascii():
            return text.encode("ascii").translate(_ASCII_WORD_RUNS).split()
        return [t.encode("utf-8") for t in findall(text)]

    flat = array("q")
    lengths = np.zeros(len(documents), dtype=np.int64)
    prefix_lengths = np.zeros(len(documents), dtype=np.int64) if with_prefixes else None
    for n, document in enumerate(documents):
        if with_prefixes:  # tokens cannot span the space that joins the two parts
            prefix, text = document
            head = candidates(prefix)
            prefix_lengths[n] = len(head)  # type: ignore[index]  # (an array when with_prefixes)
            flat.extend(map(word_id, head))
            found = candidates(text)
            lengths[n] = len(head) + len(found)
        else:
            found = candidates(document)
            lengths[n] = len(found)
        flat.extend(map(word_id, found))
    words = [w.decode("utf-8") for w in vocabulary]
    is_token = np.fromiter((_is_token(w, stop_words, fast) for w in words), dtype=bool, count=len(words))
    ids = np.frombuffer(flat, dtype=np.int64)
    kept = is_token[ids]
    documents_of = np.repeat(np.arange(len(documents)), lengths)
    if prefix_lengths is not None:
        prefix_lengths = np.bincount(documents_of[kept & _in_prefix(lengths, prefix_lengths).view(bool)],
                                     minlength=len(documents)).astype(np.int64)
    lengths = np.bincount(documents_of[kept], minlength=len(documents)).astype(np.int64)
    renumbered = (np.cumsum(is_token) - 1).astype(np.int32)
    return [w for w, keep in zip(words, is_token.tolist(), strict=True) if keep], renumbered[ids[kept]], lengths, \
        prefix_lengths


def _is_token(word: str, stop_words: frozenset[str], runs: bool) -> bool:
    """Whether a candidate is a token: not a stop word, and with ``runs`` (the default
    pattern, whose own matches always pass this too) two or more characters, a letter first,
    no "_"."""
    if runs and (len(word) < 2 or word[0].isdecimal() or "_" in word):
        return False
    return word not in stop_words


def count_known(texts: Sequence[str], vocabulary: dict[str, int], token_pattern: str, stop_words: frozenset[str],
                ngram_max: int, stem: Stem | None = None) -> sp.csr_matrix:
    """Counts of the vocabulary's terms in ``texts`` (``CountVectorizer.transform``), of the
    tokens' stems with ``stem``."""
    tokens = analyzer(token_pattern, stop_words)
    rows: list[int] = []
    columns: list[int] = []
    for n, text in enumerate(texts):
        found = tokens(text)
        if stem is not None:
            found = stem(found)
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


def _fit_with_scikit_learn(texts: Sequence[str], counting: Counting, prefixes: Sequence[str] | None = None,
                           prefix_weight: float = 1.0) -> tuple[list[str], sp.csr_matrix]:
    """``fit_counts`` by CountVectorizer itself (longer n-grams, or keys too wide for int64); the
    prefixes joined to their texts here, where only this path needs the joined strings."""
    from sklearn.feature_extraction.text import CountVectorizer

    token_pattern, stop_words, ngram_max = counting.token_pattern, counting.stop_words, counting.ngram_max
    min_df, max_df, stem = counting.min_df, counting.max_df, counting.stem

    if stem is not None:
        tokens = analyzer(token_pattern, stop_words)

        def grams(text: str) -> list[str]:
            found = stem(tokens(text))
            return [" ".join(found[i:i + size]) for size in range(1, ngram_max + 1) for i in range(len(found) - size + 1)]

        counter = CountVectorizer(analyzer=grams, min_df=min_df, max_df=max_df, dtype=np.float64)
    else:
        counter = CountVectorizer(stop_words=sorted(stop_words), token_pattern=token_pattern, lowercase=True,
                                  ngram_range=(1, ngram_max), min_df=min_df, max_df=max_df, dtype=np.float64)
    joined = texts if prefixes is None else [f"{p} {t}" for p, t in zip(prefixes, texts, strict=True)]
    counts = counter.fit_transform(joined).tocsr()
    terms = counter.get_feature_names_out().tolist()
    if prefixes is not None and prefix_weight != 1:
        counts = (counts + (prefix_weight - 1) * count_known(prefixes, {t: i for i, t in enumerate(terms)},
                                                             token_pattern, stop_words, ngram_max, stem)).tocsr()
    counts.sort_indices()
    return terms, counts
