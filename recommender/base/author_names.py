"""Author names as the sources write them, turned into one readable name per author.

arXiv writes a paper's authors as one string: ``A. Name (1 and 2), B. Name (1) ((1) Univ X,
City, (2) ...)`` or ``Name (Dept, Univ, City), Other Name``, joined by commas and ``and``;
affiliations and their markers are not authors. Reference managers write ``Last, First``
joined by `` and `` (BibTeX) or ``;`` (Zotero CSV). Each name comes out as ``First Last``, its
LaTeX as Unicode, without the number DBLP adds to tell people of one name apart ("Jörg
Hoffmann 0001", kept by libraries that imported from DBLP: a reader knows no such number).
"""

from __future__ import annotations

import re

from recommender.base.latex import readable
from recommender.base.text import one_line

_AND = re.compile(r"\s+and\s+|\s*&\s*", re.IGNORECASE)
_SUFFIXES = frozenset({"jr", "jr.", "sr", "sr.", "ii", "iii", "iv", "v"})
ET_AL = re.compile(r"^(?:et\s*al\.?|others)$", re.IGNORECASE)
_DBLP_NUMBER = re.compile(r"\s+\d{4}$")


def without_dblp_number(name: str) -> str:
    """``name`` without a trailing DBLP disambiguation number ("Jörg Hoffmann 0001" ->
    "Jörg Hoffmann"); a name that is only digits stays as it is."""
    stripped = _DBLP_NUMBER.sub("", name)
    return stripped if stripped.strip() else name


def without_parentheses(text: str) -> str:
    """``text`` with every parenthesised group (nested ones too) removed: what arXiv puts in
    parentheses after names is affiliations and their markers. An unclosed group runs to the
    end of the text."""
    out, depth = [], 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif not depth:
            out.append(char)
    return "".join(out)


def arxiv_authors(text: str) -> tuple[str, ...]:
    """The names in an arXiv author string (feeds, API, metadata snapshot)."""
    text = readable(one_line(text))
    names: list[str] = []
    for part in without_parentheses(text).split(","):
        for name in _AND.split(part):
            name = one_line(name).strip(" ;:")
            if not name or ET_AL.match(name):
                continue
            if names and name.lower() in _SUFFIXES:  # "John Smith, Jr."
                names[-1] = f"{names[-1]} {name}"
            else:
                names.append(without_dblp_number(name))
    return tuple(names)


def first_last(name: str) -> str:
    """``Last, First`` (or ``Last, Jr, First``) as ``First Last``; other names as they are;
    either without a DBLP number."""
    name = one_line(name)
    parts = [without_dblp_number(p.strip()) for p in name.split(",")]
    if len(parts) == 2 and parts[0] and parts[1]:
        return f"{parts[1]} {parts[0]}"
    if len(parts) == 3 and parts[0] and parts[2]:  # BibTeX's "von Last, Jr, First"
        return f"{parts[2]} {parts[0]} {parts[1]}".replace("  ", " ").strip()
    return without_dblp_number(name)


def listed_names(text: str, separator: str) -> tuple[str, ...]:
    """Names joined by ``separator`` (`` and `` in BibTeX, ``;`` in Zotero CSV), each as
    ``First Last`` in readable Unicode; braces that protect a name's case go."""
    names = []
    for raw in re.split(separator, text):
        name = first_last(readable(raw).replace("{", "").replace("}", ""))
        if name and not ET_AL.match(name):
            names.append(name)
    return tuple(names)


def bibtex_names(text: str) -> tuple[str, ...]:
    """The names of a BibTeX ``author`` (or ``editor``) field."""
    return listed_names(text, r"\s+(?i:and)\s+(?![^{]*\})")  # BibTeX reads "AND" as "and"


def shortened(authors: tuple[str, ...] | list[str], most: int = 8) -> str:
    """An author line for people to read: the first ``most`` names, then "et al."."""
    shown = ", ".join(authors[:most])
    return shown + " et al." if len(authors) > most else shown
