"""The command line: thin commands that load the config, call one core function, report."""

from recommender.cli import (  # noqa: F401  (importing registers the commands)
    core_commands,
    daemon_commands,
    digest_commands,
    paper_commands,
    star_commands,
    user_commands,
)
from recommender.cli.app import cli, main

__all__ = ["cli", "main"]
