"""The package's layering, read from every import in its source (inside functions and under
TYPE_CHECKING too: a deferred import is still a dependency), as docs/ARCHITECTURE.md draws it:
a module imports only from its own layer or below, and no import cycle exists anywhere."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "recommender"

# Lowest first: each layer's stage packages. A new module joins a package here, or the test names it.
LAYERS: list[tuple[str, set[str]]] = [
    ("base", {"recommender", "base", "base.*"}),
    ("sources, store, model", {"sources", "sources.*", "store", "store.*", "model", "model.*"}),
    ("digest", {"digest", "digest.*"}),
    ("delivery, feedback", {"delivery", "delivery.*", "feedback", "feedback.*"}),
    ("pipeline", {"pipeline", "pipeline.*"}),
    ("app", {"app", "app.*", "__main__"}),
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package's modules it imports (importing a.b.c runs a/__init__ and a/b/__init__)."""

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = module.split(".") if is_package else module.split(".")[:-1]
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                if not target.startswith("recommender"):
                    continue
                found = known(target)
                if found is None or found == module:
                    continue
                edges[module].add(found)
                parts = found.split(".")
                for i in range(1, len(parts)):
                    parent = ".".join(parts[:i])
                    if parent != module and not module.startswith(parent + "."):
                        edges[module].add(parent)
    return edges


def _layer(module: str) -> int | None:
    short = module.removeprefix("recommender.") if module != "recommender" else "recommender"
    for number, (_, members) in enumerate(LAYERS):
        for member in members:
            if short == member or (member.endswith(".*") and short.startswith(member[:-1])):
                return number
    return None


# The package root names the public API (``from recommender import Recommender``) inside its
# PEP 562 ``__getattr__``, so ``import recommender`` stays light: the one upward import, declared here.
LAZY_EXPORTS = {("recommender", "recommender.pipeline.api"), ("recommender", "recommender.pipeline")}

MODULES = _modules()
EDGES = _imports(MODULES)
for _importer, _imported in LAZY_EXPORTS:
    EDGES[_importer].discard(_imported)


def test_every_module_has_a_layer():
    assert [m for m in sorted(MODULES) if _layer(m) is None] == []


def test_imports_point_down_or_sideways_never_up():
    upward = [f"{a} ({LAYERS[_layer(a)][0]}) imports {b} ({LAYERS[_layer(b)][0]})"
              for a in sorted(EDGES) for b in sorted(EDGES[a])
              if _layer(a) is not None and _layer(b) is not None and _layer(b) > _layer(a)]
    assert upward == []


def _stage(module: str) -> str:
    """The stage package a module belongs to (``recommender.model.tfidf`` -> ``model``)."""
    parts = module.split(".")
    return "app" if parts[-1] == "__main__" else parts[1] if len(parts) > 1 else parts[0]


def test_stages_of_one_layer_are_independent():
    """sources, store and model know nothing of each other, nor do delivery and feedback:
    parsers return records, the store keeps rows, the model takes arrays and records."""
    across = [f"{a} imports {b}" for a in sorted(EDGES) for b in sorted(EDGES[a])
              if _layer(a) is not None and _layer(a) == _layer(b) and _layer(a) > 0 and _stage(a) != _stage(b)]
    assert across == []


SHELL_WAYS_IN = {"recommender.pipeline.api", "recommender.pipeline.api_results"}


def test_the_shells_call_the_api_and_base_only():
    """Commands, the daemon and the warm process reach every stage through the install's
    Python API (``recommender.pipeline.api``, its results in ``api_results``), nothing else
    of the pipeline and no stage below it: a use case is written once, in the API."""
    reaching = [f"{a} imports {b}" for a in sorted(EDGES) for b in sorted(EDGES[a])
                if _stage(a) == "app" and _stage(b) not in {"recommender", "base", "app"} and b not in SHELL_WAYS_IN
                and b != "recommender.pipeline"]
    assert reaching == []


def test_the_shells_import_no_pipeline_module_but_the_api():
    """``from recommender import pipeline`` in a shell would reach every use case past the API."""
    parsed = {a: ast.parse(MODULES[a].read_text(encoding="utf-8")) for a in MODULES if _stage(a) == "app"}
    direct = sorted(f"{a} imports {alias.name}" for a, tree in parsed.items() for n in ast.walk(tree)
                    if isinstance(n, ast.ImportFrom) and n.module in ("recommender", "recommender.pipeline")
                    for alias in n.names if alias.name not in ("__version__",))
    assert direct == []


def test_the_root_imports_the_api_only_on_first_use():
    """The declared exception: ``recommender/__init__.py`` imports ``pipeline.api`` inside
    ``__getattr__`` (and for type checkers), never when the package is imported."""
    tree = ast.parse(MODULES["recommender"].read_text(encoding="utf-8"))
    lazy = [f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "__getattr__"]
    at_top = [n for n in tree.body if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("recommender.pipeline")]
    assert lazy and at_top == []
    inside = {n.module for n in ast.walk(lazy[0]) if isinstance(n, ast.ImportFrom)}
    assert inside == {"recommender.pipeline.api"}


def test_the_shells_reach_the_pipeline_through_the_api():
    """The commands' shared context, the daemon and the warm process open the API."""
    shells = {a for a in EDGES if _stage(a) == "app" and "recommender.pipeline.api" in EDGES[a]}
    assert {"recommender.app.cli.app", "recommender.app.daemon", "recommender.app.warm_server"} <= shells


def test_no_module_is_in_an_import_cycle():
    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in EDGES[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    assert sorted(m for m in MODULES if m in reach(m)) == []


@pytest.mark.parametrize("source, expected", [
    ("def f():\n    from recommender.app.cli import app\n", {"recommender.app.cli.app", "recommender.app.cli"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from recommender.feedback import web\n",
     {"recommender.feedback.web", "recommender.feedback"}),
])
def test_imports_inside_functions_and_type_checking_count(tmp_path: Path, source: str, expected: set[str]):
    """The reader sees deferred imports: a cycle closed inside a function is still a cycle."""
    modules = dict(MODULES, **{"recommender.probe": tmp_path / "probe.py"})
    (tmp_path / "probe.py").write_text(source, encoding="utf-8")
    assert expected <= _imports(modules)["recommender.probe"]


def test_the_web_app_parses_and_renders_only():
    """``feedback.web`` is HTTP in and pages out: what a link does is the ``Site`` it is given
    (``pipeline.web_site``), so it opens no store and loads no config."""
    reaching = sorted(b for b in EDGES["recommender.feedback.web"] if _stage(b) == "store")
    assert reaching == []
    assert "recommender.pipeline.web_site" in EDGES["recommender.pipeline.api_service"] | EDGES["recommender.pipeline.serving"]
