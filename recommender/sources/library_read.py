"""What a reader of a reference-manager library returns: the entries it could read, and one
line per entry it skipped (file, line, the reason)."""

from __future__ import annotations

from dataclasses import dataclass, field

from recommender.base.domain import ParsedPaper


@dataclass(frozen=True)
class LibraryRead:
    entries: list[ParsedPaper]
    skipped: list[str] = field(default_factory=list)
