"""LaTeX in titles, abstracts and author names (arXiv, BibTeX) as readable Unicode, with
pylatexenc: ``Hajdu\\v{s}ek`` is Hajdušek, ``$\\mathcal{O}(n^2)$`` is 𝒪(n^2). Nothing is dropped:
a ``%`` is a percent sign (not a comment), a macro we do not know keeps its arguments, and a
conversion that would lose text leaves the text as it was."""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)

_MARKERS = re.compile(r"[\\$~{}]|--|``")  # ``quoted'': TeX's quotes ('' alone may be arcseconds)
_UNESCAPED_PERCENT = re.compile(r"(?<!\\)%")
_MACRO_NAME = re.compile(r"\\[A-Za-z]+")
# Spacing with a bare dimension (\mkern-2mu), which the walker would read as text.
_SPACING = re.compile(r"\\[mhv]?kern\s*-?\s*(?:\d+\.?\d*|\.\d+)\s*(?:mu|pt|em|ex|mm|cm|in|bp|sp) ?"
                      r"|\\[hv]space\*?\s*\{[^{}]*\}")
_SPACES = re.compile(r"[ \t]{2,}")
# A tie joins two words ("Fig.~3", "et~al.", "(i)~the"); any other ~ is the character itself:
# "of ~90%" (approximately), "(~47k tools)", a URL's "/~user".
_NOT_A_TIE = re.compile(r"(?<![\w.)\]}$-])~|~(?![\w\\({[$`'\"-])")
_KEPT = re.compile(r"[^\W_]", re.UNICODE)
_FONTS = ("textup", "textmd", "textsf", "texttt", "textsl", "textnormal", "textit", "textrm", "textsc")
_LOGOS = {"TeX": "TeX", "LaTeX": "LaTeX", "LaTeXe": "LaTeX2ε", "BibTeX": "BibTeX", "XeTeX": "XeTeX",
          "LuaTeX": "LuaTeX", "AmS": "AMS"}
KEEP_AT_LEAST = 0.9  # of the letters and digits outside macro names; else the text stays as given


@lru_cache(maxsize=1)
def _converter() -> tuple[Any, Any]:
    """pylatexenc's walker and converter, with the few macros it drops or misreads by default
    taught to keep their text (``\\mbox``, ``\\hbox``, ``\\href``, font switches such as
    ``\\textup``) and TeX's logos (``\\TeX``, ``\\LaTeX``) to write their names."""
    from pylatexenc import latexwalker, macrospec
    from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db

    walker_db = latexwalker.get_default_latex_context_db()
    walker_db.add_context_category("recommender", prepend=True, macros=[
        macrospec.MacroSpec("mbox", "{"), macrospec.MacroSpec("hbox", "{"), macrospec.MacroSpec("href", "{{"),
        macrospec.MacroSpec("url", "{"),
        *(macrospec.MacroSpec(font, "{") for font in _FONTS), *(macrospec.MacroSpec(logo, "") for logo in _LOGOS),
    ])
    text_db = get_default_latex_context_db()
    text_db.add_context_category("recommender", prepend=True, macros=[
        MacroTextSpec("mbox", "%(1)s"), MacroTextSpec("hbox", "%(1)s"), MacroTextSpec("href", "%(2)s <%(1)s>"),
        MacroTextSpec("url", "%(1)s"),
        *(MacroTextSpec(font, "%(1)s") for font in _FONTS), *(MacroTextSpec(logo, text) for logo, text in _LOGOS.items()),
    ])
    return walker_db, LatexNodes2Text(latex_context=text_db, math_mode="text", strict_latex_spaces=False)


def readable(text: str) -> str:
    """``text`` with its LaTeX turned into Unicode (NFC). Text without LaTeX markers is
    returned as it is (most abstracts: the parser is slow)."""
    if not text or not _MARKERS.search(text):
        return unicodedata.normalize("NFC", text) if text and not text.isascii() else text
    from pylatexenc.latexwalker import LatexWalker

    walker_db, converter = _converter()
    source = _UNESCAPED_PERCENT.sub(r"\\%", _SPACING.sub(lambda m: "" if "kern" in m.group() else " ", text))
    source = _NOT_A_TIE.sub(r"\\textasciitilde{}", source)
    try:
        nodes = LatexWalker(source, latex_context=walker_db, tolerant_parsing=True).get_latex_nodes()[0]
        converted = converter.nodelist_to_text(nodes)
    except Exception as exc:  # noqa: BLE001 - the parser's errors have no common base; the text stays as given
        log.debug("LaTeX left as written (%s): %.80s", exc, text)
        return text
    converted = unicodedata.normalize("NFC", _SPACES.sub(" ", converted.replace("\xa0", " ")))
    if _kept(converted) < KEEP_AT_LEAST * _kept(_MACRO_NAME.sub(" ", source)):
        log.debug("LaTeX left as written (the conversion would drop text): %.80s", text)
        return text
    return converted


def _kept(text: str) -> int:
    return len(_KEPT.findall(text))
