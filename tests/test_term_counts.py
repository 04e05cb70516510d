"""Our term counting must be scikit-learn's CountVectorizer, term for term and count for count."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import CountVectorizer

from recommender.base import parallel
from recommender.model.term_counts import (
    Counting,
    analyzer,
    count_known,
    english_stemmer,
    fit_counts,
)
from recommender.model.tfidf import TOKEN_PATTERN, stop_words

from conftest import SEEDS

STOP = stop_words()


def _scikit_learn(texts: list[str], ngram_max: int, min_df: float, max_df: float):
    counter = CountVectorizer(stop_words=sorted(STOP), token_pattern=TOKEN_PATTERN, lowercase=True,
                              ngram_range=(1, ngram_max), min_df=min_df, max_df=max_df, dtype=np.float64)
    return counter.get_feature_names_out().tolist() if counter.fit(texts) else [], counter


def _assert_same(texts: list[str], ngram_max: int, min_df: float, max_df: float, parallel_from: int = 10**9) -> None:
    try:
        expected_terms, counter = _scikit_learn(texts, ngram_max, min_df, max_df)
    except ValueError as exc:
        with pytest.raises(ValueError):
            fit_counts(texts, Counting(TOKEN_PATTERN, STOP, ngram_max, min_df, max_df))
        assert str(exc)
        return
    terms, counts = fit_counts(texts, Counting(TOKEN_PATTERN, STOP, ngram_max, min_df, max_df), parallel_from)
    assert terms == expected_terms
    assert counts.dtype == np.float64 and counts.has_sorted_indices
    assert (counts != counter.transform(texts)).nnz == 0
    vocabulary = {t: i for i, t in enumerate(terms)}
    titles = [t[:60] for t in texts]
    assert (count_known(titles, vocabulary, TOKEN_PATTERN, STOP, ngram_max) != counter.transform(titles)).nnz == 0


@pytest.mark.parametrize(("ngram_max", "min_df", "max_df"), [(2, 2, 0.5), (1, 1, 1.0), (2, 1, 1.0), (2, 3, 0.3),
                                                             (3, 2, 0.5), (2, 0.01, 0.9), (2, 2, 40)])
def test_the_seed_digests_are_counted_as_scikit_learn_counts_them(ngram_max: int, min_df: float, max_df: float):
    texts = [line for path in SEEDS for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(texts) > 100
    _assert_same(texts, ngram_max, min_df, max_df)
    _assert_same(texts, ngram_max, min_df, max_df, parallel_from=10)  # half tokenized by a forked child
    parallel.set_jobs(3)
    _assert_same(texts, ngram_max, min_df, max_df, parallel_from=10)  # two thirds by two children


words = st.sampled_from(["graph", "Graph", "neural", "the", "of", "model", "x1", "é", "naïve", "a", "β-vae",
                         "state", "art", "under_score", "42", "l'été", "Deep", "learning", "ΔΣ",
                         # ASCII runs the token pattern matches only in part or not at all
                         "1st", "x_", "_ab", "ab12", "don't", "e.g.", "C++", "3D-CNN", "GPT-4o", "__init__", "K",
                         "\u212a-means", "café", "naive"])


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(st.lists(words, max_size=25).map(" ".join) | st.text(max_size=80), max_size=25),
       ngram_max=st.integers(1, 2), min_df=st.integers(1, 3), max_df=st.sampled_from([1.0, 0.8, 0.5]))
def test_any_corpus_is_counted_as_scikit_learn_counts_it(texts: list[str], ngram_max: int, min_df: int, max_df: float):
    _assert_same(texts, ngram_max, min_df, max_df)


def test_a_large_key_array_sorted_on_two_cores_is_sorted_like_numpy_sorts_it():
    from recommender.model.term_counts import PARALLEL_SORT_FROM, _runs, _sort_on_two_cores

    keys = np.random.default_rng(7).zipf(1.3, PARALLEL_SORT_FROM + 12_345).astype(np.int64)  # many equal keys
    expected = np.sort(keys)
    _sort_on_two_cores(keys)
    np.testing.assert_array_equal(keys, expected)
    distinct, counts = _runs(keys)
    np.testing.assert_array_equal(distinct, np.unique(expected))
    np.testing.assert_array_equal(counts, np.unique(expected, return_counts=True)[1].astype(np.float64))


def test_our_copy_of_the_english_stop_words_is_scikit_learns():
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from recommender.model.tfidf import ENGLISH_STOP_WORDS as ours

    assert ours == ENGLISH_STOP_WORDS


def _assert_same_with_prefixes(prefixes: list[str], texts: list[str], ngram_max: int, min_df: float, max_df: float,
                               weight: float, parallel_from: int = 10**9) -> None:
    """Titles as prefixes weighted ``weight``: what fitting the joined texts and adding the
    titles' own counts ``weight - 1`` times gives."""
    joined = [f"{p} {t}" for p, t in zip(prefixes, texts, strict=True)]
    try:
        expected_terms, counter = _scikit_learn(joined, ngram_max, min_df, max_df)
    except ValueError:
        with pytest.raises(ValueError):
            fit_counts(texts, Counting(TOKEN_PATTERN, STOP, ngram_max, min_df, max_df), prefixes=prefixes, prefix_weight=weight)
        return
    expected = counter.transform(joined) + (weight - 1) * counter.transform(prefixes)
    terms, counts = fit_counts(texts, Counting(TOKEN_PATTERN, STOP, ngram_max, min_df, max_df), parallel_from,
                               prefixes=prefixes, prefix_weight=weight)
    assert terms == expected_terms
    assert counts.has_sorted_indices
    np.testing.assert_allclose(counts.toarray(), expected.toarray(), rtol=1e-12)


@pytest.mark.parametrize(("ngram_max", "weight"), [(2, 2.0), (2, 3.5), (1, 2.0), (3, 2.0), (2, 1.0)])
def test_weighted_titles_count_as_the_joined_text_plus_the_extra_title_counts(ngram_max: int, weight: float):
    lines = [line for path in SEEDS for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    prefixes, texts = lines[::2], lines[1::2][:len(lines[::2])]
    prefixes = prefixes[:len(texts)]
    _assert_same_with_prefixes(prefixes, texts, ngram_max, 2, 0.5, weight)
    _assert_same_with_prefixes(prefixes, texts, ngram_max, 2, 0.5, weight, parallel_from=10)


@settings(max_examples=150, deadline=None)
@given(documents=st.lists(st.tuples(st.lists(words, max_size=6).map(" ".join) | st.text(max_size=20),
                                    st.lists(words, max_size=25).map(" ".join) | st.text(max_size=80)), max_size=25),
       ngram_max=st.integers(1, 2), min_df=st.integers(1, 3), weight=st.sampled_from([1.0, 2.0, 2.5, 4.0]))
def test_any_titled_corpus_is_counted_as_its_joined_texts_plus_the_extra_title_counts(documents, ngram_max, min_df,
                                                                                       weight):
    _assert_same_with_prefixes([p for p, _ in documents], [t for _, t in documents], ngram_max, min_df, 1.0, weight)


@pytest.mark.parametrize("ngram_max, parallel_from", [(1, 10**9), (2, 10**9), (2, 10), (3, 10**9)])
def test_stemmed_counts_are_countvectorizer_with_a_stemming_analyzer(ngram_max: int, parallel_from: int):
    """Each token counts as its stem (stop words out first), in the fast counter, its forked
    parts and the scikit-learn path for longer n-grams alike."""
    texts = [line for path in SEEDS for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    stem, tokens = english_stemmer(), analyzer(TOKEN_PATTERN, STOP)

    def grams(text: str) -> list[str]:
        found = stem(tokens(text))
        return [" ".join(found[i:i + n]) for n in range(1, ngram_max + 1) for i in range(len(found) - n + 1)]

    counter = CountVectorizer(analyzer=grams, min_df=2, max_df=0.5, dtype=np.float64)
    expected = counter.fit_transform(texts)
    surface: dict[str, str] = {}
    terms, counts = fit_counts(texts, Counting(TOKEN_PATTERN, STOP, ngram_max, 2, 0.5, stem), parallel_from, surface=surface)
    assert terms == counter.get_feature_names_out().tolist()
    assert (counts != expected).nnz == 0
    vocabulary = {t: i for i, t in enumerate(terms)}
    titles = [t[:60] for t in texts]
    assert (count_known(titles, vocabulary, TOKEN_PATTERN, STOP, ngram_max, stem) != counter.transform(titles)).nnz == 0
    if ngram_max <= 2:  # (the scikit-learn path does not name the words)
        assert surface and all(stem([word]) == [stemmed] for stemmed, word in surface.items())


def test_stems_gather_the_forms_of_a_word_and_are_shown_as_its_most_frequent_form():
    texts = ["graph networks for molecules", "networked sensing", "deep networks", "networks of networks", "graph"]
    surface: dict[str, str] = {}
    terms, counts = fit_counts(texts, Counting(TOKEN_PATTERN, STOP, 1, 1, 1.0, english_stemmer()), surface=surface)
    assert "network" in terms and "networks" not in terms
    assert counts[:, terms.index("network")].toarray().ravel().tolist() == [1, 1, 1, 2, 0]
    assert surface["network"] == "networks"  # five of its six tokens
    assert "graph" not in surface  # a stem that is its own word needs no other name
