"""Helpers for benchmarks that run the real `recommender` command in a temporary project."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

SECRET = "bench-secret-0123456789abcdef"


def recommender(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("recommender")), *args]


def environment() -> dict[str, str]:
    return dict(os.environ, RECOMMENDER_SECRET=SECRET)


# Runs one command and reports its own time and peak memory: a fresh parent per command, so
# the memory of earlier commands (setup runs) does not count.
_MEASURE = ("import resource, subprocess, sys, time\n"
            "started = time.perf_counter()\n"
            "code = subprocess.run(sys.argv[1:]).returncode\n"
            "seconds = time.perf_counter() - started\n"
            "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
            "sys.stderr.write(f'\\n@measured {seconds} {peak}\\n')\n"
            "sys.exit(code)\n")


def timed(args: list[str], cwd: Path, stdout: int | None = subprocess.DEVNULL) -> tuple[float, float]:
    """Run a command; returns (its seconds, its own peak RSS in MB)."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, *args], cwd=cwd, env=environment(), check=True,
                          stdout=stdout, stderr=subprocess.PIPE, text=True)
    seconds, peak_kb = done.stderr.rsplit("@measured ", 1)[1].split()
    return float(seconds), float(peak_kb) / 1024


def write_config(folder: Path, users: list[str], extra: str = "") -> Path:
    path = folder / "config.toml"
    lines = [extra]
    for email in users:
        lines.append(f'[[users]]\nemail = "{email}"\nmax_items = 20\n')
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def serving(config_path: Path, port: int, folder: Path) -> subprocess.Popen[bytes]:
    """`recommender serve` on 127.0.0.1:port, started and answering (or given up on after 30 s)."""
    import httpx

    server = subprocess.Popen(recommender("--config", str(config_path), "serve", "--port", str(port)), cwd=folder,
                              env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    return server
