"""Files shipped inside the package (templates, migrations), found through importlib.resources.

A wheel carries them inside the package (pyproject's force-include); an editable install or
a checkout has them at the top of the repository, beside the package, so they are looked for
there when the package holds none."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[2]


def package_file(*parts: str) -> Traversable:
    inside = resources.files("recommender").joinpath(*parts)
    if inside.is_dir() or inside.is_file():
        return inside
    return _CHECKOUT.joinpath(*parts)


def migrations_dir() -> Traversable:
    return package_file("db", "migrations")


def templates_dir() -> Traversable:
    return package_file("templates")
