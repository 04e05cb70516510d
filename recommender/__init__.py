"""recommender: emails each subscriber the few new research papers they will want to read.

``from recommender import Recommender`` gives the Python API (docs/API.md). It is imported on
first use: the `recommender` command forwards to a warm process, or starts, without loading
the models' libraries that the API needs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from recommender.base.errors import RecommenderError
from recommender.base.version import __version__

if TYPE_CHECKING:
    from recommender.pipeline.api import Recommender

__all__ = ["Recommender", "RecommenderError", "__version__"]


def __getattr__(name: str) -> object:
    if name == "Recommender":
        from recommender.pipeline.api import Recommender

        return Recommender
    raise AttributeError(f"module 'recommender' has no attribute {name!r}")
