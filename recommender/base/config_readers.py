"""Readers' settings apart from the config file: a reader's ``[[users]]`` table as one line of
JSON (what the database keeps per reader, so that a worker reads only the readers of the shard
it claimed), and the config file's text without its ``[[users]]`` tables (what a worker
parses: its memory then does not grow with the number of readers)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from datetime import time
from typing import Any

from recommender.base.settings import Channel, TopicConfig, UserConfig

# A table header line: [name] or [[name]], name possibly dotted and quoted.
_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_READERS = re.compile(r"""^(users|"users"|'users')(\s*\.|$)""")
_MULTILINE = re.compile(r'"""|\'\'\'')


def reader_json(user: UserConfig) -> str:
    """The reader's settings as compact JSON (keys sorted: equal settings, equal text)."""
    return json.dumps({
        "email": user.email, "name": user.name, "timezone": user.timezone, "send_at": user.send_at.isoformat(),
        "frequency": user.frequency, "weekday": user.weekday, "max_items": user.max_items,
        "min_score": user.min_score, "interests": list(user.interests), "exclude": list(user.exclude),
        "authors": list(user.authors), "stars": list(user.stars),
        "topics": [{"name": t.name, "interests": list(t.interests), "exclude": list(t.exclude),
                    "authors": list(t.authors), "max_items": t.max_items, "min_score": t.min_score}
                   for t in user.topics],
        "channels": [str(c) for c in user.channels], "webhook": user.webhook,
    }, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def reader_from_json(text: str) -> UserConfig:
    """The ``UserConfig`` that ``reader_json`` wrote."""
    data: dict[str, Any] = json.loads(text)
    return UserConfig(
        email=data["email"], name=data["name"], timezone=data["timezone"], send_at=time.fromisoformat(data["send_at"]),
        frequency=data["frequency"], weekday=data["weekday"], max_items=data["max_items"],
        min_score=data["min_score"], interests=tuple(data["interests"]), exclude=tuple(data["exclude"]),
        authors=tuple(data["authors"]), stars=tuple(data["stars"]),
        topics=tuple(TopicConfig(name=t["name"], interests=tuple(t["interests"]), exclude=tuple(t["exclude"]),
                                 authors=tuple(t["authors"]), max_items=t["max_items"], min_score=t["min_score"])
                     for t in data["topics"]),
        channels=tuple(Channel(c) for c in data["channels"]), webhook=data["webhook"],
    )


def fingerprint(settings_json: str) -> str:
    """What tells a stored reader's settings from changed ones without reading them."""
    return hashlib.sha256(settings_json.encode()).hexdigest()[:32]


def without_readers(lines: Iterable[str]) -> Iterator[str]:
    """The lines of a TOML file but those of its ``[[users]]`` tables (and their sub-tables such
    as ``[[users.topics]]``), blanked so that line numbers stay. A header inside a multi-line
    string is not a header: such strings are followed. (A file this misreads fails to parse, and
    the caller parses it whole.)"""
    skipping, in_string = False, ""
    for line in lines:
        if not in_string:
            header = _HEADER.match(line)
            if header is not None:
                skipping = _READERS.match(header.group(1)) is not None
        for quote in _MULTILINE.findall(line):
            if not in_string:
                in_string = quote
            elif quote == in_string:
                in_string = ""
        yield "\n" if skipping else line
