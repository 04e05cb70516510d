"""The `recommender` command's first step (see `__main__`): hand `recommend` to a running
`recommender warm` process when one serves this config.

Standard library only, since this runs at every start: a forwarded command skips importing
numpy, scipy and SQLAlchemy and loading the models (most of a one-user `recommend`'s time).
The command's stdout and stderr are passed to the warm process over a Unix socket (as
Mercurial's chg does), so its output goes straight where ours would have gone; only the exit
status comes back. Nothing here decides anything about the command: the warm process parses
and runs it with the same code as the full command line.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from recommender.base.env_names import CONFIG_ENV, DATABASE_URL_ENV, DEFAULT_CONFIG_NAME

WARM_COMMANDS = frozenset({"recommend"})
_VALUE_OPTIONS = {"--config": "config", "--database-url": "database_url"}
HANDSHAKE_SECONDS = 3.0  # how long a caller waits for a warm process to take its request


def warm_request(argv: Sequence[str], environ: Mapping[str, str], cwd: Path) -> dict[str, object] | None:
    """The request for a warm process, when ``argv`` is a command one can answer: global
    options among --config, --database-url and -v only, then a command of WARM_COMMANDS."""
    chosen: dict[str, str | None] = {"config": environ.get(CONFIG_ENV), "database_url": environ.get(DATABASE_URL_ENV)}
    verbose, at = 0, 0
    while at < len(argv):
        word = argv[at]
        name, has_value, value = word.partition("=")
        if name in _VALUE_OPTIONS:
            if not has_value:
                if at + 1 >= len(argv):
                    return None
                at, value = at + 1, argv[at + 1]
            chosen[_VALUE_OPTIONS[name]] = value
        elif word == "--verbose":
            verbose += 1
        elif word[:1] == "-" and set(word[1:]) == {"v"}:  # -v, -vv
            verbose += len(word) - 1
        elif word in WARM_COMMANDS:
            config = Path(chosen["config"] or DEFAULT_CONFIG_NAME).expanduser()
            config = config if config.is_absolute() else cwd / config
            if not config.is_file():
                return None  # the full command line reports it
            return {"config": str(config.resolve()), "database_url": chosen["database_url"] or None,
                    "verbose": min(verbose, 3), "command": list(argv[at:]), "cwd": str(cwd)}
        else:
            return None
        at += 1
    return None


def socket_folder(environ: Mapping[str, str], create: bool = False) -> Path | None:
    """Where warm processes listen: a folder only this user can enter, else None."""
    runtime = environ.get("XDG_RUNTIME_DIR")
    folder = (Path(runtime) / "recommender" if runtime
              else Path(environ.get("TMPDIR") or "/tmp") / f"recommender-{os.getuid()}")  # nosec B108  # checked below: ours, 0700
    try:
        if create:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.lstat()
    except OSError:
        return None
    private = stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077
    return folder if private else None


def socket_name(config: str, database_url: str | None) -> str:
    """One socket per config file and database override: a warm process answers for those only."""
    return hashlib.sha256(f"{config}\0{database_url or ''}".encode()).hexdigest()[:24] + ".sock"


def forwarded(argv: Sequence[str]) -> int | None:
    """Run ``argv`` in a warm process and return its exit status, or None when there is no
    warm process to ask (or the command is not one it answers): then run it here."""
    if not hasattr(socket, "send_fds"):
        return None
    request = warm_request(argv, os.environ, Path.cwd())
    folder = socket_folder(os.environ) if request is not None else None
    if request is None or folder is None:
        return None
    try:
        streams = [sys.stdout.fileno(), sys.stderr.fileno()]
    except (AttributeError, OSError, ValueError):
        return None
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with connection:
        # A warm process takes a request within seconds or not at all: one that is busy with a
        # stalled caller (or hung) is passed over for a cold run here. It runs a command only
        # once we answer its "+" with "!", so a command is never run by both.
        connection.settimeout(HANDSHAKE_SECONDS)
        try:
            database_url = request["database_url"]
            connection.connect(str(folder / socket_name(str(request["config"]),
                                                        database_url if isinstance(database_url, str) else None)))
            socket.send_fds(connection, [json.dumps(request).encode() + b"\n"], streams)
            if connection.recv(1) != b"+":
                return None
            connection.sendall(b"!")
        except OSError:
            return None  # none running, a socket left by one that was killed, or a silent one
        connection.settimeout(None)
        try:
            reply = b""
            while chunk := connection.recv(64):
                reply += chunk
        except KeyboardInterrupt:
            sys.stderr.write("Error: interrupted\n")
            return 130
        except OSError as exc:
            reply = str(exc).encode()
    try:
        return int(reply)
    except ValueError:
        sys.stderr.write("Error: the warm process stopped before answering; run the command again\n")
        return 1
