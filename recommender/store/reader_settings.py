"""Readers' settings kept in the database (``reader_settings``): the config's ``[[users]]``
tables synced in bulk (`init`, `run`, SIGHUP: one read of the fingerprints, one executemany
of what changed), read back for the readers of one shard at a time (a worker's memory does
not grow with the number of readers), and the members of each webhook (few)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import bindparam, delete, insert, select, update

from recommender.base.config import Channel, UserConfig
from recommender.base.config_readers import fingerprint, reader_from_json, reader_json
from recommender.store.schema import ReaderSettingRow
from recommender.store.store import Store, chunks

Row = ReaderSettingRow


class ReaderSettings:
    def __init__(self, store: Store):
        self.store = store

    def sync(self, readers: Mapping[int, UserConfig]) -> int:
        """Store these readers' settings (user id -> settings) where new or changed, and forget
        those of readers not among them; returns how many were written."""
        encoded = {uid: reader_json(user) for uid, user in readers.items()}
        with self.store.read() as conn:
            stored = dict(conn.execute(select(Row.user_id, Row.fingerprint)).all())
        rows = [{"b_user": uid, "fingerprint": fingerprint(text), "webhook": readers[uid].webhook
                 if Channel.WEBHOOK in readers[uid].channels else "", "settings": text}
                for uid, text in encoded.items() if stored.get(uid) != fingerprint(text)]
        changed = [r for r in rows if r["b_user"] in stored]
        fresh = [{"user_id": r["b_user"], **{k: v for k, v in r.items() if k != "b_user"}} for r in rows
                 if r["b_user"] not in stored]
        gone = sorted(set(stored) - set(readers))
        with self.store.write() as conn:
            for chunk in chunks(changed, 5000):
                conn.execute(update(Row).where(Row.user_id == bindparam("b_user"))
                             .values(fingerprint=bindparam("fingerprint"), webhook=bindparam("webhook"),
                                     settings=bindparam("settings")), list(chunk))
            for chunk in chunks(fresh, 5000):
                conn.execute(insert(Row), list(chunk))
            for chunk in chunks(gone, 5000):
                conn.execute(delete(Row).where(Row.user_id.in_(chunk)))
        return len(rows)

    def of(self, user_ids: Sequence[int]) -> dict[int, UserConfig]:
        """The stored settings of these readers (those with none are left out)."""
        found: dict[int, UserConfig] = {}
        with self.store.read() as conn:
            for chunk in chunks(list(user_ids), 5000):
                for uid, text in conn.execute(select(Row.user_id, Row.settings).where(Row.user_id.in_(chunk))):
                    found[uid] = reader_from_json(text)
        return found

    def any(self) -> bool:
        """Whether any reader's settings are stored (a sync since 0016)."""
        with self.store.read() as conn:
            return conn.execute(select(Row.user_id).limit(1)).first() is not None

    def webhook_members(self) -> dict[str, list[UserConfig]]:
        """Webhook name -> the readers whose digests are posted to it (read through its index)."""
        found: dict[str, list[UserConfig]] = {}
        with self.store.read() as conn:
            # "> ''" (not "!= ''") reads the index's range of named webhooks, not every reader's row
            self.store.by_index(conn)
            rows = conn.execute(select(Row.webhook, Row.settings).where(Row.webhook > "").order_by(Row.user_id))
            for name, text in rows:
                found.setdefault(name, []).append(reader_from_json(text))
        return found
