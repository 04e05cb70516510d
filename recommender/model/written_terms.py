"""The terms of an explanation as the papers write them.

The TF-IDF model's terms are stems (``[ranking] stem``) and its bigrams join words with the
stop words between them removed, so a term shown as the model keeps it can be a phrase that
occurs in neither paper ("optimization transport" where both say "optimal transport").
An explanation names a shared term only where the same word or phrase, case aside, is written
in both papers: each text's runs of words (words separated by nothing but spaces) are read
once, every n-gram of a run keyed by its words' stems, and a term is shown as the form of its
stems that both texts share (the one they use most). Filler that the model keeps (roman
numerals, "type", "consider", ...) is never shown.
"""

from __future__ import annotations

import re
from collections import Counter

from recommender.base.text import for_ranking
from recommender.model.term_counts import Stem
from recommender.model.tfidf import ACADEMIC_STOP_WORDS, ENGLISH_STOP_WORDS, TOKEN_PATTERN

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

_TOKEN = re.compile(TOKEN_PATTERN)
_ONLY_SPACE = re.compile(r"\s+")


def is_filler(phrase: str) -> bool:
    """Whether a shown term says nothing about a subject: every word of it is filler ("type
    ii"; "large language" still says something)."""
    return all(word in FILLER for word in phrase.split(" "))


class WrittenForms:
    """Each text's written n-grams keyed by their stems, read once per text (the same
    candidates and starred papers recur in many readers' explanations)."""

    def __init__(self, stem: Stem | None, ngram_max: int):
        self.stem = stem
        self.ngram_max = max(1, ngram_max)
        self.read: dict[str, dict[tuple[str, ...], Counter[str]]] = {}

    def forms(self, key: str, title: str, abstract: str) -> dict[tuple[str, ...], Counter[str]]:
        """The text's n-grams: stems -> {phrase as written, lower-cased: occurrences}."""
        found = self.read.get(key)
        if found is None:
            found = {}
            for part in (title, abstract):
                for run in _runs(for_ranking(part).lower()):
                    keys = self.stem(run) if self.stem is not None else run
                    for n in range(1, self.ngram_max + 1):
                        for start in range(len(run) - n + 1):
                            gram = tuple(keys[start:start + n])
                            found.setdefault(gram, Counter())[" ".join(run[start:start + n])] += 1
            self.read[key] = found
        return found

    def shared(self, term: str, first: dict[tuple[str, ...], Counter[str]],
               second: dict[tuple[str, ...], Counter[str]]) -> str | None:
        """The model's ``term`` (its stems, space-joined) as written in both texts, the form
        both use most (ties: alphabetical); None when no form is common to both or it is filler."""
        gram = tuple(term.split(" "))
        here, there = first.get(gram), second.get(gram)
        if not here or not there:
            return None
        common = [(here[p] + there[p], p) for p in here.keys() & there.keys() if not is_filler(p)]
        if not common:
            return None
        return min(common, key=lambda c: (-c[0], c[1]))[1]

    def written(self, term: str, forms: dict[tuple[str, ...], Counter[str]]) -> str | None:
        """The model's ``term`` as written in one text (its most used form), None when absent or filler."""
        found = forms.get(tuple(term.split(" ")))
        if not found:
            return None
        usable = [(count, p) for p, count in found.items() if not is_filler(p)]
        return min(usable, key=lambda c: (-c[0], c[1]))[1] if usable else None


def _runs(text: str) -> list[list[str]]:
    """The text's tokens (the model's token pattern) in runs of words that only spaces separate:
    a phrase is never read across punctuation or a dropped one-letter word."""
    runs: list[list[str]] = []
    current: list[str] = []
    end = 0
    for match in _TOKEN.finditer(text):
        between = text[end:match.start()]
        if current and not (between and _ONLY_SPACE.fullmatch(between)):
            runs.append(current)
            current = []
        current.append(match.group(0))
        end = match.end()
    if current:
        runs.append(current)
    return runs
