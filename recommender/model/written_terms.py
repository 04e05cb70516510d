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
from dataclasses import dataclass, field
from functools import lru_cache

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

    def forms(self, term: str) -> dict[str, int]:
        """The model's ``term`` (its stems, space-joined) as this text writes it, filler left
        out: {phrase: times}."""
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


class WrittenForms:
    """Each pick's text read once (the same candidates recur in many readers' explanations),
    each distinct word stemmed once per ranking run; words and stems interned, so a text costs
    its lists (about 5 kB a paper). Starred papers, nearly every one a different reader's, are
    searched for the pick's phrase instead of read (``paper``, ``shared_with``)."""

    def __init__(self, stem: Stem | None):
        self.stem = stem
        self.read: dict[str, WrittenText] = {}
        self.known: dict[str, str] = {"": ""}  # word -> the word interned
        self.stems: dict[str, str] = {"": ""}  # word -> its stem, interned
        self.searched: dict[str, WrittenPaper] = {}  # papers searched for phrases (a reader's star, for several picks)

    def text(self, key: str, title: str, abstract: str) -> WrittenText:
        found = self.read.get(key)
        if found is None:
            if len(self.read) >= MAX_TEXTS:
                self.read.clear()
            pieces = _words(title)
            pieces.append("")
            pieces += _words(abstract)
            new = list(set(pieces).difference(self.known))
            if new:
                self.known.update((w, sys.intern(w)) for w in new)
                self.stems.update(zip(new, map(sys.intern, self.stem(new) if self.stem is not None else new),
                                      strict=True))
            found = WrittenText(list(map(self.known.__getitem__, pieces)), list(map(self.stems.__getitem__, pieces)))
            self.read[key] = found
        return found

    def paper(self, key: str, title: str, abstract: str) -> WrittenPaper:
        """The paper to search for phrases (see ``shared_with``), kept like a read text."""
        found = self.searched.get(key)
        if found is None:
            if len(self.searched) >= MAX_TEXTS:
                self.searched.clear()
            found = self.searched[key] = WrittenPaper(key, title, abstract)
        return found

    @staticmethod
    def shared(term: str, first: WrittenText, second: WrittenText) -> str | None:
        """The model's ``term`` as written in both texts, the form both use most (ties:
        alphabetical); None when no form is common to both or it is filler."""
        here = first.forms(term)
        if not here:
            return None
        there = second.forms(term)
        if len(here) == 1 and len(there) == 1:  # (nearly always: one form in each)
            phrase = next(iter(here))
            return phrase if phrase in there else None
        common = [(here[p] + there[p], p) for p in here.keys() & there.keys()]
        return min(common, key=lambda c: (-c[0], c[1]))[1] if common else None

    def shared_with(self, term: str, first: WrittenText, second: WrittenPaper) -> str | None:
        """``shared`` with a paper whose words are not read unless needed: when ``first``
        writes the term one way (nearly always), the answer is whether ``second`` writes that
        phrase, one search of its text. (Reading every word of each starred paper cost 60 us
        a paper, the larger part of the whole command: bench/RESULTS.md.)"""
        here = first.forms(term)
        if len(here) != 1:
            return self.shared(term, first, self.text(*second.key_title_abstract)) if here else None
        phrase = next(iter(here))
        return phrase if second.writes(phrase) else None

    @staticmethod
    def written(term: str, text: WrittenText) -> str | None:
        """The model's ``term`` as written in one text (its most used form), None when absent or filler."""
        usable = [(count, p) for p, count in text.forms(term).items()]
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
