"""Split raw bytes into numbered text lines; a line that is not UTF-8 is a bad line."""

from __future__ import annotations

from collections.abc import Iterator

from recommender.errors import InputError


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
