"""`make bench`: every benchmark, each printing its figures, its baseline measured in the same
run, and PASS/MISS per target. Exit status 0 only when every target passes."""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["quality.py", "throughput.py", "whole_command.py", "ingest.py", "digest_run.py", "feedback_endpoint.py",
              "latency.py"]


def main() -> int:
    print(f"recommender benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
          f"{platform.python_version()}, {__import__('os').cpu_count()} cores", flush=True)
    failed = []
    started = time.monotonic()
    for name in BENCHMARKS:
        print(f"\n=== {name}", flush=True)
        began = time.monotonic()
        code = subprocess.run([sys.executable, str(HERE / name)]).returncode
        print(f"  ({name} took {time.monotonic() - began:.0f} s)", flush=True)
        if code:
            failed.append(name)
    total = time.monotonic() - started
    print(f"\nall benchmarks in {total:.0f} s (target < 900 s: {'PASS' if total < 900 else 'MISS'}); "
          + ("every target PASS" if not failed else f"targets missed in: {', '.join(failed)}"))
    return 1 if failed or total >= 900 else 0


if __name__ == "__main__":
    raise SystemExit(main())
