"""HTTP's Retry-After header (RFC 9110 section 10.2.3): a number of seconds or an HTTP date.
Read by the feed fetcher and the webhook sender alike."""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import parsedate_to_datetime

_SECONDS = re.compile(r"\d+(?:\.\d*)?")


def seconds(value: str, now: datetime) -> float | None:
    """The wait ``value`` asks for, in seconds from ``now`` (never negative); None when the
    header is absent or unreadable."""
    value = value.strip()
    if not value:
        return None
    if _SECONDS.fullmatch(value):
        return max(0.0, float(value))
    try:
        return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
    except (TypeError, ValueError):
        return None
