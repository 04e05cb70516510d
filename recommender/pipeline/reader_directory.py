"""Where a process finds a reader's settings, one rule for the shard builder, the sending worker
and the web view: the config file's ``[[users]]`` when this process loaded them (they are the
newest), else the copy ``init``, ``run`` and SIGHUP store in the database (a worker's config is
loaded without its readers), else, before any sync stored one, the config file read once."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from recommender.base.config import Config, UserConfig, load_config
from recommender.store import Store
from recommender.store.reader_settings import ReaderSettings
from recommender.store.schedule import ReaderSchedule

log = logging.getLogger(__name__)


class ReaderDirectory:
    def __init__(self, config: Config, store: Store):
        self.config, self.store = config, store
        self.stored = ReaderSettings(store)
        self._configured: dict[str, UserConfig] | None = None

    def configured(self) -> dict[str, UserConfig]:
        """The config file's readers by lower-case email; for a worker's config (loaded without
        them), none, unless the database keeps no reader's settings yet."""
        if self._configured is None:
            config = self.config
            if config.readers_in_store:
                if self.stored.any():
                    self._configured = {}
                    return self._configured
                log.info("no readers' settings stored: reading them from %s (run `recommender init`, or SIGHUP "
                         "`recommender run`, to store them)", config.path)
                config = load_config(config.path, config.database.url)
            self._configured = config.users_by_email
        return self._configured

    def of(self, readers: Sequence[tuple[int, str]]) -> dict[int, UserConfig]:
        """Settings of these (user id, email) readers; those found nowhere are left out (no
        longer configured)."""
        configured = self.configured()
        found = {uid: configured[email.lower()] for uid, email in readers if email.lower() in configured}
        missing = [uid for uid, _ in readers if uid not in found]
        if missing:
            found.update(self.stored.of(missing))
        return found

    def claimed(self, schedule: ReaderSchedule, readers: Sequence[tuple[int, str]]) -> list[UserConfig]:
        """The settings of a claimed shard's (user id, email) readers, in its order; those no
        longer configured are dropped from the owed readers (nothing to run for them)."""
        found = self.of(readers)
        gone = [uid for uid, _ in readers if uid not in found]
        if gone:
            schedule.drop(gone)
        return [found[uid] for uid, _ in readers if uid in found]

    def one(self, user_id: int) -> UserConfig | None:
        """One reader's settings, looked up by id (the web view's reader)."""
        email = self.store.emails([user_id]).get(user_id)
        return None if email is None else self.of([(user_id, email)]).get(user_id)
