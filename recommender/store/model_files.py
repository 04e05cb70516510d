"""Fitted models as plain arrays and JSON, and their memory-mapped files beside a SQLite
database.

A payload is ``MAGIC``, a JSON header that describes the model (dataclasses of an allow-list,
strings, numbers, lists, dicts, sets) with each array as a reference, then each array's raw
bytes, aligned. Nothing is unpickled: a payload read back from the database or a file can only
ever become these values and arrays of plain (non-object) dtypes, so whoever can write the
database cannot make a host that ranks run code.

On PostgreSQL the database row holds the model: every host reads it once, into a file of its
own (``host_folder``), and maps that file from then on, as beside a SQLite database, where
the model is a file, which loading maps instead of reading: a command touches only the pages
it uses (the rows of one batch's papers, not every row of a 250 MB model), nothing is copied,
and a forked child shares the pages. The row then holds only the key and time that stamp the
file (and the model itself only when the file could not be written), so a replaced model or a
new database at the same path is never served from an old file. A model is a cache of what
the papers give: a file that is gone or damaged means it is fit again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import logging
import mmap
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)

MAGIC = b"recommender-model/2\n"
ALIGN = 64  # each array starts on a 64-byte boundary (numpy and BLAS like aligned rows)
STAMP_BYTES = 256  # the file's first bytes: the stamp, padded (keeps the payload aligned)
# The only classes a payload may name: each is imported by this fixed name, never by one read.
MODEL_CLASSES = frozenset({"recommender.model.tfidf.TextModel", "recommender.model.reader_factors.CollabModel",
                           "recommender.model.profiles.CachedProfiles", "recommender.model.own_classifier.LsaSpace",
                           "recommender.model.reader_model.ReaderBasis", "recommender.model.reader_model.NearGroups",
                           "recommender.model.term_ridge.TermBasis",
                           "recommender.model.written_terms.BatchForms"})


_PLAIN = (str, int, float, bool)


class DamagedModel(ValueError):
    """A payload that is not a model this code wrote (damaged, or of an older format)."""


def dumps(model: Any) -> bytes:
    """``MAGIC``, the header's length, the JSON header, then each array's bytes, aligned."""
    arrays: list[np.ndarray] = []

    def encode(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise TypeError("an array of Python objects cannot be stored")
            arrays.append(np.ascontiguousarray(value))
            return {"$array": len(arrays) - 1, "dtype": value.dtype.str, "shape": list(value.shape)}
        if sp.issparse(value):
            csr = sp.csr_matrix(value)
            return {"$csr": [encode(csr.data), encode(csr.indices), encode(csr.indptr)], "shape": list(csr.shape)}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            name = f"{type(value).__module__}.{type(value).__qualname__}"
            if name not in MODEL_CLASSES:
                raise TypeError(f"{name} is not a model class (model_files.MODEL_CLASSES)")
            derived = getattr(type(value), "derived_fields", ())
            return {"$model": name, "fields": {f.name: encode(getattr(value, f.name))
                                               for f in dataclasses.fields(value) if f.init and f.name not in derived}}
        if isinstance(value, (set, frozenset)):
            return {"$frozenset" if isinstance(value, frozenset) else "$set": [encode(v) for v in sorted(value)]}
        if isinstance(value, tuple):
            return {"$tuple": [encode(v) for v in value]}
        if isinstance(value, list):
            # A list of plain values stays a JSON list (read back as it is: 100,000 paper ids).
            return value if all(v is None or type(v) in _PLAIN for v in value) else {"$list": [encode(v) for v in value]}
        if isinstance(value, dict):
            if all(type(k) is str and (v is None or type(v) in _PLAIN) for k, v in value.items()):
                return {"$plaindict": value}
            return {"$dict": [[encode(k), encode(v)] for k, v in value.items()]}
        if isinstance(value, np.generic):
            return value.item()
        if value is None or isinstance(value, (str, bool, int, float)):
            return value
        raise TypeError(f"cannot store a {type(value).__name__} in a model")

    header = json.dumps(encode(model), separators=(",", ":")).encode()
    parts: list[bytes | memoryview] = [MAGIC, f"{len(header)}\n".encode(), header]
    offset = sum(len(p) for p in parts)
    for array in arrays:
        pad = -offset % ALIGN
        raw = memoryview(array.reshape(-1).view(np.uint8))  # type: ignore[arg-type]  # (numpy arrays are buffers; an empty one too)
        parts += [b"\0" * pad, raw]
        offset += pad + raw.nbytes
    return b"".join(parts)


def loads(payload: bytes | bytearray | memoryview) -> Any:
    """The model of a ``dumps`` payload. Its arrays are views of ``payload``: writable when the
    payload is. ``DamagedModel`` for anything else."""
    view = memoryview(payload)
    if bytes(view[:len(MAGIC)]) != MAGIC:
        raise DamagedModel("not a model payload of this version")
    try:
        end = bytes(view[len(MAGIC):len(MAGIC) + 32]).index(b"\n") + len(MAGIC)
        length = int(bytes(view[len(MAGIC):end]))
        description = json.loads(bytes(view[end + 1:end + 1 + length]))
    except (ValueError, RecursionError) as exc:
        raise DamagedModel(f"unreadable header: {exc}") from None
    offset = end + 1 + length
    return _Decoder(view, offset).decode(description)


class _Decoder:
    def __init__(self, view: memoryview, start: int):
        self.view, self.offset = view, start

    def array(self, spec: dict[str, Any]) -> np.ndarray:
        dtype = np.dtype(spec["dtype"])
        if dtype.hasobject:
            raise DamagedModel("an object array")
        shape = tuple(int(n) for n in spec["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        self.offset += -self.offset % ALIGN
        size = count * dtype.itemsize
        if self.offset + size > len(self.view):
            raise DamagedModel("truncated")
        array = np.frombuffer(self.view[self.offset:self.offset + size], dtype=dtype, count=count).reshape(shape)
        self.offset += size
        return array

    def decode(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return value  # a plain value, or a list of plain values
        if "$list" in value:
            return [self.decode(v) for v in value["$list"]]
        if "$plaindict" in value:
            return value["$plaindict"]
        if "$array" in value:
            return self.array(value)
        if "$csr" in value:
            data, indices, indptr = (self.decode(v) for v in value["$csr"])
            return sp.csr_matrix((data, indices, indptr), shape=tuple(value["shape"]))
        if "$model" in value:
            name = value["$model"]
            if name not in MODEL_CLASSES:
                raise DamagedModel(f"{name!r} is not a model class")
            module, _, cls_name = name.rpartition(".")
            cls = getattr(importlib.import_module(module), cls_name)
            return cls(**{k: self.decode(v) for k, v in value["fields"].items()})
        if "$frozenset" in value:
            return frozenset(self.decode(v) for v in value["$frozenset"])
        if "$set" in value:
            return {self.decode(v) for v in value["$set"]}
        if "$tuple" in value:
            return tuple(self.decode(v) for v in value["$tuple"])
        if "$dict" in value:
            return {self.decode(k): self.decode(v) for k, v in value["$dict"]}
        raise DamagedModel("an unknown value")


def host_folder(database: str) -> Path:
    """This host's folder for the mapped copies of one server database's models (``database``:
    its URL without the password), under $XDG_CACHE_HOME (~/.cache)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "recommender" / "models" / hashlib.sha256(database.encode()).hexdigest()[:24]


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
            self.folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.folder.mkdir(mode=0o700, exist_ok=True)
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
