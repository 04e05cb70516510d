"""The command line: thin commands that load the config, call one core function, report."""

from recommender.cli import core_commands, paper_commands, star_commands  # noqa: F401  (registers commands)
from recommender.cli.app import cli, main

__all__ = ["cli", "main"]
