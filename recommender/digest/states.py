"""What each user's digest came to after a run (sent, deferred, failed, ...), read from the
outbox, for `digest send` and the daemon's lines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from recommender.base.config import UserConfig
from recommender.base.domain import DigestStatus, ReaderIds
from recommender.store import Store
from recommender.store.outbox import Outbox


@dataclass(frozen=True)
class UserResult:
    """One user's line of `digest send`: the state of the digest they are owed."""

    email: str
    status: str  # sent | published (no email) | nothing new | failed | deferred | in flight elsewhere | unsubscribed | queued | would send
    papers: int = 0
    detail: str = ""
    until: datetime | None = None  # deferred: the next attempt
    channels: str = ""  # a reader with channels beyond email: where each stands

    @property
    def channel_undelivered(self) -> bool:
        """A channel beyond email that failed, was deferred, or is still owed its post."""
        return any(state.split(" ", 1)[0] in ("failed", "deferred", "not")
                   for state in (part.split(": ", 1)[-1] for part in self.channels.split("; ") if part))

    def line(self) -> str:
        base = self._email_line()
        return f"{base} [{self.channels}]" if self.channels else base

    def _email_line(self) -> str:
        if self.status in ("sent", "queued", "would send", "published"):
            return f"{self.email}: {self.status} {self.papers} paper(s)"
        if self.status == "deferred" and self.until is not None:
            return f"{self.email}: deferred until {self.until:%Y-%m-%d %H:%M:%S} UTC: {self.detail}"
        if self.status in ("failed", "deferred"):
            return f"{self.email}: {self.status}: {self.detail}"
        return f"{self.email}: {self.status}"


def owed_states(store: Store, users: Sequence[UserConfig], ids: ReaderIds, queued: dict[str, UserResult],
                started: datetime, handled: set[int], now: datetime) -> list[UserResult]:
    """Each user's line after a run, read from the outbox (so digests another process or a child
    that died handled count too): sent, deferred until when, failed and why, in flight
    elsewhere, unsubscribed, or nothing new."""
    states = Outbox(store).latest_states(list(ids.values()))
    lines = []
    for user in users:
        state = states.get(ids.of(user.email))
        queued_result = queued.get(user.email)
        if queued_result is not None and queued_result.status == DigestStatus.UNSUBSCRIBED:
            lines.append(queued_result)
            continue
        touched = state is not None and (state.created_at >= started or state.id in handled)
        if state is None:
            lines.append(UserResult(user.email, "nothing new"))
        elif state.status == DigestStatus.NO_EMAIL and state.created_at >= started:  # feed or webhook only
            lines.append(UserResult(user.email, "published", state.entries))
        elif state.status == DigestStatus.SENT and state.sent_at is not None and state.sent_at >= started:
            lines.append(UserResult(user.email, "sent", state.entries))
        elif state.status == DigestStatus.PENDING and state.in_flight_elsewhere(now):
            lines.append(UserResult(user.email, "in flight elsewhere", state.entries))
        elif state.status == DigestStatus.PENDING:
            lines.append(UserResult(user.email, "deferred", state.entries, state.last_error, state.next_attempt_at))
        elif state.status == DigestStatus.FAILED and touched:
            lines.append(UserResult(user.email, "failed", state.entries, state.last_error))
        elif state.status == DigestStatus.UNSUBSCRIBED:
            lines.append(UserResult(user.email, "unsubscribed"))
        else:
            lines.append(UserResult(user.email, "nothing new"))
    return lines
