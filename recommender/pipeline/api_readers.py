"""The methods of ``recommender.Recommender`` over what is stored about each reader: the
readers' summary, their topics (counts, suggestions), export, forgetting and resubscribing.
A mixin of ``Recommender`` (``recommender.pipeline.api``), documented in docs/API.md."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from recommender.base.domain import DigestStatus, ReaderIds
from recommender.base.errors import NotFoundError
from recommender.pipeline.api_results import Forgotten, UserSummary
from recommender.store.feedback import FeedbackLog
from recommender.store.outbox import Outbox

if TYPE_CHECKING:
    from recommender.base.config import Config, UserConfig
    from recommender.pipeline.topics import Suggestion
    from recommender.store import Store


class ReaderMethods:
    """Readers' data (mixed into ``Recommender``, which gives what is declared here)."""

    if TYPE_CHECKING:
        config: Config

        @property
        def store(self) -> Store: ...

        def user(self, email: str | None = None) -> UserConfig: ...

        def _refit(self) -> None: ...

    def users(self) -> list[UserSummary]:
        """Every configured reader with stars, digests sent, subscription and schedule.

        Example: ``{u.user: u.stars for u in rec.users()}``"""
        ids = self.store.sync_users(u.email for u in self.config.users)
        outbox = Outbox(self.store)
        unsubscribed = outbox.unsubscribed()
        sent: dict[int, int] = {}
        for item in outbox.items(DigestStatus.SENT):
            sent[item.user_id] = sent.get(item.user_id, 0) + 1
        stars = self.store.star_counts()
        rows = []
        for user in self.config.users:
            user_id = ids.of(user.email)
            rows.append(UserSummary(user.email, user.name, stars.get(user_id, 0), sent.get(user_id, 0),
                                    user_id not in unsubscribed, user.send_at, user.timezone, user.frequency))
        return rows

    def _configured_id(self, email: str) -> int:
        return self.store.user_id(self.config.user(email).email)

    def resubscribe(self, email: str) -> bool:
        """Send digests to a reader again; False when they were subscribed already.

        Example: ``rec.resubscribe("ada@example.org")``"""
        return Outbox(self.store).set_unsubscribed(self._configured_id(email), False)

    def export_user(self, email: str) -> dict[str, Any]:
        """Everything stored about a reader, as one JSON-ready document.

        Example: ``json.dumps(rec.export_user("ada@example.org"))``"""
        data = FeedbackLog(self.store).export(self._configured_id(email))
        data["topics"] = [asdict(t) for t in self.config.user(email).topics]
        return data

    def forget_user(self, email: str, confirm: Callable[[], object] | None = None) -> Forgotten:
        """Delete a reader's stars, feedback, digests and profile (configured or not; the
        config entry stays). ``confirm()`` is called once the reader is found, before anything
        is deleted (it raises to stop).

        Example: ``rec.forget_user("ada@example.org").stars``"""
        known = ReaderIds({row.email: row.id for row in self.store.user_rows()})
        if email.lower() not in known:
            raise NotFoundError(f"nothing stored for {email}")
        if confirm is not None:
            confirm()
        counts = FeedbackLog(self.store).forget(known.of(email))
        return Forgotten(counts["stars"], counts["feedback"], counts["digests"])

    def topic_counts(self, email: str | None = None) -> list[tuple[str, int]]:
        """Each of a reader's configured topics with how many stars it holds.

        Example: ``dict(rec.topic_counts("ada@example.org"))``"""
        user = self.user(email)
        counts = Counter(t.lower() for t in self.store.star_topics(self.store.user_id(user.email)).values())
        return [(topic.name, counts.get(topic.name.lower(), 0)) for topic in user.topics]

    def suggest_topics(self, email: str | None = None, max_k: int = 4, apply: bool = False) -> list[Suggestion]:
        """At most ``max_k`` coherent groups of a reader's stars, each named by its telling
        terms, largest first; ``apply`` files each star in its group's topic.

        Example: ``[s.name for s in rec.suggest_topics("ada@example.org", 3)]``"""
        import recommender.pipeline as pipeline

        user = self.user(email)
        user_id = self.store.user_id(user.email)
        found = pipeline.suggest_topics(self.config, self.store, user, max_k)
        added = sum(self.store.star(user_id, [p.id for p in s.papers], topic=s.name) for s in found) if apply else 0
        if added:
            self._refit()
        return found
