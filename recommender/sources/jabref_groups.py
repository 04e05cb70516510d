"""JabRef's group tree, as JabRef (2.x to 6) and Better BibTeX write it in a BibTeX library:
``@Comment{jabref-meta: grouping: ...}`` (``groupstree:`` before JabRef 3.x), one group per
unit ending in an unescaped ``;``, each ``level Kind:field\\;field\\;...``. What puts an entry in
a group depends on its kind:

- ``StaticGroup`` (JabRef 4 and later): the entry's own ``groups`` field names it;
- ``ExplicitGroup`` (JabRef 2.x/3.x, Better BibTeX): the citation keys listed after the name
  and hierarchy context, or, when none are listed, the ``groups`` field;
- ``KeywordGroup``: a field of the entry holds every word of an expression (or matches it as
  a regular expression), as JabRef's ``WordKeywordGroup``/``RegexKeywordGroup`` decide.

Search groups and automatic groups are JabRef queries, not folders a reader filled: they are
not read. Line breaks inside the block are not part of the data (writers wrap long lines,
even inside a group's name), as JabRef's own parser drops them."""

from __future__ import annotations

import re
from dataclasses import dataclass

_META = re.compile(r"^\s*jabref-meta:\s*(grouping|groupstree):(.*)$", re.DOTALL)
_WORDS = re.compile(r"[\s,;]+")  # JabRef's StringUtil.getStringAsWords
_PART = re.compile(r"((?:\\.|[^\\;])*)(?:;|$)", re.DOTALL)  # up to an unescaped ";"
_OUTER_ESCAPE = re.compile(r"\\([;\\])")
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True)
class Group:
    name: str
    kind: str  # StaticGroup, ExplicitGroup, KeywordGroup
    keys: tuple[str, ...] = ()  # citation keys a legacy ExplicitGroup lists
    field: str = ""  # what a KeywordGroup searches, in lower case
    expression: str = ""
    case_sensitive: bool = False
    regex: bool = False


def group_tree(comments: list[str]) -> list[Group]:
    """The groups a library's ``jabref-meta`` comments declare, in tree order (empty without any)."""
    for comment in comments:
        found = _META.match(comment)
        if found:
            units = [u.strip() for u in _split(re.sub(r"[\r\n]", "", found.group(2)), outer=True) if u.strip()]
            return [group for group in map(_group, units) if group is not None]
    return []


def _split(text: str, outer: bool) -> list[str]:
    """``text`` split at unescaped ``;``, ``\\`` escaping the character after it. The outer
    level (the block into groups) unescapes only ``\\;`` and ``\\\\`` and keeps other escapes
    for the group's own fields, as JabRef's MetaDataParser does."""
    escaped = _OUTER_ESCAPE if outer else _ESCAPE
    return [escaped.sub(r"\1", found.group(1)) for found in _PART.finditer(text)]


def _group(unit: str) -> Group | None:
    level, _, rest = unit.partition(" ")
    kind, _, body = rest.partition(":")
    if not level.isdigit() or kind not in ("StaticGroup", "ExplicitGroup", "KeywordGroup"):
        return None
    fields = _split(body, outer=False)
    name = fields[0].strip()
    if not name:
        return None
    if kind == "KeywordGroup":
        if len(fields) < 6:
            return None
        return Group(name, kind, field=fields[2].strip().lower(), expression=fields[3],
                     case_sensitive=fields[4].strip() == "1", regex=fields[5].strip() == "1")
    keys = tuple(k.strip() for k in fields[2:] if k.strip()) if kind == "ExplicitGroup" else ()
    return Group(name, kind, keys=keys)


def split_names(value: str, known: set[str]) -> list[str]:
    """The names in a ``groups`` field. Writers join them with ``,`` (JabRef ``, ``, Better
    BibTeX ``,``) and escape nothing, so a name holding a comma is read back whole when the
    group tree declares it; other pieces are names of their own."""
    pieces = re.split(r"([,;])", value)
    names: list[str] = []
    i = 0
    while i < len(pieces):
        end = next((j for j in range(len(pieces), i, -2) if "".join(pieces[i:j]).strip() in known), i + 1)
        name = "".join(pieces[i:end]).strip()
        if name:
            names.append(name)
        i = end + 1
    return names


def members(groups: list[Group], key: str, fields: dict[str, str]) -> list[str]:
    """The names of the tree's groups an entry (its citation key and lower-cased fields) is in
    by the tree itself: listed in a legacy ExplicitGroup, or matched by a KeywordGroup."""
    found = []
    for group in groups:
        if group.kind == "ExplicitGroup" and key in group.keys or group.kind == "KeywordGroup" and _matches(group, fields):
            found.append(group.name)
    return found


def _matches(group: Group, fields: dict[str, str]) -> bool:
    value = fields.get(group.field, "")
    if not value:
        return False
    if group.regex:
        try:
            return re.search(group.expression, value, 0 if group.case_sensitive else re.IGNORECASE) is not None
        except re.error:
            return False  # a Java pattern Python cannot read: the group stays empty
    words = set(w for w in _WORDS.split(value) if w)
    wanted = [w for w in _WORDS.split(group.expression) if w]
    if not group.case_sensitive:
        words = {w.lower() for w in words}
        wanted = [w.lower() for w in wanted]
    return bool(wanted) and all(w in words for w in wanted)
