"""Property-based tests (Hypothesis): every parser, fed arbitrary bytes and text, either parses
or raises our own error type; a refused file writes nothing."""

from __future__ import annotations

import json
import re
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from recommender.base.config import load_config
from recommender.base.errors import ConfigError, InputError
from recommender.sources import (
    arxiv,
    bibtex,
    hf_daily,
    jsonl,
    parse,
    read_library,
    ris,
    trending_page,
    zotero_csv,
)
from recommender.store import Store

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PARSERS = {
    "auto": lambda data: parse(data, "x", "auto", year_hint=date(2025, 1, 1)),
    "trending_page": lambda data: trending_page.parse(data, "x", year_hint=date(2025, 1, 1)),
    "jsonl": lambda data: jsonl.parse(data, "x"),
    "hf_daily": lambda data: hf_daily.parse(data, "x"),
    "arxiv": lambda data: arxiv.parse(data, "x"),
    "bibtex": lambda data: bibtex.read(data, "x"),
    "zotero_csv": lambda data: zotero_csv.read(data, "x"),
    "ris": lambda data: ris.read(data, "x"),
    "library": lambda data: read_library(data, "x"),
}
text_like = st.one_of(
    st.binary(max_size=2000),
    st.text(max_size=2000).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.lists(st.sampled_from(["Mar 11", "", "Title", "Abstract text here.", "{", '{"title": "x"}', "@article{k,",
                              "title = {T}}", "<rss>", "<item>", "[", "]", "\x00", "\ufeff", "\r", "TY  - JOUR",
                              "ER  -", '"Key","Item Type","Title"', "AU  - Doe, J.", "$\\alpha$", "\\v{s}", "%"]),
             max_size=30).map(lambda parts: "\n".join(parts).encode("utf-8")),
)


@pytest.mark.parametrize("kind", sorted(PARSERS))
@SETTINGS
@given(data=text_like)
def test_parsers_raise_only_our_error(kind: str, data: bytes):
    try:
        result = PARSERS[kind](data)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    entries = result if isinstance(result, list) else result.entries
    for entry in entries:
        assert "\n" not in entry.title and "\r" not in entry.title


@SETTINGS
@given(records=st.lists(st.one_of(
    st.fixed_dictionaries({"title": st.text(max_size=80), "abstract": st.text(max_size=200)},
                          optional={"id": st.one_of(st.text(max_size=10), st.integers()),
                                    "authors": st.one_of(st.text(max_size=30), st.lists(st.text(max_size=20), max_size=3)),
                                    "url": st.text(max_size=40)}),
    st.text(max_size=40)), min_size=1, max_size=8))
def test_jsonl_batches_are_stored_whole_or_not_at_all(tmp_path: Path, records: list[object]):
    lines = [json.dumps(r) if isinstance(r, dict) else r for r in records]
    data = "\n".join(str(line) for line in lines).encode("utf-8", "surrogatepass")
    # a database per example: tmp_path is shared by all of them, and a repeated draw would be
    # (rightly) skipped as a batch already ingested
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    store = Store.open(f"sqlite:///{folder / 'prop.sqlite'}")
    store.upgrade_schema()
    before = (len(store.papers()), len(store.batches()))
    try:
        batch = parse(data, "x.jsonl", "jsonl")
    except InputError:
        assert (len(store.papers()), len(store.batches())) == before
        store.close()
        return
    store.ingest_batch(batch, "prop", __import__("hashlib").sha256(data).hexdigest(), "run")
    assert len(store.batches()) == before[1] + 1
    assert len(store.batch_entries(store.all_batch_ids()[-1:])) >= 1
    store.close()


@SETTINGS
@given(text=st.one_of(st.text(max_size=600), st.lists(st.sampled_from([
    "[[users]]", 'email = "a@b.org"', "max_items = 5", 'max_items = "x"', "[smtp]", "port = 99999",
    'security = "tls"', "[ranking]", "title_weight = -3", "[database]", 'url = "nope"', "= =", "[[sources]]",
    'kind = "arxiv"', 'url = "http://x"', 'send_at = "25:61"', "timezone = 5"]), max_size=20).map("\n".join)))
def test_config_loading_raises_only_config_errors(tmp_path: Path, text: str):
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass") if "\ud800" not in text else path.write_bytes(
        text.encode("utf-8", "surrogatepass"))
    try:
        load_config(path)
    except ConfigError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)


@settings(max_examples=300)
@given(text=st.text(max_size=80) | st.text(alphabet="ab_^{}~\\$ 12-.,'()\u200bé\u0301\u2013", max_size=50))
def test_cleaning_for_ranking_gives_the_tokens_of_every_pass_and_punctuation_removed(text: str):
    """for_ranking runs each LaTeX pass only where its marker occurs and leaves punctuation to the
    tokenizer: the tokens must be those of running every pass and replacing punctuation by spaces."""
    from recommender.base import text as cleaning
    from recommender.model.term_counts import analyzer
    from recommender.model.tfidf import TOKEN_PATTERN

    every_pass = cleaning._ZERO_WIDTH.sub("", text)
    every_pass = cleaning._CITE_KEY.sub(" ", every_pass)
    every_pass = cleaning._LATEX_COMMAND.sub(" ", every_pass)
    every_pass = cleaning._LATEX_SCRIPT.sub(" ", every_pass).replace("$", " ")
    tokens = analyzer(TOKEN_PATTERN, frozenset())
    # (Σ excepted: it lowercases to ς or σ by its neighbours, punctuation included.)
    assume("Σ" not in text)
    assert tokens(cleaning.for_ranking(text)) == tokens(re.sub(r"[^\w\s-]+", " ", every_pass))


@settings(max_examples=200, deadline=None)
@given(user=st.text(max_size=30), title=st.text(max_size=80), abstract=st.text(max_size=300),
       authors=st.lists(st.text(max_size=20), max_size=3), url=st.text(max_size=40),
       score=st.floats(-10, 10), rank=st.integers(1, 100), nearest=st.lists(
           st.tuples(st.text(max_size=10), st.text(max_size=40), st.floats(0, 1)), max_size=2),
       terms=st.lists(st.tuples(st.text(max_size=12), st.floats(0, 1)), max_size=3))
def test_a_recommendation_line_is_the_json_of_its_object(user, title, abstract, authors, url, score, rank, nearest,
                                                         terms):
    from recommender.base.domain import Explanation, Paper, Recommendation, SharedTerm

    why = Explanation(personalized=True, nearest=tuple(nearest), terms=tuple(SharedTerm(*t) for t in terms))
    pick = Recommendation(user, Paper("p1", title, abstract, tuple(authors), url), score, rank, lambda: why)
    line = pick.as_json_line()
    assert line == json.dumps(pick.as_json(), ensure_ascii=False)
    assert json.loads(line) == pick.as_json()


# Texts made of words and what separates them: the cases a search could get wrong (tabs and
# no-break spaces between words, "_" or a digit joined to a word, LaTeX, final sigma, İ).
_PHRASE_TEXT = st.lists(st.tuples(st.sampled_from(["ab", "cd", "Ab", "x1", "_ab", "ab_", "1ab", "abé", "é", "ΣΑΣ", "İab"]),
                                  st.sampled_from([" ", "  ", "\t", "\n", "\u00a0", "\u2003", "-", ". ", "", "_",
                                                   " \\emph ", "$", "~\\cite{ab} "])),
                        max_size=12).map(lambda pieces: "".join(w + s for w, s in pieces)) | st.text(max_size=40)


@settings(max_examples=400, deadline=None)
@example(title="_ab cd", abstract="ab_ cd", start=0, length=1, other=["ab", "cd"])
@example(title="1ab\u00a0cd", abstract="Ab\tcd2", start=0, length=1, other=["ab", "cd"])
@given(title=_PHRASE_TEXT, abstract=_PHRASE_TEXT, start=st.integers(0, 30), length=st.integers(1, 3),
       other=st.lists(st.sampled_from(["ab", "cd", "abé", "x1", "σας"]), min_size=1, max_size=3))
def test_a_paper_writes_a_phrase_exactly_where_its_tokens_hold_it(title: str, abstract: str, start: int, length: int,
                                                                  other: list[str]):
    """The starred paper's check by search (WrittenPaper.writes) answers as reading its words
    would: a phrase is there when consecutive tokens of the title or of the abstract, with
    only spaces between them, are its words."""
    from recommender.model.written_terms import WrittenPaper, _words

    runs = [_words(title), _words(abstract)]
    tokens = runs[0] + [""] + runs[1]
    picked = tokens[start:start + length]
    for words in (picked, other):
        phrase = " ".join(w.lower() for w in words)
        if not all(re.fullmatch(r"[^\W\d_][^\W_]+", w) for w in phrase.split(" ")):
            continue  # (not tokens: no explanation's term is such a phrase)
        parts = phrase.split(" ")
        held = any(run[i:i + len(parts)] == parts for run in runs for i in range(len(run)))
        assert WrittenPaper("x", title, abstract).writes(phrase) == held, (title, abstract, phrase)


# Abstracts of words with several forms of one stem, filler, stop words and run breaks between them.
_FORMS_TEXT = st.lists(st.tuples(st.sampled_from(["network", "networks", "Networked", "optimal", "optimization",
                                                  "transport", "type", "ii", "the", "of", "learning", "learns",
                                                  "σας", "x1", "a"]),
                                 st.sampled_from([" ", " ", "  ", ", ", "-", "\t", ". ", " of "])),
                       min_size=1, max_size=14).map(lambda pieces: "".join(w + s for w, s in pieces))


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.tuples(_FORMS_TEXT, _FORMS_TEXT), min_size=2, max_size=5))
def test_a_batch_s_stored_forms_are_the_forms_its_texts_give(texts: list[tuple[str, str]]):
    """What the refit stores of a batch (written_terms.read_batch) answers every term of each
    paper's row as reading the paper's text does, and one_forms codes it exactly: the one
    phrase, no phrase, or "look it up" where the text writes the term several ways."""
    from recommender.base.config import RankingConfig
    from recommender.base.domain import Paper
    from recommender.model import tfidf
    from recommender.model.written_terms import LOOK_UP, NO_FORM, WrittenForms, read_batch

    ids = [f"p{i}" for i in range(len(texts))]
    try:
        model = tfidf.fit(ids, [t for t, _ in texts], [a for _, a in texts], RankingConfig(), 1)
    except ValueError:
        return  # (no term at all: nothing to explain)
    papers = [Paper(pid, title, abstract) for pid, (title, abstract) in zip(ids, texts, strict=True)]
    stored = read_batch(model, papers[1:])  # the first paper is not in the batch
    forms = WrittenForms(model.stem)
    forms.use(stored, model)
    reading = WrittenForms(model.stem)
    for paper in papers:
        row = model.matrix[model.index[paper.id]]
        columns = np.array([sorted(row.indices.tolist()) + [-1]], dtype=np.int64)
        codes = forms.one_forms([paper.id], columns)[0].tolist()
        read = reading.read_text(paper.title, paper.abstract)
        for column, code in zip(columns[0].tolist(), codes, strict=True):
            if column < 0:
                assert code == NO_FORM
                continue
            term = model.terms[column]
            truth = read.forms(term)
            assert forms.text(paper.id, paper.title, paper.abstract).forms(term, column) == truth
            assert forms.text(paper.id, paper.title, paper.abstract).forms(term) == truth
            if paper is papers[0] or len(truth) > 1:
                assert code == LOOK_UP
            elif truth:
                assert code >= 0 and truth == {forms.phrases[code]: truth[forms.phrases[code]]}
            else:
                assert code == NO_FORM
