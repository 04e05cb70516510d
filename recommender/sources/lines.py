"""Split raw bytes into numbered text lines (a line that is not UTF-8 is a bad line), and read
a JSON document with every refusal as one line naming the file and line. An XML document is
the exception to UTF-8: it names its own encoding (a byte-order mark or its declaration)."""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterator
from typing import Any

from recommender.base.errors import InputError


def decoded_lines(data: bytes, name: str) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text without the line ending)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(name, f"not valid UTF-8 (byte {exc.start + 1} of the line)", line=number) from None
        if "\x00" in text:
            raise InputError(name, "contains a NUL byte (binary data?)", line=number)
        yield number, text.rstrip("\r")


_XML_DECLARATION = re.compile(rb"\s*<\?xml\s[^>]*?encoding\s*=\s*[\"']([A-Za-z][A-Za-z0-9._-]*)[\"']")
_UTF8 = {"utf-8", "utf8"}


def xml_encoding(data: bytes) -> str | None:
    """The encoding an XML document names for itself, lower-case: ``utf-16`` for a UTF-16
    byte-order mark, else its declaration's; None when it names none (XML's rule: UTF-8)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    found = _XML_DECLARATION.match(data.removeprefix(b"\xef\xbb\xbf")[:256])
    return found.group(1).decode("ascii").lower() if found else None


def check_text(data: bytes, name: str) -> None:
    """Refuse a file with a line that is not UTF-8 (naming the line), unless it is XML: a feed
    is decoded by its parser, by the encoding it declares, else as UTF-8 falling back to
    windows-1252 as feed readers do (old publishers' feeds send "smart quotes" undeclared)."""
    if xml_encoding(data) == "utf-16" or data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return
    deque(decoded_lines(data, name), maxlen=0)


def text_head(data: bytes, size: int) -> bytes:
    """A file's first bytes as UTF-8 for recognising its format: a UTF-16 document decoded."""
    if xml_encoding(data) == "utf-16":
        return data[:2 * size].decode("utf-16", errors="replace").encode("utf-8")
    return data[:size]


_ENDS_EARLY = ("no element found", "unclosed token", "unclosed cdata section")  # expat's words


def cut_off(data: bytes, name: str, error: object, line: int, part: str = "item") -> InputError | None:
    """The refusal of an XML document whose parser ``error`` at ``line`` says it stops before
    its elements close, on its last line (a cut-off download); None for any other error."""
    if any(words in str(error).lower() for words in _ENDS_EARLY) and line >= data.rstrip().count(b"\n") + 1:
        return InputError(name, f"the feed ends before its last {part} closes (a cut-off download?); nothing stored",
                          line)
    return None


_JABREF_ENCODING = re.compile(rb"\A(?:\xef\xbb\xbf)?%+\s*Encoding:\s*([A-Za-z][A-Za-z0-9._-]*)")


def library_utf8(data: bytes, name: str) -> bytes:
    """A library export as UTF-8: a UTF-16 file (its byte-order mark) decoded, and a BibTeX
    file in the encoding its JabRef header names (``% Encoding: windows-1252``, JabRef 2's
    default) decoded by it; any other file as it is (its readers want UTF-8)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError:
            raise InputError(name, "not valid UTF-16, as its byte-order mark says") from None
    header = _JABREF_ENCODING.match(data)
    if not header or header.group(1).decode("ascii").lower().replace("_", "-") in _UTF8:
        return data
    encoding = header.group(1).decode("ascii")
    try:
        return data.decode(encoding).encode("utf-8")
    except LookupError:
        raise InputError(name, f"its header names an encoding this reader does not know ({encoding}); "
                               "save the library as UTF-8", 1) from None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(name, f"not valid {encoding}, as its header says", line) from None


def json_document(text: str, name: str, line: int | None = None) -> Any:
    """``json.loads(text)``; any way it refuses the text (bad syntax, nesting deeper than
    Python's recursion limit, an integer of thousands of digits) is an ``InputError``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(name, f"not valid JSON ({exc.msg}, column {exc.colno})",
                         exc.lineno if line is None else line) from None
    except RecursionError:
        raise InputError(name, "not readable: JSON nested too deeply", line) from None
    except ValueError as exc:  # an integer beyond sys.get_int_max_str_digits()
        raise InputError(name, f"not readable JSON: {str(exc).splitlines()[0]}", line) from None
