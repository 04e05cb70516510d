"""Helpers for benchmarks that run the real `recommender` command in a temporary project."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

SECRET = "bench-secret-0123456789abcdef"


def recommender(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("recommender")), *args]


def environment() -> dict[str, str]:
    return dict(os.environ, RECOMMENDER_SECRET=SECRET)


def timed(args: list[str], cwd: Path, stdout: int | None = subprocess.DEVNULL) -> tuple[float, float]:
    """Run a command; returns (seconds, peak RSS of the children in MB so far)."""
    started = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=environment(), check=True, stdout=stdout, stderr=subprocess.PIPE)
    return time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def write_config(folder: Path, users: list[str], extra: str = "") -> Path:
    path = folder / "config.toml"
    lines = [extra]
    for email in users:
        lines.append(f'[[users]]\nemail = "{email}"\nmax_items = 20\n')
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
