"""Digest rendering: choose a user's entries, build the template context, render the HTML
(CSS inlined, media queries kept) and plain-text parts from the same entries."""

from __future__ import annotations

import email.utils
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import css_inline
from jinja2 import Environment, FunctionLoader, StrictUndefined, select_autoescape

from recommender.base.author_names import shortened
from recommender.base.config import Config, UserConfig
from recommender.base.domain import Paper, Recommendation
from recommender.base.link_signing import LinkSigner
from recommender.base.resources import templates_dir
from recommender.base.text import one_line, snippet

SNIPPET_CHARS = 280
BAR_CELLS = 10
_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


@dataclass(frozen=True)
class RenderedDigest:
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class Links:
    """Builds the signed URLs of one digest."""

    base_url: str
    signer: LinkSigner
    user_id: int
    digest_id: int
    issued: int | None = None  # the digest's links share one issue time (default: now)

    def __post_init__(self) -> None:
        if self.issued is None:
            object.__setattr__(self, "issued", self.signer.now())

    def _url(self, path: str, action: str, position: int = -1) -> str:
        token = self.signer.sign_link(action, self.user_id, self.digest_id, position, self.issued)
        return f"{self.base_url}/{path}/{token}"

    def more(self, position: int) -> str:
        return self._url("feedback/more", "more", position)

    def less(self, position: int) -> str:
        return self._url("feedback/less", "less", position)

    def open(self, position: int) -> str:
        return self._url("open", "open", position)

    def unsubscribe(self) -> str:
        return self._url("unsubscribe", "unsubscribe")

    def view(self) -> str:
        return self._url("digest", "view")


# Templates whose CSS is inlined once, when loaded, instead of into every rendered message (the
# inliner parsed each 50 kB digest again). Their Jinja tags sit only in text and attribute
# values, which the inliner keeps as they are.
INLINED_WHEN_LOADED = ("digest.html.j2",)


def _environment() -> Environment:
    folder = templates_dir()

    def load(name: str) -> str:
        source = folder.joinpath(name).read_text(encoding="utf-8")
        return _INLINER.inline(source) if name in INLINED_WHEN_LOADED else source

    return Environment(
        loader=FunctionLoader(load),
        autoescape=select_autoescape(enabled_extensions=("html.j2", "atom.j2"), default_for_string=True),
        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )


TEMPLATES = _environment()


def subject_line(count: int, when: datetime, personalized: bool) -> str:
    noun = "paper" if count == 1 else "papers"
    what = f"{count} new {noun} for you" if personalized else f"{count} trending {noun}"
    return f"{what} — {when.day} {when:%b}"


def digest_subject(user: UserConfig, picks: list[Recommendation], now: datetime) -> str:
    """The subject of a digest of these picks dated ``now`` (the reader's day)."""
    personalized = any(r.explanation.personalized for r in picks)
    return subject_line(len(picks), now.astimezone(ZoneInfo(user.timezone)), personalized)


def schedule_label(user: UserConfig) -> str:
    when = f"{user.send_at:%H:%M} {user.timezone}"
    return f"daily at {when}" if user.frequency == "daily" else f"weekly on {user.weekday.title()} at {when}"


@dataclass(frozen=True, slots=True)
class PaperFields:
    """What a digest shows of a paper, the same in every user's digest."""

    title: str
    authors: str
    snippet: str
    snippet_lines: tuple[str, ...]
    paper_label: str  # "arXiv:2508.13167", else the stored id
    category: str
    date_label: str  # "20 Aug 2025", "" when the source gave no readable date
    pdf_url: str


def date_label(published: str) -> str:
    """A source's publication date as "20 Aug 2025": ISO 8601 (Atom, the APIs), RFC 2822 (RSS),
    or a bare year (BibTeX); anything else is not shown."""
    text = published.strip()
    if text.isdigit() and len(text) == 4:
        return text
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return ""
    return f"{when.day} {when:%b %Y}"


@lru_cache(maxsize=4096)
def paper_fields(paper: Paper) -> PaperFields:
    """Computed once per paper of a run (a run renders the same few hundred papers thousands
    of times)."""
    paper = paper.display
    text_snippet = snippet(paper.abstract, SNIPPET_CHARS)
    return PaperFields(
        title=one_line(paper.title) or snippet(paper.abstract, 90),
        authors=shortened([one_line(a) for a in paper.authors]),
        snippet=text_snippet,
        snippet_lines=tuple(textwrap.wrap(text_snippet, 72)),
        paper_label=f"arXiv:{paper.arxiv_id}" if paper.arxiv_id else paper.id,
        category=one_line(paper.category),
        date_label=date_label(paper.published),
        pdf_url=f"https://arxiv.org/pdf/{paper.arxiv_id}" if paper.arxiv_id else "",
    )


def matches(picks: list[Recommendation]) -> list[int]:
    """Each pick's match, 0-100 (``Recommendation.match``: its place among the reader's candidates)."""
    return [max(0, min(100, rec.match)) for rec in picks]


# What a reader's clicks on a paper are called on the web view of a digest.
CLICK_LABELS = {"more": "more like this", "less": "less like this", "open": "opened"}


@dataclass(frozen=True, slots=True)
class Entry:
    """One pick as the templates show it. An object rather than a dict: Jinja looks a name up
    as an attribute first, and a dict's failed attribute lookup (an exception) for each of a
    digest's ~900 lookups was a tenth of rendering it."""

    rank: int
    title: str
    authors: str
    paper_label: str
    category: str
    date_label: str
    pdf_url: str
    snippet: str
    snippet_lines: tuple[str, ...]
    why: str
    why_lines: tuple[str, ...]
    match: int  # 0-100
    bar_percent: int
    match_label: str
    match_text_bar: str
    open_url: str
    more_url: str
    less_url: str
    clicked: str  # on the web view: what the reader already clicked for this paper ("" in a mail)


@dataclass(frozen=True, slots=True)
class Section:
    """A run of entries under one heading: a reader's topic, or "" (no heading) without topics."""

    heading: str
    entries: list[Entry]


def sections(picks: list[Recommendation], entries: list[Entry]) -> list[Section]:
    """The entries grouped under their picks' topics, in the picks' order."""
    found: list[Section] = []
    for rec, entry in zip(picks, entries, strict=True):
        if not found or found[-1].heading != rec.topic:
            found.append(Section(rec.topic, []))
        found[-1].entries.append(entry)
    return found


def context(config: Config, user: UserConfig, picks: list[Recommendation], links: Links,
            now: datetime, web: bool = False, clicked: Mapping[str, frozenset[str]] | None = None) -> dict[str, object]:
    """The templates' values; ``clicked`` (paper id -> actions) marks the web view's entries."""
    local = now.astimezone(ZoneInfo(user.timezone))
    personalized = any(r.explanation.personalized for r in picks)
    entries = []
    for position, (rec, match) in enumerate(zip(picks, matches(picks), strict=True)):
        cells = round(match * BAR_CELLS / 100)
        why = one_line(rec.explanation.sentence())
        shown = paper_fields(rec.paper)
        actions = (clicked or {}).get(rec.paper.id, frozenset())
        entries.append(Entry(
            rank=rec.rank,
            title=shown.title,
            authors=shown.authors,
            paper_label=shown.paper_label,
            category=shown.category,
            date_label=shown.date_label,
            pdf_url=shown.pdf_url,
            snippet=shown.snippet,
            snippet_lines=shown.snippet_lines,
            why=why,
            why_lines=tuple(textwrap.wrap(why, 67)),
            match=match,
            bar_percent=max(4, match) if personalized else 0,
            match_label=f"{match}% match",
            match_text_bar="[" + "#" * cells + "." * (BAR_CELLS - cells) + "]",
            open_url=links.open(position),
            more_url=links.more(position),
            less_url=links.less(position),
            clicked=", ".join(label for action, label in CLICK_LABELS.items() if action in actions),
        ))
    subject = digest_subject(user, picks, now)
    return {
        "subject": subject,
        "heading": f"Papers for {one_line(user.name) or user.email}",
        "date_label": f"{local:%A} {local.day} {local:%B %Y}",
        "count": len(picks),
        "personalized": personalized,
        "entries": entries,
        "sections": sections(picks, entries),
        "recipient": user.email,
        "schedule": schedule_label(user),
        "unsubscribe_url": links.unsubscribe(),
        "view_url": "" if web else links.view(),
    }


def render(values: dict[str, object]) -> RenderedDigest:
    html = TEMPLATES.get_template("digest.html.j2").render(values)
    text = TEMPLATES.get_template("digest.txt.j2").render(values)
    return RenderedDigest(subject=str(values["subject"]), html=html, text=text)
