"""Cached models and profiles are keyed by a format version of the code that made them, so a
change in that code never serves what the old code cached. This test keeps the versions
honest: it fingerprints the code behind each cache (its syntax tree, without docstrings and
without the version's own line, so comments and prose can change freely) and fails when the
code changed but the version did not."""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
from pathlib import Path

import pytest

# cache: (module holding the version, its name, the version, the modules whose code builds the
# cached data, their fingerprint). On a change, bump the version and record the new fingerprint.
CACHES = [
    ("tfidf", "model.tfidf", "MODEL_FORMAT", 6, ("model.tfidf", "model.term_counts", "base.text"), "69c05f0824431c12"),
    ("collab", "model.reader_factors", "MODEL_FORMAT", 4, ("model.reader_factors", "model.word_vectors", "model.unit_rows"),
     "6777213561c5aa62"),
    ("lsa", "model.own_classifier", "MODEL_FORMAT", 9, ("model.own_classifier", "model.word_vectors", "model.reader_model",
                                                      "model.term_ridge"), "e6259c01eaee66ba"),
    ("profiles", "model.profiles", "CACHE_FORMAT", 16, ("model.profiles", "model.own_classifier", "model.reader_model",
                                                       "model.term_ridge", "model.unit_rows", "pipeline.stored_models"),
     "e02fc785fa1b2059"),
    ("near", "pipeline.stored_models", "NEAR_FORMAT", 1, ("model.reader_model",), "2aa714b1e9071a2f"),
    ("written", "model.written_terms", "FORMS_FORMAT", 1, ("model.written_terms",), "716c64e70b0d8e70"),
]


def _without_prose(tree: ast.Module, version_name: str) -> ast.Module:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            node.body = [n for n in body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)
                                                 and isinstance(n.value.value, str))
                         and not (isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == version_name
                                                                      for t in n.targets))] or [ast.Pass()]
    return tree


def fingerprint(modules: tuple[str, ...], version_name: str) -> str:
    digest = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(f"recommender.{name}")
        assert spec is not None and spec.origin is not None
        tree = _without_prose(ast.parse(Path(spec.origin).read_text(encoding="utf-8")), version_name)
        digest.update(ast.unparse(tree).encode())  # the code as text: the same on every Python version
    return digest.hexdigest()[:16]


@pytest.mark.parametrize("cache, holder, version_name, version, modules, recorded", CACHES,
                         ids=[c[0] for c in CACHES])
def test_a_cache_format_changes_with_the_code_that_builds_it(cache: str, holder: str, version_name: str, version: int,
                                                             modules: tuple[str, ...], recorded: str):
    current = getattr(importlib.import_module(f"recommender.{holder}"), version_name)
    found = fingerprint(modules, version_name)
    assert (current, found) == (version, recorded), (
        f"the code behind the {cache} cache ({', '.join(modules)}) changed: bump recommender.{holder}.{version_name} "
        f"(now {current}) and record ({current if current != version else current + 1}, {found!r}) in CACHES")
