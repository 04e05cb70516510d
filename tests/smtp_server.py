"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Mailbox:
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    peers: list[tuple[str, int]] = field(default_factory=list)  # the client's address of each message: its connection
    raw: list[bytes] = field(default_factory=list)  # each message as received
    mail_options: list[list[str]] = field(default_factory=list)  # each message's MAIL FROM parameters
    eight_bit_mime: bool = True  # offer 8BITMIME in the EHLO reply
    ehlo: bool = True  # False: refuse EHLO (an old server that knows only HELO)
    rcpt_reply: str | None = None  # e.g. "550 5.1.1 no such user" to refuse every recipient
    rcpt_replies: dict[str, str] = field(default_factory=dict)  # recipient -> reply, to refuse chosen ones
    drop_data: int = 0  # drop the connection in the middle of this many DATA transfers
    auth_sessions: set[int] = field(default_factory=set)  # connections that tried to log in
    data_reply: str | None = None
    data_seconds: float = 0.0  # how long the server takes to accept each message
    lock: threading.Lock = field(default_factory=threading.Lock)

    def message_ids(self) -> list[str]:
        with self.lock:
            return [str(m["Message-ID"]) for m in self.messages]

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if address in str(m["To"])]


class _Handler:
    def __init__(self, box: Mailbox):
        self.box = box

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802, ANN001 - aiosmtpd hook
        if not self.box.ehlo:
            return ["502 5.5.1 EHLO not implemented"]
        session.host_name = hostname
        return [r for r in responses if self.box.eight_bit_mime or "8BITMIME" not in r]

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd hook
        if self.box.rcpt_reply:
            return self.box.rcpt_reply
        if address in self.box.rcpt_replies:
            return self.box.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
        if self.box.data_reply:
            return self.box.data_reply
        with self.box.lock:
            drop, self.box.drop_data = self.box.drop_data > 0, max(0, self.box.drop_data - 1)
        if drop:  # the message has arrived, but no reply will: the client cannot know it was taken
            server.transport.close()
            return "421 4.3.0 closing"
        if self.box.data_seconds:
            await asyncio.sleep(self.box.data_seconds)
        parsed = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        with self.box.lock:
            self.box.messages.append(parsed)  # type: ignore[arg-type]
            self.box.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.box.peers.append(tuple(session.peer))
            self.box.raw.append(envelope.original_content or envelope.content)
            self.box.mail_options.append(list(envelope.mail_options))
        return "250 2.0.0 queued as test"


class _Refusing:
    """An aiosmtpd authenticator that notes which connections tried to log in and accepts only
    ``password``."""

    def __init__(self, box: Mailbox, password: str | None = None):
        self.box, self.password = box, password

    def __call__(self, server, session, envelope, mechanism, auth_data):  # noqa: ANN001 - aiosmtpd hook
        from aiosmtpd.smtp import AuthResult

        with self.box.lock:
            self.box.auth_sessions.add(id(session))
        ok = self.password is not None and getattr(auth_data, "password", b"") == self.password.encode()
        return AuthResult(success=ok, handled=False)


class SmtpServer:
    """``smtputf8``: offer SMTPUTF8 (RFC 6531), as aiosmtpd does not by default; ``password``:
    require AUTH (over plain text, as a relay on loopback may) and accept only this password."""

    def __init__(self, port: int | None = None, smtputf8: bool = False, password: str | None = None):
        self.port = port or free_port()
        self.box = Mailbox()
        self.smtputf8 = smtputf8
        self.password = password
        self._controller: Controller | None = None

    def start(self) -> SmtpServer:
        options: dict[str, object] = {"enable_SMTPUTF8": self.smtputf8}
        if self.password is not None:
            options.update(authenticator=_Refusing(self.box, self.password), auth_required=True,
                           auth_require_tls=False)
        self._controller = Controller(_Handler(self.box), hostname="127.0.0.1", port=self.port, **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
