"""Reading a reader's ``[[users.topics]]`` (the config reader's part for topics)."""

from __future__ import annotations

import functools
from typing import Any

from recommender.base.config_tables import TableReader
from recommender.base.errors import ConfigError
from recommender.base.settings import TOPIC_NAME, TopicConfig


class TopicReader(TableReader):
    """Typed topics from a user's table; mistakes noted like every other key's."""

    def topics(self, prefix: str, raw: Any, budget: int) -> tuple[TopicConfig, ...]:
        """``[[users.topics]]``: named, each name once; a mistake in one topic is noted and that
        topic left out, so ``config check`` reports every one."""
        if not isinstance(raw, list):
            raise self.fail(f"{prefix}.topics", "an array of tables ([[users.topics]])", raw)
        topics: list[TopicConfig] = []
        for index, table in enumerate(raw):
            topic = self.guarded(functools.partial(self.topic, f"{prefix}.topics[{index}]", table), None)
            if topic is None:
                continue
            if any(t.name.lower() == topic.name.lower() for t in topics):
                self.note(ConfigError(f"{self.path}: {prefix}.topics[{index}].name: duplicate topic {topic.name!r}"))
                continue
            topics.append(topic)
        shares = sum(t.max_items or 0 for t in topics)
        if shares > budget:
            self.note(ConfigError(f"{self.path}: {prefix}.topics: their max_items add up to {shares}, more than "
                                  f"the digest's max_items {budget}"))
        return tuple(topics)

    def topic(self, prefix: str, table: Any) -> TopicConfig:
        if not isinstance(table, dict):
            raise self.fail(prefix, "a table", table)
        self.check_keys(prefix, table, set(TopicConfig.__dataclass_fields__))
        if "name" not in table:
            raise ConfigError(f"{self.path}: {prefix}.name: required key is missing")
        name = self.get(prefix, table, "name", str, "").strip()
        if not TOPIC_NAME.fullmatch(name):
            raise self.fail(f"{prefix}.name", "a name of 1 to 64 characters on one line", table["name"])
        max_items = self.get(prefix, table, "max_items", int, None, "a positive integer")
        if max_items is not None and not 1 <= max_items <= 1000:
            raise self.fail(f"{prefix}.max_items", "an integer from 1 to 1000", max_items)
        return TopicConfig(
            name=name,
            interests=self.strings(prefix, table, "interests"),
            exclude=self.strings(prefix, table, "exclude"),
            authors=self.strings(prefix, table, "authors"),
            max_items=max_items,
            min_score=self.get(prefix, table, "min_score", float, None, "a number"),
        )
