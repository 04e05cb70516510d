"""What the methods of ``recommender.Recommender`` return, beside the domain's own records
(``Paper``, ``Recommendation``) and the stages' results they pass on unchanged."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, time
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from recommender.base.config import UserConfig
from recommender.base.domain import Paper
from recommender.model.profiles import Profile

if TYPE_CHECKING:
    from recommender.delivery.smtp import Outcome
    from recommender.delivery.webhooks import PostOutcome
    from recommender.store.channel_posts import PostItem
    from recommender.store.outbox import OutboxItem


class NextDigest(NamedTuple):
    """A reader's next digest as the daemon schedules it (`schedule list`)."""

    user: UserConfig
    at: datetime  # in the reader's zone
    kind: str  # "daily digest", "weekly digest (fri)"


@dataclass(frozen=True)
class Shard:
    """Owed readers one daemon claimed under a lease (``owner``) to run together."""

    owner: str
    readers: tuple[UserConfig, ...]


@dataclass(frozen=True)
class Star:
    """One of a reader's starred papers and when it was starred."""

    paper: Paper
    starred_at: datetime
    topic: str | None = None  # the reader's topic it belongs to ([[users.topics]]); None: untopiced


@dataclass(frozen=True)
class Starred:
    """What ``star`` did for one reader: the papers now starred, and how many stars were new."""

    user: str
    papers: list[Paper]
    added: int

    @property
    def already(self) -> int:
        return len(self.papers) - self.added


@dataclass(frozen=True)
class UserSummary:
    """One configured reader: stars, digests sent, subscription and schedule."""

    user: str
    name: str
    stars: int
    digests_sent: int
    subscribed: bool
    send_at: time
    timezone: str
    frequency: str

    def as_json(self) -> dict[str, Any]:
        return dict(asdict(self), send_at=f"{self.send_at:%H:%M}")


@dataclass(frozen=True)
class Forgotten:
    """How many rows ``forget_user`` deleted (the profile goes too)."""

    stars: int
    feedback: int
    digests: int


@dataclass(frozen=True)
class Breakdown:
    """How one paper's score for one reader is made up (``recommender explain``)."""

    user: str
    paper_id: str
    title: str
    score: float
    match: int | None  # 0-100 within the latest batch; None when the paper is in no batch
    content: float
    collaborative: float
    topics: float
    interests: float
    nearest: list[dict[str, Any]]  # paper_id, title, similarity: the reader's starred papers nearest to it
    terms: list[dict[str, Any]]  # term, contribution: the terms they share
    followed_authors: list[str]
    matched_interests: list[str]
    why: str
    notes: list[str]
    topic: str = ""  # the reader's topic where the paper ranks best ("" without topics)

    def as_json(self) -> dict[str, Any]:
        found = asdict(self)
        if not self.topic:
            del found["topic"]
        return found


@dataclass(frozen=True)
class ProfileView:
    """A reader's profile as ranking uses it: its strongest terms of each sign and the papers
    that pulled it (positive first)."""

    user: str
    empty: bool
    positive_terms: list[tuple[str, float]]
    negative_terms: list[tuple[str, float]]
    positives: list[tuple[str, str]]  # (paper id, title)
    negatives: list[tuple[str, str]]
    interests: tuple[str, ...]

    @classmethod
    def of(cls, user: str, profile: Profile, terms: list[str], titles: dict[str, str], count: int) -> ProfileView:
        vector = profile.vector
        order = np.argsort(-vector, kind="stable")
        return cls(user, profile.empty,
                   [(str(terms[i]), float(vector[i])) for i in order[:count] if vector[i] > 0],
                   [(str(terms[i]), float(vector[i])) for i in order[::-1][:count] if vector[i] < 0],
                   [(p, titles.get(p, "")) for p in profile.positives],
                   [(p, titles.get(p, "")) for p in profile.negatives], profile.interests)


@dataclass(frozen=True)
class Preview:
    """A reader's next digest as it would be sent: subject, HTML and text parts, the whole
    message (DKIM-signed when configured), and how many papers it holds."""

    subject: str
    html: str
    text: str
    message: bytes
    papers: int


@dataclass(frozen=True)
class Retried:
    """What ``retry`` did: the deliveries requeued (digests, then webhook posts), and each
    digest's and each post's outcome."""

    requeued: list[int]
    outcomes: list[Outcome]
    posts: list[PostOutcome] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(o.status == "sent" for o in self.outcomes) + sum(p.status == "sent" for p in self.posts)

    @property
    def all_sent(self) -> bool:
        return self.sent == len(self.outcomes) + len(self.posts)


@dataclass(frozen=True)
class Initialised:
    """What ``init`` did: the schema before (None: a new database) and after, the database's
    address with its password masked, and the files it made owner-only."""

    before: str | None
    schema: str
    database: str
    tightened: list[str]

    @property
    def state(self) -> str:
        return "created" if self.before is None else ("upgraded" if self.before != self.schema else "already up to date")


@dataclass(frozen=True)
class Deliveries:
    """The outbox: stored digests (with their email delivery) and webhook posts."""

    digests: list[OutboxItem]
    posts: list[PostItem]
