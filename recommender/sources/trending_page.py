"""The trending-papers page format of ``seeds/``.

A few header lines, a date line without a year (``Mar 11``), then paragraphs that
alternate title and abstract, separated by blank lines. The year comes from
``year_hint`` when given, else it is the most recent such date not after the file's
modification time.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from recommender.base.domain import ParsedBatch, ParsedPaper, ReadHints
from recommender.base.errors import InputError
from recommender.base.text import one_line
from recommender.sources.lines import decoded_lines

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DATE_LINE = re.compile(r"^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? (\d{1,2})$", re.IGNORECASE)
_HEADER_LIMIT = 20


def looks_like(head: bytes) -> bool:
    """A date line among the first few non-empty lines."""
    text = head.decode("utf-8", errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()][:_HEADER_LIMIT]
    return any(_DATE_LINE.match(line) for line in lines)


def _resolve_year(month: int, day: int, year_hint: date | None, modified: datetime | None,
                  name: str, line: int) -> date:
    if year_hint is not None:
        try:
            return date(year_hint.year, month, day)
        except ValueError:
            raise InputError(name, f"{_MONTHS[month - 1].title()} {day} does not exist in {year_hint.year}", line) from None
    limit = (modified or datetime.now()).date()
    for year in range(limit.year, limit.year - 9, -1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue  # Feb 29 in a non-leap year
        if candidate <= limit:
            return candidate
    raise InputError(name, f"invalid date line {_MONTHS[month - 1].title()} {day}", line)


def _paragraphs(data: bytes, name: str) -> list[tuple[int, str]]:
    """Runs of non-blank lines joined by spaces, each with the line it starts on."""
    paragraphs: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, text in decoded_lines(data, name):
        if text.strip():
            if not current:
                start = number
            current.append(text.strip())
        elif current:
            paragraphs.append((start, " ".join(current)))
            current = []
    if current:
        paragraphs.append((start, " ".join(current)))
    return paragraphs


def parse(data: bytes, name: str, year_hint: date | None = None, modified: datetime | None = None) -> ParsedBatch:
    paragraphs = _paragraphs(data, name)
    if not paragraphs:
        raise InputError(name, "empty file: no digest entries to ingest")
    date_index = next(
        (i for i, (_, text) in enumerate(paragraphs[:_HEADER_LIMIT]) if _DATE_LINE.match(text)), None
    )
    if date_index is None:
        raise InputError(name, "not a trending page: no date line such as 'Mar 11' in the header", paragraphs[0][0])
    date_line, date_text = paragraphs[date_index]
    match = _DATE_LINE.match(date_text)
    assert match is not None  # nosec B101  # the line was selected by this same pattern
    month = _MONTHS.index(match.group(1).lower()[:3]) + 1
    batch_date = _resolve_year(month, int(match.group(2)), year_hint, modified, name, date_line)
    body = paragraphs[date_index + 1:]
    if not body:
        raise InputError(name, "the page has a date but no papers", date_line)
    if len(body) % 2:
        line, text = body[-1]
        raise InputError(name, f"title without an abstract: {text[:60]!r}", line)
    entries = []
    for (title_line, title), (_, abstract) in zip(body[0::2], body[1::2], strict=True):
        title = one_line(title)
        if len(title) > 1000:
            raise InputError(name, "title longer than 1000 characters (is the page's layout broken?)", title_line)
        entries.append(ParsedPaper(title=title, abstract=abstract, line=title_line))
    return ParsedBatch(format="trending_page", entries=tuple(entries), batch_date=batch_date)


def read(data: bytes, name: str, hints: ReadHints) -> ParsedBatch:
    return parse(data, name, year_hint=hints.batch_date, modified=hints.modified)
