"""Reading the config's ``[[sources]]`` tables: each kind's options, checked against the
formats registry (kinds), arXiv's category list (``categories`` of an arXiv source) and the
settings table (keys and defaults)."""

from __future__ import annotations

import re
from typing import Any

from recommender.base import arxiv_categories
from recommender.base.config_tables import TableReader
from recommender.base.errors import ConfigError
from recommender.base.formats import DIGEST_FORMATS, PAGED_FORMATS
from recommender.base.settings import SourceConfig
from recommender.base.settings_table import section_keys, setting


class SourceTables(TableReader):
    def arxiv_categories(self, prefix: str, table: dict[str, Any]) -> tuple[str, ...]:
        """``categories = ["cs.LG", "stat.ML"]``: arXiv category codes, checked against arXiv's list."""
        if "categories" not in table:
            return ()
        codes = self.strings(prefix, table, "categories")
        if not codes:
            raise self.fail(f"{prefix}.categories", 'arXiv category codes such as ["cs.LG", "stat.ML"]', [])
        unknown = [ConfigError(f"{self.path}: {prefix}.categories: {code!r} is not an arXiv category: "
                               f"{arxiv_categories.unknown_category_hint(code)}")
                   for code in dict.fromkeys(codes) if code not in arxiv_categories.CATEGORIES]
        self.refuse_all(unknown)  # each one said
        return codes

    def source(self, index: int, table: Any) -> SourceConfig:
        prefix = f"sources[{index}]"
        if not isinstance(table, dict):
            raise self.fail(prefix, "a table", table)
        self.check_keys(prefix, table, section_keys("sources"))
        name = self.get(prefix, table, "name", str, "")
        if not name:
            raise ConfigError(f"{self.path}: {prefix}.name: required key is missing")
        # `categories` alone is an arXiv source: its codes make the feed's address.
        kind = self.get(prefix, table, "kind", str, "arxiv" if "categories" in table else "")
        if kind not in DIGEST_FORMATS:
            raise self.fail(f"{prefix}.kind", "one of " + ", ".join(DIGEST_FORMATS), kind)
        codes = self.arxiv_categories(prefix, table) if kind == "arxiv" else ()
        path = self.get(prefix, table, "path", str, "")
        url = self.get(prefix, table, "url", str, "")
        if kind == "arxiv" and codes:
            if path or url:
                raise ConfigError(f"{self.path}: {prefix}: give exactly one of path, url or categories")
            url = arxiv_categories.feed_url(codes)
        elif path and url or not (path or url or kind in PAGED_FORMATS):
            raise ConfigError(f"{self.path}: {prefix}: give exactly one of path or url")
        if url and not re.match(r"^https?://", url):
            raise self.fail(f"{prefix}.url", "an http:// or https:// address", url)
        replacements = self.get(prefix, table, "include_replacements", bool, False)
        for key, kinds in (("categories", PAGED_FORMATS | {"arxiv"}), ("days", PAGED_FORMATS),
                           ("exclude_titles", {"feed"}), ("exclude_types", {"feed"})):
            if key in table and kind not in kinds:
                raise ConfigError(f"{self.path}: {prefix}.{key}: only for kind {' or '.join(sorted(kinds))} "
                                  f"(this source is {kind})")
        days = self.get(prefix, table, "days", int, setting("sources.days").default)
        if not 1 <= days <= 31:
            raise self.fail(f"{prefix}.days", "an integer from 1 to 31", days)
        exclude_titles = self.strings(prefix, table, "exclude_titles")
        for pattern in exclude_titles:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise self.fail(f"{prefix}.exclude_titles", f"regular expressions ({exc})", pattern) from None
        exclude_types = self.strings(prefix, table, "exclude_types") if "exclude_types" in table else None
        return SourceConfig(name=name, kind=kind, path=path, url=url, include_replacements=replacements,
                            categories=() if kind == "arxiv" else self.strings(prefix, table, "categories"), days=days,
                            exclude_titles=exclude_titles, exclude_types=exclude_types)
