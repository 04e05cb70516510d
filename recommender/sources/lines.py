"""Split raw bytes into numbered text lines (a line that is not UTF-8 is a bad line), and read
a JSON document with every refusal as one line naming the file and line."""

from __future__ import annotations

import json
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
