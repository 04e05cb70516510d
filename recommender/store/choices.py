"""A reader's standing choice on a paper: of their "more" and "less" clicks on it, the latest.
The click log may briefly hold both (``feedback._record_clicks`` keeps a replaced choice while
the one replacing it could still be a link scanner's), so whatever reads clicks asks here."""

from __future__ import annotations

from collections.abc import Sequence

OPPOSITE = {"more": "less", "less": "more"}


def effective(actions: Sequence[tuple[str, str]]) -> list[bool]:
    """For (paper id, action) clicks oldest first: whether each one stands. A "more" or "less"
    followed by a later "more" or "less" on the same paper does not; an "open" always does."""
    last: dict[str, int] = {}
    for n, (paper_id, action) in enumerate(actions):
        if action in OPPOSITE:
            last[paper_id] = n
    return [action not in OPPOSITE or last[paper_id] == n for n, (paper_id, action) in enumerate(actions)]
