"""Fitted models as pickles whose numpy arrays lie out of band, and their memory-mapped files
beside a SQLite database.

On PostgreSQL the database row holds the model: every host reads it. Beside a SQLite database
the model is a file, which loading maps instead of reading: a command touches only the pages
it uses (the rows of one batch's papers, not every row of a 250 MB model), nothing is copied,
and a forked child shares the pages. The row then holds only the key and time that stamp the
file (and the model itself only when the file could not be written), so a replaced model or a
new database at the same path is never served from an old file. A model is a cache of what
the papers give: a file that is gone or damaged means it is fit again.
"""

from __future__ import annotations

import logging
import mmap
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAGIC = b"recommender-model/1\n"
ALIGN = 64  # each array starts on a 64-byte boundary (numpy and BLAS like aligned rows)
STAMP_BYTES = 256  # the file's first bytes: the stamp, padded (keeps the payload aligned)


def dumps(model: Any) -> bytes:
    """``MAGIC``, the pickle's length, the pickle, then each array's bytes, aligned."""
    buffers: list[pickle.PickleBuffer] = []
    main = pickle.dumps(model, protocol=5, buffer_callback=buffers.append)
    raws = [buffer.raw() for buffer in buffers]
    header = " ".join(str(n) for n in [len(main), *(raw.nbytes for raw in raws)]).encode() + b"\n"
    parts: list[bytes | memoryview] = [MAGIC, header, main]
    offset = len(MAGIC) + len(header) + len(main)
    for raw in raws:
        pad = -offset % ALIGN
        parts += [b"\0" * pad, raw]
        offset += pad + raw.nbytes
    return b"".join(parts)


def loads(payload: bytes | bytearray | memoryview) -> Any:
    """The model of a ``dumps`` payload (or of a plain pickle, as older versions stored them).
    Its arrays are views of ``payload``: writable when the payload is."""
    view = memoryview(payload)
    if bytes(view[:len(MAGIC)]) != MAGIC:
        return pickle.loads(view)  # noqa: S301 - our own payload
    end = bytes(view[len(MAGIC):len(MAGIC) + 4096]).index(b"\n") + len(MAGIC)
    main_length, *lengths = (int(n) for n in bytes(view[len(MAGIC):end]).split())
    offset = end + 1
    main = view[offset:offset + main_length]
    offset += main_length
    buffers = []
    for length in lengths:
        offset += -offset % ALIGN
        buffers.append(view[offset:offset + length])
        offset += length
    return pickle.loads(main, buffers=buffers)  # noqa: S301 - our own payload


class ModelFiles:
    """The mapped copies of one SQLite database's models, one file per kind."""

    def __init__(self, folder: Path):
        self.folder = folder

    def _path(self, kind: str) -> Path:
        return self.folder / f"{kind}.model"

    def load(self, kind: str, stamp: str) -> Any | None:
        """The model, mapped from its file if that copies the row ``stamp`` names; else None."""
        try:
            with open(self._path(kind), "rb") as file:
                if file.read(STAMP_BYTES).rstrip(b"\0") != stamp.encode():
                    return None
                # A private mapping: the arrays are writable, and writes stay in this process.
                mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY)
        except (OSError, ValueError):
            return None
        try:
            return loads(memoryview(mapped)[STAMP_BYTES:])
        except Exception as exc:  # noqa: BLE001 - never used: the row's model, or a new fit
            log.warning("ignoring the damaged model file %s: %s", self._path(kind), exc)
            return None

    def save(self, kind: str, stamp: str, payload: bytes) -> bool:
        """Write the file (whole or not at all: a new file moved into place); False when the
        folder cannot be written (the database row keeps the model then)."""
        head = stamp.encode()
        if len(head) > STAMP_BYTES:
            return False
        try:
            self.folder.mkdir(exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=f".{kind}-")
            try:
                with os.fdopen(handle, "wb") as file:
                    file.write(head.ljust(STAMP_BYTES, b"\0"))
                    file.write(payload)
                os.replace(temporary, self._path(kind))
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.debug("could not write the %s model's file: %s", kind, exc)
            return False
        return True
