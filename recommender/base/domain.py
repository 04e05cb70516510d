"""Plain data passed between the pipeline stages."""

from __future__ import annotations

import json
import json.encoder
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from functools import cached_property, lru_cache
from typing import NamedTuple

from recommender.base.text import shown


class ReaderIds(dict[str, int]):
    """Each reader's stored id by email, lower-cased (what the store's ``sync_users`` returns):
    ``ids.of(user.email)`` is the one place an email is turned into the key."""

    def of(self, email: str) -> int:
        return self[email.lower()]


class DigestStatus(StrEnum):
    """Where a stored digest stands in the outbox (the value is what the database holds)."""

    PENDING = "pending"  # stored, not delivered yet (or deferred to its next attempt)
    SENT = "sent"
    FAILED = "failed"
    SUPERSEDED = "superseded"  # a newer digest took its place before it could be sent
    UNSUBSCRIBED = "unsubscribed"  # its reader unsubscribed before it went out
    NO_EMAIL = "no email"  # made for a reader whose channels leave email out (feed, webhook)


class DeliveryStatus(StrEnum):
    """What one try to deliver a digest or a webhook post came to."""

    SENT = "sent"
    DEFERRED = "deferred"  # a temporary failure: tried again later
    FAILED = "failed"


@dataclass(frozen=True)
class ParsedPaper:
    """One entry as a parser read it, before the store assigns or matches an id."""

    title: str
    abstract: str
    authors: tuple[str, ...] = ()
    url: str = ""
    arxiv_id: str = ""
    source_id: str = ""
    published: str = ""
    line: int = 0
    groups: tuple[str, ...] = ()  # the library's folders it sits in (collections, groups), as the export names them
    keywords: tuple[str, ...] = ()  # its tags and keywords in the library
    doi: str = ""  # normalised (base.text.doi): the paper's id when it has no arXiv id, else an alias
    other_ids: tuple[str, ...] = ()  # ids of the same work elsewhere: a preprint's journal DOI
    category: str = ""  # the primary subject class, e.g. arXiv's "cs.LG"


@dataclass(frozen=True)
class LibraryRead:
    """What a reader of a reference-manager library returns: the entries it could read, and
    one line per entry it skipped (file, line, the reason)."""

    entries: list[ParsedPaper]
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReadHints:
    """What a digest reader may use besides the bytes: the batch's date (a trending page's
    year, a feed's day), the file's modification time, whether arXiv replacements count."""

    batch_date: date | None = None
    modified: datetime | None = None
    include_replacements: bool = False
    categories: tuple[str, ...] = ()  # bioRxiv/medRxiv subjects to keep (all when empty)
    exclude_titles: tuple[str, ...] = ()  # feed items whose title matches one of these (regexes) are dropped
    exclude_types: tuple[str, ...] | None = None  # feed item types (dc:type, PRISM section) dropped; None: the default list


@dataclass(frozen=True)
class ParsedBatch:
    """A whole digest file: its entries in source order and the date it is for."""

    format: str
    entries: tuple[ParsedPaper, ...]
    batch_date: date | None = None


@dataclass(frozen=True)
class Paper:
    id: str
    title: str
    abstract: str
    authors: tuple[str, ...] = ()
    url: str = ""
    arxiv_id: str = ""
    published: str = ""
    category: str = ""

    @cached_property
    def display(self) -> Paper:
        """The paper as it is shown (CLI, JSON, digest, web page): see ``text.shown``."""
        shown_paper = replace(self, title=shown(self.title), abstract=shown(self.abstract),
                              authors=tuple(shown(a) for a in self.authors), url=shown(self.url),
                              category=shown(self.category))
        return self if shown_paper == self else shown_paper

    @cached_property
    def fields_json(self) -> str:
        """The paper's fields of a recommendation's JSON line, without the braces: encoded once
        per paper (every reader's picks come from one batch: the abstracts repeat)."""
        return json.dumps(_paper_fields(self), ensure_ascii=False)[1:-1]

    def as_json(self) -> dict[str, object]:
        paper = self.display
        return {
            "id": paper.id,
            "title": paper.title,
            "abstract": paper.abstract,
            "authors": list(paper.authors),
            "url": paper.url,
            "arxiv_id": paper.arxiv_id or None,
            "published": paper.published or None,
            "category": paper.category or None,
        }


class SharedTerm(NamedTuple):  # a tuple: explanations make tens of thousands of them
    term: str
    contribution: float


# The TF-IDF cosine from which a pick is "close to" its nearest star. Below it two papers share
# a few words, not their subject (the seeds: 0.24 for two papers on data selection by optimal
# transport, 0.06 for a paper that shares "selection" and "quality").
CLOSE_SIMILARITY = 0.15


@dataclass(frozen=True)
class Explanation:
    """Why a paper was picked: the nearest starred papers and the terms they share."""

    personalized: bool
    nearest: tuple[tuple[str, str, float], ...] = ()  # (paper id, title, similarity)
    terms: tuple[SharedTerm, ...] = ()
    followed_authors: tuple[str, ...] = ()
    matched_interests: tuple[str, ...] = ()
    collaborative: float = 0.0  # the part of the score from what similar readers saved
    stored: str = ""  # the sentence as stored with a sent digest
    liked: frozenset[str] = frozenset()  # the nearest papers the reader clicked on but did not star

    def sentence(self) -> str:
        return self.stored or self._sentence

    @cached_property
    def _sentence(self) -> str:  # once: a digest run stores it and renders it
        if not self.personalized:
            return ("Not personalized yet: this is the digest in its source order. "
                    "Star papers you like (recommender star ID or --title) to rank by your interests.")
        parts = []
        if self.followed_authors:
            parts.append("by " + ", ".join(self.followed_authors) + " (followed author)")
        if self.nearest:
            paper_id, title, similarity = self.nearest[0]
            which = "a paper you liked" if paper_id in self.liked else "your starred paper"
            near = "close to" if similarity >= CLOSE_SIMILARITY else "loosely related to"
            parts.append(f"{near} {which} \"{shown(title)}\"")
        if self.collaborative >= 0.1:
            parts.append("saved by readers with interests like yours")
        if self.matched_interests:
            parts.append("matches your interests: " + ", ".join(self.matched_interests))
        if self.terms:
            parts.append("shared terms: " + ", ".join(t.term for t in self.terms))
        return "; ".join(parts) if parts else "weakly related to your profile"


@dataclass(frozen=True)
class Recommendation:
    """One pick. Its explanation is computed when first asked for, so ranking many users
    pays only for the explanations that are shown."""

    user: str
    paper: Paper
    score: float
    rank: int
    explainer: Callable[[], Explanation] = field(default=lambda: Explanation(personalized=False), repr=False,
                                                 compare=False)
    # 0-100: the share of the reader's other candidates in this batch that score below this
    # pick (see ranking.matches_among); 0 when the ranking is not personalized.
    match: int = 0
    topic: str = ""  # the reader's topic (digest section) it was picked for; "" without topics

    @cached_property
    def explanation(self) -> Explanation:
        return self.explainer()

    def as_json(self) -> dict[str, object]:
        found = {"user": self.user, "rank": self.rank, **_paper_fields(self.paper), **self._judgement()}
        return found | {"topic": self.topic} if self.topic else found

    def as_json_line(self) -> str:
        """``json.dumps(self.as_json(), ensure_ascii=False)``, written out directly (a run writes
        tens of thousands of lines; json.dumps's cost against the whole command's budget:
        bench/tricks.py, figure in bench/RESULTS.md), with the paper's part encoded once per paper (every user's
        picks come from one batch: the abstracts repeat)."""
        why = self.explanation
        nearest = ", ".join([f'{_nearest_json(pid, title)}{_number(round(sim, 4))}}}' for pid, title, sim in why.nearest])
        terms = ", ".join([f'{{"term": {_string(t.term)}, "contribution": {_number(round(t.contribution, 4))}}}'
                           for t in why.terms])
        return (f'{{"user": {_string(self.user)}, "rank": {int(self.rank)}, {self.paper.fields_json}, '
                f'"score": {_number(round(self.score, 6))}, "match": {int(self.match)}, "personalized": {"true" if why.personalized else "false"}, '
                f'"why": {_string(why.sentence())}, "nearest": [{nearest}], "terms": [{terms}]'
                + (f', "topic": {_string(self.topic)}}}' if self.topic else "}"))

    def _judgement(self) -> dict[str, object]:
        return {
            "score": round(self.score, 6),
            "match": int(self.match),
            "personalized": self.explanation.personalized,
            "why": self.explanation.sentence(),
            "nearest": [
                {"paper_id": pid, "title": shown(title), "similarity": round(sim, 4)}
                for pid, title, sim in self.explanation.nearest
            ],
            "terms": [
                {"term": t.term, "contribution": round(t.contribution, 4)} for t in self.explanation.terms
            ],
        }


def _paper_fields(paper: Paper) -> dict[str, object]:
    paper = paper.display
    return {"paper_id": paper.id, "title": paper.title, "abstract": paper.abstract, "authors": list(paper.authors),
            "url": paper.url, "category": paper.category}


@lru_cache(maxsize=16_384)  # (a reader's starred papers are the nearest to many picks)
def _nearest_json(paper_id: str, title: str) -> str:
    """A nearest paper's JSON object up to its similarity."""
    return f'{{"paper_id": {_string(paper_id)}, "title": {_string(shown(title))}, "similarity": '


_string = json.encoder.encode_basestring  # a JSON string as json.dumps(..., ensure_ascii=False) writes it


def _number(value: float) -> str:
    """A float as json.dumps writes it."""
    return float.__repr__(value) if math.isfinite(value) else json.dumps(value)


@dataclass(frozen=True)
class Signal:
    """One paper's pull on a profile: a star, or a feedback click."""

    paper_id: str
    kind: str  # star | more | less | open
    at: datetime | None  # None when read without times (see Store.signals)
