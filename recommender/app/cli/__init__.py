"""The command line: thin commands that load the config, call one core function, report."""

import os

# The commands spread their work over the cores themselves (a forked half, a thread per chunk
# of users), so BLAS's own threads only compete with them, and spin while they wait: one BLAS
# thread, unless the user chose otherwise. Set before numpy and scipy load their BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from recommender.app.cli import (  # noqa: E402, F401  (importing registers the commands)
    core_commands,
    daemon_commands,
    digest_commands,
    paper_commands,
    star_commands,
    user_commands,
)
from recommender.app.cli.app import cli, main  # noqa: E402

__all__ = ["cli", "main"]
