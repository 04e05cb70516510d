"""Files shipped inside the package (templates, migrations), found through importlib.resources."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable


def package_file(*parts: str) -> Traversable:
    return resources.files("recommender").joinpath(*parts)


def migrations_dir() -> Traversable:
    return package_file("db", "migrations")


def templates_dir() -> Traversable:
    return package_file("templates")
