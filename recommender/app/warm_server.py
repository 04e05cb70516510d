"""`recommender warm`: a resident process that answers the command line's `recommend` with
everything a cold start pays for already done: numpy, scipy and SQLAlchemy imported, the
database open, the models mapped and the compiled kernels loaded.

It listens on a Unix socket that only its user can reach (see warm_client). Each request
brings the caller's stdout and stderr; the command runs here, one at a time, through the same
command line code as a cold start and writes straight to them. Nothing is answered from a
cache that could be stale: papers, stars and feedback are read afresh for every request, and
a model is reused only while its stored stamp is unchanged (a new ingest refits it).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import select
import signal
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TextIO, cast

from recommender.app.warm_client import WARM_COMMANDS, socket_folder, socket_name
from recommender.base.config import load_config
from recommender.base.errors import RecommenderError
from recommender.pipeline.api import Database, Recommender

log = logging.getLogger(__name__)

MAX_REQUEST = 1 << 20
PEER_SECONDS = 5.0  # a caller that sends or reads nothing for this long is dropped


class WarmServer:
    def __init__(self, config: Path, database_url: str | None, run_command: Callable[[list[str], dict[str, Database]], object]):
        # the command line's runner, passed in: the CLI sits above this module
        self.config, self.database_url, self.run_command = str(config), database_url, run_command
        folder = socket_folder(os.environ, create=True)
        if folder is None:
            raise RecommenderError("cannot make a private folder for the warm socket (set XDG_RUNTIME_DIR to one "
                                   "only you can enter)")
        self.path = folder / socket_name(self.config, database_url)
        self.kept_stores: dict[str, Database] = {}

    def serve(self, ready: Any = None) -> None:
        """Answer requests until SIGTERM or Ctrl-C. ``ready`` (a callable) is called once listening."""
        listener = self._listen()
        previous = signal.signal(signal.SIGTERM, _stop)
        try:
            self._warm_up()
            log.info("warm: answering `recommend` for %s on %s", self.config, self.path)
            if ready is not None:
                ready()
            while True:
                connection, _ = listener.accept()
                with connection:
                    self._answer(connection)
        except KeyboardInterrupt:
            log.info("warm: stopped")
        finally:
            signal.signal(signal.SIGTERM, previous)
            listener.close()
            with contextlib.suppress(OSError):
                self.path.unlink()
            for store in self.kept_stores.values():
                store.close()

    def _listen(self) -> socket.socket:
        if self.path.exists():
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            with probe:
                try:
                    probe.connect(str(self.path))
                except OSError:
                    self.path.unlink()  # left by a warm process that was killed
                else:
                    raise RecommenderError(f"a warm process already answers for {self.config} ({self.path})")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(self.path))
            os.chmod(self.path, 0o600)
            listener.listen(16)
        except OSError as exc:  # another warm process started at the same moment, say
            listener.close()
            raise RecommenderError(f"cannot listen on {self.path}: {exc.strerror or exc}") from None
        return listener

    def _warm_up(self) -> None:
        """Everything a first request would otherwise wait for: the store, its models and the
        compiled kernels (here even small jobs run compiled: the compiler is loaded already)."""
        started = time.perf_counter()
        Recommender.prepare_ranking()
        users = load_config(Path(self.config), self.database_url).users
        if users:
            with open(os.devnull, "w", encoding="utf-8") as sink, _command_output(sink, sink):
                self.run_command(self._argv(0, ["recommend", "--user", users[0].email]), self.kept_stores)
        log.info("warm: ready in %.1f s", time.perf_counter() - started)

    def _argv(self, verbose: int, command: list[str]) -> list[str]:
        argv = ["--config", self.config]
        if self.database_url:
            argv += ["--database-url", self.database_url]
        return argv + ["-v"] * verbose + command

    def _answer(self, connection: socket.socket) -> None:
        started = time.perf_counter()
        connection.settimeout(PEER_SECONDS)  # a silent or stalled caller is dropped within seconds
        try:
            request, streams = _receive(connection)
        except (OSError, ValueError, RecursionError) as exc:
            log.warning("warm: unreadable request: %s", exc)
            return
        try:
            connection.sendall(b"+")
            if connection.recv(1) != b"!":  # the caller gave up waiting and runs the command itself
                return
            code = self._run(request, streams)
        except OSError as exc:
            log.warning("warm: the caller went away: %s", exc)
            return
        finally:
            for fd in streams:
                with contextlib.suppress(OSError):
                    os.close(fd)
        with contextlib.suppress(OSError):  # the caller may have gone (Ctrl-C)
            connection.sendall(str(code).encode())
        command = request.get("command")
        name = command[0] if isinstance(command, list) and command and isinstance(command[0], str) else "?"
        log.info("warm: answered %s in %.0f ms (exit %s)", name[:40], 1000 * (time.perf_counter() - started), code)

    def _run(self, request: dict[str, Any], streams: list[int]) -> int:
        command, verbose, cwd = request.get("command"), request.get("verbose"), request.get("cwd")
        well_formed = (len(streams) == 2 and isinstance(command, list) and command
                       and all(isinstance(word, str) for word in command) and command[0] in WARM_COMMANDS
                       and isinstance(verbose, int) and 0 <= verbose <= 3 and isinstance(cwd, str)
                       and request.get("config") == self.config
                       and (request.get("database_url") or None) == self.database_url)
        if not well_formed:  # never from warm_client: the socket's name says what this process serves
            if len(streams) == 2:
                with contextlib.suppress(OSError):
                    _write_within(streams[1], "Error: the warm process refused a request it does not answer\n")
            return 2
        # The command writes into memory; its output then goes to the caller's streams with a
        # deadline, so a caller whose output nobody reads cannot hold this process.
        out, err = io.StringIO(), io.StringIO()
        home = os.getcwd()
        try:
            os.chdir(cast(str, cwd))  # (checked by well_formed above)
            with _command_output(out, err):
                code = self.run_command(self._argv(cast(int, verbose), cast(list[str], command)), self.kept_stores)
        except OSError:
            code = 1  # the caller's folder went away
        except Exception:  # a bug: reported as a cold start would report it, and we go on serving
            traceback.print_exc(file=err)
            code = 1
        finally:
            os.chdir(home)
        try:
            _write_within(streams[0], out.getvalue())
            _write_within(streams[1], err.getvalue())
        except OSError as exc:
            log.warning("warm: could not write the answer: %s", exc)
            return 1
        if code is None or isinstance(code, int):
            return code or 0
        with contextlib.suppress(OSError):
            _write_within(streams[1], f"{code}\n")  # a message in place of a status
        return 1


def _write_within(fd: int, text: str, seconds: float | None = None) -> None:
    """Write ``text`` to ``fd`` (a caller's terminal, pipe or file), giving up with
    ``TimeoutError`` when it takes no more for ``seconds``: each chunk is at most PIPE_BUF
    bytes and is written only once poll says it fits, so no write blocks."""
    data = memoryview(text.encode("utf-8"))
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    deadline = time.monotonic() + (PEER_SECONDS if seconds is None else seconds)
    while data:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            raise TimeoutError("the caller's output is not being read")
        data = data[os.write(fd, data[:select.PIPE_BUF]):]


def _receive(connection: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, streams, _, _ = socket.recv_fds(connection, MAX_REQUEST, 2)
    try:
        _check_peer(connection)
        while not data.endswith(b"\n"):
            chunk = connection.recv(65536)
            if not chunk:
                raise ValueError("request cut short")
            data += chunk
            if len(data) > MAX_REQUEST:
                raise ValueError("request too long")
        request = json.loads(data)
        if not isinstance(request, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, RecursionError):
        for fd in streams:
            os.close(fd)
        raise
    return request, list(streams)


def _check_peer(connection: socket.socket) -> None:
    """Only this user's processes: the socket's folder already ensures it; Linux lets us check."""
    if hasattr(socket, "SO_PEERCRED"):
        import struct

        _, uid, _ = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                              struct.calcsize("3i")))
        if uid != os.getuid():
            raise OSError(f"request from user {uid}")


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _command_output(out: TextIO, err: TextIO) -> Iterator[None]:
    """A command's output on these streams; afterwards our logging as it was (a command sets
    the root logger up on its own stderr)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield
    finally:
        root.handlers[:], root.level = handlers, level

