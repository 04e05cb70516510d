"""Reading typed values out of TOML tables, naming the file and key of every mistake, and
collecting the mistakes so one run reports them all (the base of the config reader)."""

from __future__ import annotations

import difflib
import re
import zoneinfo
from collections.abc import Callable, Sequence
from datetime import time
from pathlib import Path
from typing import Any

import email_validator

from recommender.base.errors import ConfigError
from recommender.base.settings import HEADER_BOUND


def _key_hint(key: str, allowed: set[str]) -> str:
    """"did you mean `port`?" for a misspelt key, else the keys the table takes."""
    close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
    if close:
        return f"did you mean `{close[0]}`?"
    return f"expected one of {', '.join(sorted(allowed))}"


def _shown(value: Any) -> str:
    """A value for an error message, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class TableReader:
    """Typed values from TOML tables; errors are noted in ``errors``."""

    def __init__(self, path: Path):
        self.path = path
        self.errors: list[str] = []

    def fail(self, key: str, expected: str, value: Any) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: expected {expected}, got {_shown(value)}")

    def note(self, error: ConfigError) -> None:
        self.errors.append(error.message)

    def guarded(self, parse: Callable[[], Any], default: Any) -> Any:
        """``parse()``, or ``default`` with the error noted."""
        try:
            return parse()
        except ConfigError as exc:
            self.note(exc)
            return default

    @staticmethod
    def collected(problems: list[ConfigError], parse: Callable[[], Any], default: Any) -> Any:
        """``parse()``, or ``default`` with the error added to ``problems`` (see ``refuse_all``)."""
        try:
            return parse()
        except ConfigError as exc:
            problems.append(exc)
            return default

    def refuse_all(self, problems: list[ConfigError]) -> None:
        """An entry with ``problems``: every one noted, the entry refused (the last raised, for
        its caller's guard to note), so one run tells all of an entry's mistakes."""
        if problems:
            for problem in problems[:-1]:
                self.note(problem)
            raise problems[-1]

    def time_zone(self, prefix: str, table: dict[str, Any], key: str, default: str) -> str:
        """An IANA time zone name; a mistyped one with the zone meant."""
        name: str = self.get(prefix, table, key, str, default)
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            near = difflib.get_close_matches(name, sorted(zoneinfo.available_timezones()), n=1)
            problem = self.fail(f"{prefix}.{key}", "an IANA time zone such as Europe/London", name)
            raise ConfigError(problem.message + (f" (did you mean {near[0]}?)" if near else "")) from None
        return name

    def clock_time(self, prefix: str, table: dict[str, Any], key: str, default: time) -> time:
        """A time of day written HH:MM (or HH:MM:SS)."""
        text: str = self.get(prefix, table, key, str, default.isoformat())
        found = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", text)
        if not found or int(found[1]) > 23 or int(found[2]) > 59 or int(found[3] or 0) > 59:
            raise self.fail(f"{prefix}.{key}", "a time HH:MM", text)
        return time(int(found[1]), int(found[2]), int(found[3] or 0))

    def choice(self, prefix: str, table: dict[str, Any], key: str, default: str, choices: Sequence[str]) -> str:
        value: str = self.get(prefix, table, key, str, default)
        if value not in choices:
            raise self.fail(f"{prefix}.{key}", " or ".join(choices), value)
        return value

    def table(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, "a table", value)
        return value

    def check_keys(self, prefix: str, table: dict[str, Any], allowed: set[str],
                   refused: frozenset[str] = frozenset()) -> None:
        """Note every unknown key. ``refused`` keys (secrets) get their own error elsewhere and
        are never offered as a correction."""
        for key in table:
            if key not in allowed and key not in refused:
                self.note(ConfigError(f"{self.path}: {prefix}.{key}: unknown key ({_key_hint(key, allowed)})"))

    def get(self, prefix: str, table: dict[str, Any], key: str, kind: type, default: Any, expected: str = "") -> Any:
        if key not in table:
            return default
        value = table[key]
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            self.note(self.fail(f"{prefix}.{key}", expected or f"a {kind.__name__}", value))
            return default
        if kind is str and key in HEADER_BOUND and ("\r" in value or "\n" in value):
            self.note(ConfigError(f"{self.path}: {prefix}.{key}: must be one line (a line break here would "
                                  "end a mail header)"))
            return default
        return value

    def strings(self, prefix: str, table: dict[str, Any], key: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(f"{prefix}.{key}", "a list of strings", value)
        return tuple(v.strip() for v in value if v.strip())

    def address_error(self, address: str) -> str:
        """Why ``address`` is not a valid email address (syntax only, no DNS), or ""."""
        try:
            email_validator.validate_email(address, check_deliverability=False, allow_smtputf8=True)
        except email_validator.EmailNotValidError as exc:
            return str(exc)
        return ""

    def resolve_path(self, value: str) -> str:
        if not value:
            return ""
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else self.path.parent / path)

    def at_least_zero(self, prefix: str, table: dict[str, Any], key: str, default: int) -> int:
        value: int = self.get(prefix, table, key, int, default)
        if value < 0:
            raise self.fail(f"{prefix}.{key}", "an integer >= 0", value)
        return value

    def positive(self, prefix: str, table: dict[str, Any], key: str, kind: type, default: Any) -> Any:
        value = self.get(prefix, table, key, kind, default)
        if value <= 0:
            raise self.fail(f"{prefix}.{key}", "a number > 0", value)
        return value
