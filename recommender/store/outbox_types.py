"""What the outbox stores and hands out: a digest to create, a claimed digest, its entries,
an outbox listing's item, where a reader's newest digest stands."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol

from recommender.base.domain import DigestStatus
from recommender.store.lease_owners import owner_is_dead


@dataclass(frozen=True)
class OutboxItem:
    id: int
    user_id: int
    email: str
    status: str
    subject: str
    message_id: str
    attempts: int
    last_error: str
    server_reply: str
    created_at: datetime
    sent_at: datetime | None
    entries: int = 0

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id, "user": self.email, "status": self.status, "subject": self.subject,
            "message_id": self.message_id, "attempts": self.attempts, "last_error": self.last_error,
            "server_reply": self.server_reply, "entries": self.entries,
            "created_at": self.created_at.isoformat(),
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
        }


@dataclass(frozen=True)
class DigestState:
    """Where a user's newest digest stands."""

    id: int
    status: str  # a DigestStatus value
    next_attempt_at: datetime | None
    lease_owner: str
    lease_until: datetime | None
    last_error: str
    created_at: datetime
    sent_at: datetime | None
    entries: int

    def in_flight_elsewhere(self, now: datetime) -> bool:
        """Held by a live sender other than this process."""
        return (self.status == DigestStatus.PENDING and bool(self.lease_owner) and self.lease_until is not None
                and self.lease_until >= now and not owner_is_dead(self.lease_owner)
                and self.lease_owner.split(":")[1:2] != [str(os.getpid())])


@dataclass(frozen=True)
class NewDigest:
    """What a renderer returns once it knows the digest's id."""

    subject: str
    message_id: str
    message: bytes | None = None  # None: rendered from the entries when sent (``DigestToCreate.dated_at``)


class Claimed(NamedTuple):
    """A digest claimed for delivery: its stored message, or what renders it."""

    id: int
    email: str
    message: bytes | None  # None: rendered from its entries, dated ``dated_at``
    attempts: int
    user_id: int
    message_id: str
    dated_at: datetime | None


class StoredEntry(NamedTuple):
    position: int
    paper_id: str
    score: float
    why: str
    match: int
    topic: str


@dataclass(frozen=True)
class DigestToCreate:
    user_id: int
    last_batch_id: int
    entries: Sequence[tuple[str, float, str, int]]  # (paper id, score, why, match)
    render: Callable[[int], NewDigest]  # called with the id the digest will get (again if that changed)
    channels: Sequence[str] = ("email",)  # the reader's channels ("webhook:NAME" for a webhook)
    topics: Sequence[str | None] = ()  # each entry's topic (the section it is shown in), when the reader has topics
    dated_at: datetime | None = None  # the message's date and its links' issue time: rendered when sent


class DeliveryOutcome(Protocol):
    """What a sender reports about one delivery (recommender.delivery.smtp.Outcome)."""

    @property
    def digest_id(self) -> int: ...
    @property
    def status(self) -> str: ...  # a DeliveryStatus value
    @property
    def detail(self) -> str: ...  # the server's reply, or the error
    @property
    def attempts(self) -> int: ...
