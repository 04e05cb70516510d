"""The terms of an explanation as the papers write them.

The TF-IDF model's terms are stems (``[ranking] stem``) and its bigrams join words with the
stop words between them removed, so a term shown as the model keeps it can be a phrase that
occurs in neither paper ("optimization transport" where both say "optimal transport").
An explanation names a shared term only where the same word or phrase, case aside, is written
in both papers: each text's runs of words (words separated by nothing but spaces) are read
once with their stems, a term's stems are looked up as consecutive words of a run, and the
term is shown as the form both texts write (the one they use most). Filler that the model keeps (roman
numerals, "type", "consider", ...) is never shown.
"""

from __future__ import annotations

import re
import sys
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from recommender.base.domain import Paper
from recommender.base.text import for_ranking
from recommender.model.term_counts import Stem
from recommender.model.tfidf import (
    ACADEMIC_STOP_WORDS,
    ENGLISH_STOP_WORDS,
    TOKEN_PATTERN,
    TextModel,
)

# Words the model counts but which say nothing about a paper's subject on their own: the
# vocabulary of abstracts' argument ("we consider", "we establish"), vague measure ("large",
# "high"), roman numerals; with scikit-learn's English stop words and the model's own list.
FILLER = ENGLISH_STOP_WORDS | ACADEMIC_STOP_WORDS | frozenset("""
abstract additionally aim aims allow allows analyse analyze analysed analyzed apply applied
article assume assumed believe case cases certain chapter commonly compare compared comparison
concept conclude conclusion consider considered considering consists contribution contributions
corresponding current currently deal define defined depend depends derive derived describe
described determine determined develop developed different directly discuss discussed effective
effectively efficient efficiently establish established evaluate evaluated example examples exist
exists explore explored fact finally focus following furthermore generally given goal good great
high higher highly important improve improved improves include including increase increasing
introduced investigate investigated issue issues known large larger lead leads like likely low
lower main mainly make makes making moreover need needs non obtain obtained particular
particularly possible practical previous previously prove proved provide provided provides
recent recently related report reported require required requires respectively second section
showed simple small specific specifically suggest suggests technique techniques type types
typically various way ways widely yield yields
ii iii iv vi vii viii ix xi xii xiii xiv xv
""".split())

MAX_TEXTS = 10_000  # texts kept read (about 5 kB each), so memory does not grow with a corpus
NO_FORM, LOOK_UP = -1, -2  # codes of WrittenForms.one_forms
# 1: BatchForms (the forms of each term of a batch paper's row).
FORMS_FORMAT = 1

# A token (group 1), or one character of anything else that is not a space (a run break).
_PIECES = re.compile(rf"({TOKEN_PATTERN.removeprefix('(?u)')})|\S")


@lru_cache(maxsize=65_536)  # (the same phrases recur in every text)
def is_filler(phrase: str) -> bool:
    """Whether a shown term says nothing about a subject: every word of it is filler ("type
    ii"; "large language" still says something)."""
    return FILLER.issuperset(phrase.split(" "))


@dataclass(frozen=True, slots=True)
class WrittenText:
    """One text's words as written (lower-cased) and their stems, "" between runs (a phrase
    never spans one)."""

    words: list[str]
    stems: list[str]
    # Terms already looked up: a pick is explained to many readers, mostly by the same terms.
    looked_up: dict[str, dict[str, int]] = field(default_factory=dict)

    def forms(self, term: str, column: int | None = None) -> dict[str, int]:
        """The model's ``term`` (its stems, space-joined) as this text writes it, filler left
        out: {phrase: times}. (``column``: as for ``_ReadForms.forms``.)"""
        found = self.looked_up.get(term)
        if found is None:
            found = self.looked_up[term] = self._forms(term)
        return found

    def _forms(self, term: str) -> dict[str, int]:
        parts = term.split(" ")
        found: dict[str, int] = {}
        stems, start = self.stems, -1
        # The first stem's places by list.index (a C scan): a few terms are looked up in a
        # text, so an index of every stem cost more than these scans (bench/RESULTS.md, whole command).
        while True:
            try:
                start = stems.index(parts[0], start + 1)
            except ValueError:
                break
            end = start + len(parts)
            if self.stems[start:end] == parts:  # (equal stems: no run break inside)
                phrase = " ".join(self.words[start:end])
                found[phrase] = found.get(phrase, 0) + 1
        return _without_filler(found)

    def every_form(self, ngram_max: int) -> dict[str, dict[str, int]]:
        """``forms`` of every term of up to ``ngram_max`` stems the text holds, in one pass
        (filler not yet left out): {term: {phrase: times}}."""
        words, stems = self.words, self.stems
        table: dict[str, dict[str, int]] = {}
        for n in range(1, ngram_max + 1):
            for start in range(len(stems) - n + 1):
                parts = stems[start:start + n]
                if "" in parts:  # a run break: no phrase spans it
                    continue
                found = table.setdefault(" ".join(parts), {})
                phrase = " ".join(words[start:start + n])
                found[phrase] = found.get(phrase, 0) + 1
        return table


def _without_filler(found: dict[str, int]) -> dict[str, int]:
    if len(found) == 1:  # (nearly always)
        return {} if is_filler(next(iter(found))) else found
    return {p: n for p, n in found.items() if not is_filler(p)}


class WrittenPaper:
    """A paper's title and abstract lower-cased as the tokenizer reads them, searched for whole
    phrases without splitting them into words."""

    __slots__ = ("key_title_abstract", "_lowered")

    def __init__(self, key: str, title: str, abstract: str):
        self.key_title_abstract = (key, title, abstract)
        self._lowered: tuple[str, str] | None = None

    def writes(self, phrase: str) -> bool:
        """Whether title or abstract writes ``phrase`` (lower-case words, one space apart) as
        consecutive tokens, as ``WrittenText.forms`` would find it: tokens are the longest runs
        of word characters, so the phrase must neither start nor end inside a word, and only
        spaces may separate its words (collapsed to one here; anything else breaks a run)."""
        if self._lowered is None:
            _, title, abstract = self.key_title_abstract
            self._lowered = (" ".join(for_ranking(title).lower().split()),
                             " ".join(for_ranking(abstract).lower().split()))
        for text in self._lowered:
            start = text.find(phrase)
            while start >= 0:
                end = start + len(phrase)
                if (start == 0 or not _word_character(text[start - 1])) and \
                        (end == len(text) or not _word_character(text[end])):
                    return True
                start = text.find(phrase, start + 1)
        return False


def _word_character(character: str) -> bool:
    """What the token pattern's ``\\w`` matches (re's definition for str patterns)."""
    return character.isalnum() or character == "_"


@dataclass(frozen=True)
class BatchForms:
    """How a batch's papers write each term of their model rows, read once when the batch is
    ingested (``read_batch``): ``WrittenText.forms`` of every (paper, term) an explanation can
    name in it, so explaining its picks reads no text (each ranking process read nearly every
    candidate's text again: bench/RESULTS.md, "The batch's written forms"). Stored with the
    text model whose columns ``terms`` holds."""

    paper_ids: list[str]
    term_starts: np.ndarray  # int64, papers + 1: each paper's run of ``terms``
    terms: np.ndarray  # int32: the model's columns of the paper's row, ascending
    form_starts: np.ndarray  # int64, len(terms) + 1: each term's run of ``forms`` and ``counts``
    forms: np.ndarray  # int32: into ``phrases``
    counts: np.ndarray  # int32: times the paper writes it
    phrases: str  # the forms, joined by newlines


def cache_key(model_key: str) -> str:
    """The key of a ``BatchForms`` read with the text model of ``model_key``."""
    return f"{model_key}|forms{FORMS_FORMAT}"


def read_batch(model: TextModel, papers: Sequence[Paper]) -> BatchForms:
    """The ``BatchForms`` of ``papers`` (papers of the model's corpus; others are left out)."""
    reader, terms, ngram_max = WrittenForms(model.stem), model.terms, model.ngram_max
    ids: list[str] = []
    term_starts, columns, form_starts, forms, counts = [0], [], [0], [], []
    phrase_ids: dict[str, int] = {}
    for paper in papers:
        row = model.index.get(paper.id)
        if row is None:
            continue
        table = reader.read_text(paper.title, paper.abstract).every_form(ngram_max)
        start, end = model.matrix.indptr[row], model.matrix.indptr[row + 1]
        row_columns = np.sort(model.matrix.indices[start:end]).tolist()
        columns += row_columns
        for column in row_columns:
            found = table.get(terms[column])
            if found:
                for phrase, times in _without_filler(found).items():
                    forms.append(phrase_ids.setdefault(phrase, len(phrase_ids)))
                    counts.append(times)
            form_starts.append(len(forms))
        ids.append(paper.id)
        term_starts.append(len(columns))
    return BatchForms(ids, np.array(term_starts, dtype=np.int64), np.array(columns, dtype=np.int32),
                      np.array(form_starts, dtype=np.int64), np.array(forms, dtype=np.int32),
                      np.array(counts, dtype=np.int32), "\n".join(phrase_ids))


class _ReadForms:
    """A batch paper's ``BatchForms``, answering ``forms`` like its ``WrittenText`` would;
    a term outside its row (never one an explanation names) is looked up in its text."""

    __slots__ = ("batch", "at", "looked_up", "text")

    def __init__(self, batch: _UsedBatch, at: int, text: Callable[[], WrittenText]):
        self.batch, self.at, self.text = batch, at, text
        self.looked_up: dict[str, dict[str, int]] = {}

    def forms(self, term: str, column: int | None = None) -> dict[str, int]:
        """``WrittenText.forms``; ``column``, the term's in the model, saves finding it."""
        found = self.looked_up.get(term)
        if found is None:
            found = self.looked_up[term] = self._forms(term, column)
        return found

    def _forms(self, term: str, column: int | None) -> dict[str, int]:
        stored = self.batch.forms
        if column is None:
            column = self.batch.model.term_index.get(term, -1)  # (built on first use: terms asked without a column)
        at = int(self.batch.positions(np.array(self.at), np.array(column)))
        if at < 0:
            return self.text().forms(term)
        first, last = stored.form_starts[at:at + 2].tolist()
        phrases = self.batch.phrases
        return {phrases[f]: n for f, n in zip(stored.forms[first:last].tolist(), stored.counts[first:last].tolist(),
                                              strict=True)}


class _UsedBatch:
    """A ``BatchForms`` as one process reads it: its phrases split and its papers indexed once."""

    def __init__(self, forms: BatchForms, model: TextModel):
        self.forms, self.model = forms, model
        self.phrases = forms.phrases.split("\n")
        self.rows = {pid: i for i, pid in enumerate(forms.paper_ids)}
        # Each (paper, term) as one ascending number: a chunk's pairs are found by one search.
        self.width = model.matrix.shape[1]
        self.keys = np.repeat(np.arange(len(forms.paper_ids), dtype=np.int64), np.diff(forms.term_starts)) \
            * self.width + forms.terms

    def positions(self, papers: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """Where each (paper's place in the batch, term column) pair is in ``forms.terms``; -1
        where the paper (-1: not in the batch) has no such term or the column is -1."""
        wanted = papers * self.width + columns
        found = np.searchsorted(self.keys, wanted).clip(max=max(self.keys.size - 1, 0))
        hit = (self.keys[found] == wanted) & (papers >= 0) & (columns >= 0) if self.keys.size else False
        return np.where(hit, found, -1)


Written = WrittenText | _ReadForms  # what ``WrittenForms.text`` answers: a term's forms in a text


class WrittenForms:
    """Each pick's text read once (the same candidates recur in many readers' explanations),
    each distinct word stemmed once per ranking run; words and stems interned, so a text costs
    its lists (about 5 kB a paper). Starred papers, nearly every one a different reader's, are
    searched for the pick's phrase instead of read (``paper``, ``shared_with``)."""

    def __init__(self, stem: Stem | None):
        self.stem = stem
        self.read: dict[str, Written] = {}
        self.batch: _UsedBatch | None = None
        self.known: dict[str, str] = {"": ""}  # word -> the word interned
        self.stems: dict[str, str] = {"": ""}  # word -> its stem, interned
        self.searched: dict[str, WrittenPaper] = {}  # papers searched for phrases (a reader's star, for several picks)

    def use(self, batch: BatchForms | None, model: TextModel) -> None:
        """Answer for ``batch``'s papers from it (read at ingest) instead of reading their
        texts; None: read every text."""
        if (self.batch.forms if self.batch is not None else None) is not batch:
            self.read.clear()  # (papers answered from another batch)
            self.batch = _UsedBatch(batch, model) if batch is not None else None

    def text(self, key: str, title: str, abstract: str) -> Written:
        found = self.read.get(key)
        if found is None:
            if len(self.read) >= MAX_TEXTS:
                self.read.clear()
            batch = self.batch
            at = batch.rows.get(key) if batch is not None else None
            if batch is None or at is None:
                found = self.read_text(title, abstract)
            else:
                found = _ReadForms(batch, at, lambda: self.read_text(title, abstract))
            self.read[key] = found
        return found

    @property
    def phrases(self) -> list[str]:
        """The phrases ``one_forms`` points into."""
        return self.batch.phrases if self.batch is not None else []

    def one_forms(self, paper_ids: Sequence[str], columns: np.ndarray) -> np.ndarray:
        """For each paper (a row of ``columns``) and term column in it: the phrase (its index
        in ``phrases``) the paper writes the term as, where the batch's forms say it writes it
        one way (nearly always); ``NO_FORM`` where they say no way (or the column is -1);
        ``LOOK_UP`` where its text must say (several forms, or a paper outside the batch).
        One search for a chunk's every (pick, term) instead of a look-up each."""
        codes = np.full(columns.shape, LOOK_UP, dtype=np.int64)
        batch = self.batch
        if batch is not None and batch.keys.size and columns.size:
            stored = batch.forms
            at = np.array([batch.rows.get(pid, -1) for pid in paper_ids], dtype=np.int64)
            found = batch.positions(at[:, None], columns)
            known = found >= 0
            first = stored.form_starts[found]
            count = stored.form_starts[found + 1] - first
            codes[known & (count == 0)] = NO_FORM
            one = known & (count == 1)
            codes[one] = stored.forms[first[one]]
        codes[columns < 0] = NO_FORM
        return codes

    def read_text(self, title: str, abstract: str) -> WrittenText:
        """The text's words and their stems."""
        pieces = _words(title)
        pieces.append("")
        pieces += _words(abstract)
        new = list(set(pieces).difference(self.known))
        if new:
            self.known.update((w, sys.intern(w)) for w in new)
            self.stems.update(zip(new, map(sys.intern, self.stem(new) if self.stem is not None else new), strict=True))
        return WrittenText(list(map(self.known.__getitem__, pieces)), list(map(self.stems.__getitem__, pieces)))

    def paper(self, key: str, title: str, abstract: str) -> WrittenPaper:
        """The paper to search for phrases (see ``shared_with``), kept like a read text."""
        found = self.searched.get(key)
        if found is None:
            if len(self.searched) >= MAX_TEXTS:
                self.searched.clear()
            found = self.searched[key] = WrittenPaper(key, title, abstract)
        return found

    @staticmethod
    def shared(term: str, first: Written, second: Written, column: int | None = None) -> str | None:
        """The model's ``term`` as written in both texts, the form both use most (ties:
        alphabetical); None when no form is common to both or it is filler."""
        here = first.forms(term, column)
        if not here:
            return None
        there = second.forms(term, column)
        if len(here) == 1 and len(there) == 1:  # (nearly always: one form in each)
            phrase = next(iter(here))
            return phrase if phrase in there else None
        common = [(here[p] + there[p], p) for p in here.keys() & there.keys()]
        return min(common, key=lambda c: (-c[0], c[1]))[1] if common else None

    def shared_with(self, term: str, first: Written, second: WrittenPaper, column: int | None = None) -> str | None:
        """``shared`` with a paper whose words are not read unless needed: when ``first``
        writes the term one way (nearly always), the answer is whether ``second`` writes that
        phrase, one search of its text. (Reading every word of each starred paper cost 60 us
        a paper, the larger part of the whole command: bench/RESULTS.md.)"""
        here = first.forms(term, column)
        if len(here) != 1:
            return self.shared(term, first, self.text(*second.key_title_abstract), column) if here else None
        phrase = next(iter(here))
        return phrase if second.writes(phrase) else None

    @staticmethod
    def written(term: str, text: Written, column: int | None = None) -> str | None:
        """The model's ``term`` as written in one text (its most used form), None when absent or filler."""
        usable = [(count, p) for p, count in text.forms(term, column).items()]
        return min(usable, key=lambda c: (-c[0], c[1]))[1] if usable else None


# One reader per model while it lives: a worker's shards explain the same new papers by the
# same starred papers again (read anew for each 500 readers, 2.4 of 16 s a 5,000-reader build).
_FORMS: dict[int, WrittenForms] = {}


def forms_of(model: TextModel) -> WrittenForms:
    """The ``WrittenForms`` of this model's texts, kept while the model lives."""
    key = id(model)
    if key not in _FORMS:
        _FORMS[key] = WrittenForms(model.stem)
        weakref.finalize(model, _FORMS.pop, key, None)
    return _FORMS[key]


def _words(text: str) -> list[str]:
    """The text's tokens (the model's token pattern), lower-cased, with "" wherever anything
    but spaces separates two of them (punctuation, a number, a one-letter word): a phrase is
    never read across it."""
    return _PIECES.findall(for_ranking(text).lower())
