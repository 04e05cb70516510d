"""Scale on PostgreSQL (`make bench-scale`, not part of `make bench`): N synthetic readers
(about 10 stars each, 2,500 old and 500 new papers) on a PostgreSQL database of their own,
and one day's digests, timed in three phases, then as a whole:

  enqueue      the daemon's tick: every reader due at once, enqueued with one statement
  rank+render  `worker` processes claiming shards of due readers (1, then 2 processes)
  send         `worker --once` processes draining the outbox into a local SMTP sink
  end to end   the day as deployed: the tick, then `worker` processes that build and send, from
               the due moment to the last digest handed to the sink ($SCALE_E2E_WORKERS, 2)

Printed per phase: digests/s per worker, worker CPU seconds per digest, PostgreSQL CPU
seconds per digest (read from /proc of the backends serving this database), peak memory per
process; then database bytes per reader for the day, the refit (`ingest` of a new batch after
1% of the readers starred a paper: time and peak memory; at the smallest size beside every
profile rebuilt, the path before), and the projection to 1,000,000 readers with four 2-core workers. Baseline in the same run: today's single-process path
(`digest send`, direct delivery) at the smallest N, and the daemon's per-reader
housekeeping of before (a read of the whole users table and two round trips per reader)
timed on the same database.

    python bench/scale.py [N ...]        (default 10000 50000; PostgreSQL at $RECOMMENDER_BENCH_PG_URL;
                                          $SCALE_WORKERS: the worker counts, "1 2")
    python bench/scale.py wide-claim N   (only `digest send`'s claim at N readers, beside the path before)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import synthetic  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402
from commands import environment, recommender  # noqa: E402
from digest_run import Sink, free_port  # noqa: E402

SERVER = os.environ.get("RECOMMENDER_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/wt_scale_bench")
TICKS = os.sysconf("SC_CLK_TCK")
WORKER_CORES, WORKERS_1M, READERS_1M = 2, 4, 1_000_000
WORKER_COUNTS = [int(n) for n in os.environ.get("SCALE_WORKERS", "1 2").split()]  # worker processes per phase
E2E_WORKERS = int(os.environ.get("SCALE_E2E_WORKERS", "2"))  # `worker` processes of the end-to-end day
TODAY_UP_TO = 20_000
REFIT_PAPERS, REFIT_CHANGED = 100, 0.01  # the refit: an ingest of 100 new papers after 1% of the readers starred one  # today's single-process path is timed at the smallest size, if at most this

# Runs a command and reports its own CPU seconds and peak RSS (a fresh parent per process).
_MEASURE = ("import resource, subprocess, sys\n"
            "code = subprocess.run(sys.argv[1:]).returncode\n"
            "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
            "sys.stderr.write(f'\\n@measured {usage.ru_utime + usage.ru_stime} {usage.ru_maxrss}\\n')\n"
            "sys.exit(code)\n")


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def fresh_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(_dsn(url.rsplit("/", 1)[0] + "/postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


class BackendCpu:
    """CPU seconds of the PostgreSQL backends serving one database, sampled from /proc while a
    phase runs (the server is shared: other databases' backends do not count)."""

    def __init__(self, url: str):
        import psycopg

        self.conn = psycopg.connect(_dsn(url), autocommit=True)
        self.name = url.rsplit("/", 1)[1]
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def _cpu(pid: int) -> float | None:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / TICKS

    def _pids(self) -> list[int]:
        own = self.conn.info.backend_pid
        rows = self.conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.name,)).fetchall()
        return [pid for (pid,) in rows if pid != own]

    def _sample(self) -> None:
        while True:
            for pid in self._pids():
                cpu = self._cpu(pid)
                if cpu is not None:
                    self.first.setdefault(pid, cpu)
                    self.last[pid] = cpu
            if self.done.wait(0.25):
                return

    def __enter__(self) -> BackendCpu:
        for pid in self._pids():  # what backends alive at the start had used before does not count
            cpu = self._cpu(pid)
            if cpu is not None:
                self.first[pid] = self.last[pid] = cpu
        self.new_from = set(self.first)
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.done.set()
        self.thread.join()
        self.conn.close()

    @property
    def seconds(self) -> float:
        # A backend first seen mid-phase started in it: all of its CPU counts.
        return sum(self.last[pid] - (self.first[pid] if pid in self.new_from else 0.0) for pid in self.last)


def processes(commands: list[list[str]], cwd: Path) -> tuple[float, float, float]:
    """Run these commands at once; returns (wall seconds, their CPU seconds, largest peak RSS in MB)."""
    started = time.perf_counter()
    running = [subprocess.Popen([sys.executable, "-c", _MEASURE, *c], cwd=cwd, env=environment(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in commands]
    cpu, peak = 0.0, 0.0
    for process in running:
        _out, err = process.communicate()
        if process.returncode:
            raise SystemExit(f"{commands[0]} failed:\n{err[-3000:]}")
        seconds, peak_kb = err.rsplit("@measured ", 1)[1].split()
        cpu += float(seconds)
        peak = max(peak, float(peak_kb) / 1024)
    return time.perf_counter() - started, cpu, peak


def build_worker(config_path: str, shard: str) -> None:
    """One rank+render worker process: build shards of due readers until none is left."""
    from recommender.base.config import load_config
    from recommender.pipeline.shards import ShardBuilder
    from recommender.store import Store

    config = load_config(Path(config_path), readers=False)  # as `worker`: each shard's readers from the database
    store = Store.open(config.database.url)
    ShardBuilder(config, store, lambda: datetime.now(UTC), int(shard)).build_all(threading.Event())
    store.close()


def setup(readers: int, folder: Path, url: str, port: int) -> tuple[Path, dict[str, int]]:
    from sqlalchemy import insert

    from recommender.base.config import load_config
    from recommender.store import Store
    from recommender.store.schema import StarRow

    fresh_database(url)
    data = synthetic.corpus(3_000 + 2 * REFIT_PAPERS, seed=5)
    old, new = folder / "old.jsonl", folder / "new.jsonl"
    synthetic.write_jsonl(data, old, range(2_500))
    synthetic.write_jsonl(data, new, range(2_500, 3_000))
    for n in range(2):  # the batches whose ingest refits (see refit)
        start = 3_000 + n * REFIT_PAPERS
        synthetic.write_jsonl(data, folder / f"refit{n}.jsonl", range(start, start + REFIT_PAPERS))
    lines = [f'[database]\nurl = "{url}"\n[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
             'max_connections = 8\n[ranking]\ncollaborative_min_users = 1000000\n[delivery]\nmode = "queue"\n']
    lines += [f'[[users]]\nemail = "u{i}@example.org"\ntimezone = "UTC"\nsend_at = "07:00"\nmax_items = 10\n'
              for i in range(readers)]
    config_path = folder / "config.toml"
    config_path.write_text("\n".join(lines), encoding="utf-8")
    for args in (("init",), ("ingest", str(old)), ("ingest", str(new))):
        subprocess.run(recommender("--config", str(config_path), *args), cwd=folder, env=environment(), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = load_config(config_path)
    store = Store.open(config.database.url)
    ids = store.sync_users(u.email for u in config.users)
    libraries = synthetic.user_libraries(data, readers, np.arange(2_500))
    now = datetime.now(UTC)
    rows = [{"user_id": ids[f"u{u}@example.org"], "paper_id": data.ids[p], "origin": "import", "created_at": now}
            for u, library in enumerate(libraries) for p in library[:10]]
    with store.write() as conn:
        for start in range(0, len(rows), 20_000):
            conn.execute(insert(StarRow), rows[start:start + 20_000])
    store.close()
    return config_path, ids


def enqueue(config_path: Path, before: bool = True, day_after: int = 1) -> tuple[float, float, float, int]:
    """(seconds of the first sync of every schedule, seconds of the tick that enqueues them
    all, seconds of before's per-reader housekeeping measured on 200 readers and scaled
    (with ``before``), readers enqueued); the readers are due at 07:00 ``day_after`` days from now."""
    from recommender.app.daemon import Daemon
    from recommender.store.state import DaemonState

    day = datetime.now(UTC).date() + timedelta(days=day_after)  # `init` scheduled everyone for 07:00 from now on
    daemon = Daemon(config_path, clock=lambda: datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=6))
    started = time.perf_counter()
    daemon.schedule_jobs()
    synced = time.perf_counter() - started
    daemon.clock = lambda: datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=7, seconds=5)
    started = time.perf_counter()
    enqueued = daemon.tick()
    ticked = time.perf_counter() - started
    # Before: after each run, every reader's id was found by reading the whole users table,
    # then their last run read and written (two round trips).
    if not before:
        daemon.stop()
        return synced, ticked, 0.0, enqueued
    state, store = DaemonState(daemon.api.store), daemon.api.store
    sample = list(daemon.by_email)[:200]
    started = time.perf_counter()
    for email in sample:
        with store.read() as conn:
            from sqlalchemy import select

            from recommender.store.schema import UserRow
            user_id = {r.email: r.id for r in conn.execute(select(UserRow.email, UserRow.id))}[email]
        state.set_last_run(user_id, state.last_run(user_id) or datetime.now(UTC))
    before = (time.perf_counter() - started) / len(sample) * len(daemon.by_email)
    daemon.stop()
    return synced, ticked, before, enqueued


def reset_day(url: str, ids: dict[str, int]) -> None:
    """Forget the day's digests and profiles, and owe every reader a run again."""
    from sqlalchemy import text

    from recommender.store import Store
    from recommender.store.schedule import ReaderSchedule

    store = Store.open(url)
    with store.write() as conn:
        # (TRUNCATE, not DELETE: no dead rows left for the next phase to read past; this
        # machine's PostgreSQL runs without autovacuum)
        conn.execute(text("TRUNCATE digests, profiles CASCADE"))
    ReaderSchedule(store).run_now(sorted(ids.values()), datetime.now(UTC), {})
    store.close()


def end_to_end(config_path: Path, url: str, readers: int, workers: int, sink: Sink) -> dict[str, float]:
    """The day as it runs: every reader due at once (the daemon's tick), then ``workers``
    `worker` processes that each build shards and send (as deployed); timed from the tick to
    the last worker's exit, when every digest was handed to the sink. The profiles are those
    the earlier phases stored, as a refit leaves them."""
    import psycopg

    with psycopg.connect(_dsn(url), autocommit=True) as conn:
        conn.execute("TRUNCATE digests, due_readers CASCADE")  # (as in reset_day)
    sent_before = sink.count
    started = time.perf_counter()
    with BackendCpu(url) as pg:
        _sync, _tick, _before, enqueued = enqueue(config_path, before=False, day_after=2)
        assert enqueued == readers, (enqueued, readers)
        _wall, cpu, peak = processes([recommender("--config", str(config_path), "worker", "--once",
                                                  "--concurrency", "8")] * workers, config_path.parent)
    wall = time.perf_counter() - started
    assert sink.count - sent_before == readers, (sink.count - sent_before, readers)
    return {"e2e_wall": wall, "e2e_cpu": cpu / readers, "e2e_pg": pg.seconds / readers, "e2e_peak": peak,
            "e2e_workers": workers}


def refit(config_path: Path, folder: Path, url: str, ids: dict[str, int], before: bool) -> dict[str, float]:
    """`ingest` of a new batch after 1% of the readers starred a paper (the profiles of the
    others are current: the day's digests stored them); with ``before``, as the baseline of the
    path before (every profile rebuilt at every ingest), the same after marking every profile stale."""
    from sqlalchemy import text

    from recommender.store import Store

    store = Store.open(url)
    changed = sorted(ids.values())[::round(1 / REFIT_CHANGED)]
    with store.write() as conn:
        paper = conn.execute(text("SELECT id FROM papers ORDER BY id LIMIT 1")).scalar_one()
        conn.execute(text("INSERT INTO stars (user_id, paper_id, origin, created_at) VALUES (:u, :p, 'cli', now()) "
                          "ON CONFLICT DO NOTHING"), [{"u": uid, "p": paper} for uid in changed])
    figures: dict[str, float] = {}
    for n, name in enumerate(("refit", "refit_all")[:2 if before else 1]):
        if name == "refit_all":
            with store.write() as conn:
                conn.execute(text("UPDATE profiles SET signal_generation = NULL"))
        with BackendCpu(url) as pg:
            wall, cpu, peak = processes([recommender("--config", str(config_path), "ingest",
                                                     str(folder / f"refit{n}.jsonl"))], folder)
        figures.update({f"{name}_wall": wall, f"{name}_cpu": cpu, f"{name}_pg": pg.seconds, f"{name}_peak": peak})
    store.close()
    return figures


def database_bytes(url: str) -> int:
    import psycopg

    with psycopg.connect(_dsn(url)) as conn:
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]


def table_bytes(url: str) -> dict[str, int]:
    """Each table's size with its indexes and TOAST."""
    import psycopg

    with psycopg.connect(_dsn(url)) as conn:
        return dict(conn.execute("SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relkind = 'r' "
                                 "AND relnamespace = 'public'::regnamespace").fetchall())


def measure(readers: int, port: int, sink: Sink, today: bool) -> dict[str, float]:
    figures: dict[str, float] = {"readers": readers}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        url = SERVER
        config_path, ids = setup(readers, folder, url, port)
        figures["sync"], figures["tick"], figures["before_housekeeping"], enqueued = enqueue(config_path)
        assert enqueued == readers, (enqueued, readers)
        print(f"  {readers:7d} readers: enqueue {figures['tick']:.2f} s (first sync of the schedules "
              f"{figures['sync']:.1f} s); before: per-reader housekeeping {figures['before_housekeeping']:.0f} s",
              flush=True)
        for workers in WORKER_COUNTS:
            if workers != WORKER_COUNTS[0]:
                reset_day(url, ids)
            size_before, tables_before = database_bytes(url), table_bytes(url)
            build = [[sys.executable, str(Path(__file__).resolve()), "build-worker", str(config_path), "1000"]]
            with BackendCpu(url) as pg_build:
                wall, cpu, peak = processes(build * workers, folder)
            figures[f"build_rate_{workers}"] = readers / wall / workers
            figures[f"build_cpu_{workers}"] = cpu / readers
            figures[f"build_pg_{workers}"] = pg_build.seconds / readers
            figures[f"build_peak_{workers}"] = peak
            sent_before = sink.count
            send = [recommender("--config", str(config_path), "worker", "--once", "--concurrency", "8")]
            with BackendCpu(url) as pg_send:
                swall, scpu, speak = processes(send * workers, folder)
            assert sink.count - sent_before == readers, (sink.count - sent_before, readers)
            figures[f"send_rate_{workers}"] = readers / swall / workers
            figures[f"send_cpu_{workers}"] = scpu / readers
            figures[f"send_pg_{workers}"] = pg_send.seconds / readers
            figures[f"send_peak_{workers}"] = speak
            if workers == WORKER_COUNTS[0]:
                figures["bytes_per_reader_day"] = (database_bytes(url) - size_before) / readers
                grown = {name: size - tables_before.get(name, 0) for name, size in table_bytes(url).items()}
                print("    growth per reader by table: " + ", ".join(
                    f"{name} {size / readers / 1024:.2f} KB" for name, size in
                    sorted(grown.items(), key=lambda item: -item[1]) if size > 0), flush=True)
                # Profiles are per-reader state (built once here: the stars were inserted directly;
                # rewritten in place at a refit), not a day's digests.
                figures["digest_bytes_per_reader_day"] = sum(
                    size for name, size in grown.items() if name != "profiles" and size > 0) / readers
            print(f"    {workers} worker(s): rank+render {figures[f'build_rate_{workers}']:6.0f} digests/s per worker, "
                  f"CPU {figures[f'build_cpu_{workers}'] * 1000:5.1f} ms + PostgreSQL "
                  f"{figures[f'build_pg_{workers}'] * 1000:4.1f} ms a digest, peak {peak:5.0f} MB; "
                  f"send {figures[f'send_rate_{workers}']:6.0f}/s per worker, CPU {figures[f'send_cpu_{workers}'] * 1000:5.1f} ms"
                  f" + PostgreSQL {figures[f'send_pg_{workers}'] * 1000:4.1f} ms, peak {speak:5.0f} MB", flush=True)
        print(f"    database growth {figures['bytes_per_reader_day'] / 1024:.1f} KB per reader for the day; "
              f"without the profiles (per-reader state, written once) {figures['digest_bytes_per_reader_day'] / 1024:.1f}"
              " KB", flush=True)
        figures.update(end_to_end(config_path, url, readers, E2E_WORKERS, sink))
        print(f"    the day end to end with {E2E_WORKERS} `worker` process(es) building and sending: due moment to the "
              f"last digest handed to the sink {figures['e2e_wall'] / 60:.1f} min ({readers / figures['e2e_wall']:.0f}"
              f" digests/s); CPU {figures['e2e_cpu'] * 1000:.1f} ms + PostgreSQL {figures['e2e_pg'] * 1000:.1f} ms a "
              f"digest, peak {figures['e2e_peak']:.0f} MB", flush=True)
        figures.update(refit(config_path, folder, url, ids, before=today))
        print(f"    refit (`ingest` of {REFIT_PAPERS} papers after {REFIT_CHANGED:.0%} of the readers starred one): "
              f"{figures['refit_wall']:.1f} s, CPU {figures['refit_cpu']:.1f} s + PostgreSQL {figures['refit_pg']:.1f} s, "
              f"peak {figures['refit_peak']:.0f} MB" + ("; every profile rebuilt (the path before): "
              f"{figures['refit_all_wall']:.1f} s, CPU {figures['refit_all_cpu']:.1f} s + PostgreSQL "
              f"{figures['refit_all_pg']:.1f} s, peak {figures['refit_all_peak']:.0f} MB" if today else ""), flush=True)
        if today:
            reset_day(url, ids)
            text = config_path.read_text().replace('mode = "queue"', 'mode = "direct"')
            config_path.write_text(text)
            with BackendCpu(url) as pg_today:
                wall, cpu, peak = processes([recommender("--config", str(config_path), "digest", "send")], folder)
            figures["today_rate"] = readers / wall
            figures["today_pg"] = pg_today.seconds / readers
            print(f"    today's single-process path (`digest send`): {figures['today_rate']:.0f} digests/s, PostgreSQL "
                  f"{figures['today_pg'] * 1000:.1f} ms a digest, peak {peak:.0f} MB", flush=True)
    return figures


def project(figures: list[dict[str, float]]) -> None:
    largest = figures[-1]
    per_digest = largest["build_cpu_1"] + largest["send_cpu_1"]
    pg = largest["build_pg_1"] + largest["send_pg_1"]
    worker_minutes = READERS_1M * per_digest / (WORKERS_1M * WORKER_CORES) / 60
    tick_minutes = largest["tick"] / largest["readers"] * READERS_1M / 60
    print(f"  projection to {READERS_1M:,} readers with {WORKERS_1M} {WORKER_CORES}-core workers: "
          f"{tick_minutes:.1f} min to enqueue + {worker_minutes:.1f} min of workers' CPU spread over "
          f"{WORKERS_1M * WORKER_CORES} cores = {tick_minutes + worker_minutes:.1f} min (target 30); PostgreSQL "
          f"{READERS_1M * pg / 60:.0f} CPU minutes ({READERS_1M * pg / 60 / 4:.0f} min on 4 cores); "
          f"before: {largest['before_housekeeping'] / largest['readers'] * READERS_1M / 3600:.0f} h of housekeeping")
    if len(figures) > 1:
        first = figures[0]
        for key in ("build_cpu_1", "send_cpu_1", "build_pg_1", "send_pg_1", "build_peak_1", "send_peak_1",
                    "refit_peak", "refit_wall"):
            print(f"  {key}: x{largest[key] / first[key]:.2f} from {first['readers']:.0f} to "
                  f"{largest['readers']:.0f} readers")


def wide_claim(readers: int) -> None:
    """`digest send`'s claim for more readers than a statement may carry parameters (65,535 on
    PostgreSQL): ``readers`` pending digests, claimed by the run's registered readers, and the
    same claim listing every id (the path before) in the same run."""
    from recommender.store import Store
    from recommender.store.outbox import DigestToCreate, NewDigest, Outbox
    from recommender.store.run_readers import RunReaders

    url = SERVER + "_claim"
    fresh_database(url)
    store = Store.open(url)
    store.upgrade_schema()
    ids = sorted(store.sync_users(f"u{i}@example.org" for i in range(readers)).values())
    outbox = Outbox(store)
    for start in range(0, readers, 5_000):
        outbox.create_many([DigestToCreate(uid, 1, [], lambda digest_id, uid=uid: NewDigest(
            "s", f"<{digest_id}.{uid}@example.org>", b"Subject: s\r\n\r\nbody")) for uid in ids[start:start + 5_000]])
    with store.write() as conn:  # as autovacuum would have by the time of a run
        from sqlalchemy import text
        conn.execute(text("ANALYZE"))
    started = time.perf_counter()
    with RunReaders(store, ids) as run_readers:
        registered = time.perf_counter() - started
        started = time.perf_counter()
        claimed = outbox.claim("bench:1:x", timedelta(minutes=5), limit=100, user_ids=run_readers)
        claim_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        claimed += outbox.claim("bench:1:x", timedelta(minutes=5), limit=100, user_ids=run_readers)
        again_ms = (time.perf_counter() - started) * 1000
    outbox.release([c[0] for c in claimed])
    try:
        outbox.claim("bench:1:y", timedelta(minutes=5), limit=100, user_ids=ids)
        before = "worked"
    except Exception as exc:  # noqa: BLE001 - the failure is the figure
        before = "fails: " + str(getattr(exc, "orig", exc)).splitlines()[0]
    store.close()
    print(f"  `digest send` claim at {readers:,} readers: registering the run's readers {registered:.2f} s, a claim of "
          f"100 digests {claim_ms:.1f} ms, the next 100 {again_ms:.1f} ms; before (every id in the statement): {before}", flush=True)


def main() -> int:
    if sys.argv[1:2] == ["wide-claim"]:
        wide_claim(int(sys.argv[2]))
        return 0
    sizes = [int(a) for a in sys.argv[1:]] or [10_000, 50_000]
    print(f"Scale on PostgreSQL ({SERVER.rsplit('@', 1)[1]}): enqueue, rank+render and send timed apart", flush=True)
    sink, port = Sink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        figures = [measure(n, port, sink, today=(i == 0 and n <= TODAY_UP_TO)) for i, n in enumerate(sizes)]
    finally:
        controller.stop()
    project(figures)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["build-worker"]:
        build_worker(*sys.argv[2:4])
        raise SystemExit(0)
    raise SystemExit(main())
