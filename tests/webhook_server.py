"""A real HTTP server on loopback standing in for Slack, Discord or any JSON webhook: it keeps
each request body it accepts and answers as a test tells it (a script of status codes, with
headers such as Retry-After, then 200 or 204)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a slow endpoint, a timeout)


@dataclass
class Hook:
    accepted: list[Any] = field(default_factory=list)  # the JSON bodies answered 2xx
    requests: list[tuple[float, str, Any]] = field(default_factory=list)  # (monotonic time, path, body) of each
    script: list[Answer] = field(default_factory=list)  # answers to give first, in order
    ok: Answer = field(default_factory=lambda: Answer(204))
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Event = field(default_factory=threading.Event)  # set on each request


class WebhookServer:
    def __init__(self) -> None:
        self.hook = Hook()
        hook = self.hook

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  # the http.server name
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length)
                body = json.loads(raw) if self.headers.get("content-type", "").startswith("application/json") else raw
                with hook.lock:
                    hook.requests.append((time.monotonic(), self.path, body))
                    answer = hook.script.pop(0) if hook.script else hook.ok
                    if 200 <= answer.status < 300:
                        hook.accepted.append(body)
                hook.arrived.set()
                if answer.delay:
                    time.sleep(answer.delay)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                data = answer.body.encode()
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> WebhookServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
