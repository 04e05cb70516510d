"""Plain text from the HTML that feeds put in titles and summaries: tags removed (with the
contents of scripts and styles), entities decoded (twice when a feed escaped them twice),
blocks and line breaks turned into spaces, runs of spaces folded."""

from __future__ import annotations

import html
import re

from recommender.base.text import one_line

_HIDDEN = re.compile(r"<(script|style|head)\b[^>]*>.*?</\1\s*>", re.I | re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.S)
_BLOCK = re.compile(r"<\s*/?\s*(?:p|div|br|li|ul|ol|h[1-6]|tr|td|table|section|blockquote)\b[^>]*>", re.I)
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")


def plain(text: str) -> str:
    """``text`` without markup, on one line."""
    if not text:
        return ""
    for _ in range(2):  # "&lt;i&gt;p&lt;/i&gt;": a title escaped twice is markup once unescaped
        if "<" not in text and "&" not in text:
            break
        text = _CDATA.sub(r"\1", text)
        text = _COMMENT.sub(" ", _HIDDEN.sub(" ", text))
        text = _TAG.sub("", _BLOCK.sub(" ", text))
        text = html.unescape(text)
    if "<" in text:
        text = _TAG.sub("", text)
    return one_line(text.replace("\xa0", " "))
