"""Build the digest message and send stored messages over SMTP (aiosmtplib).

Transient failures (connection refused, timeouts, TLS trouble, 4xx replies) are retried
with exponential backoff (tenacity) a bounded number of times; 5xx replies are permanent.
Messages go out concurrently over at most ``smtp.max_connections`` connections, each
connection reused for several messages.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import logging
import re
import secrets
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes
from email.header import Header
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache

import aiosmtplib
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from recommender.config import SmtpConfig, UserConfig
from recommender.digest import RenderedDigest
from recommender.text import one_line

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 60.0
MAX_LINE_OCTETS = 998  # without the CRLF (RFC 5322 2.1.1)
PACKED_LINE_CHARS = 900  # the HTML part's lines are joined up to this length


@dataclass(frozen=True)
class Outgoing:
    digest_id: int
    recipient: str
    message: bytes


@dataclass(frozen=True)
class Outcome:
    digest_id: int
    status: str  # sent | failed | deferred
    detail: str
    attempts: int


def make_message_id(digest_id: int, user_id: int, sender: str) -> str:
    domain = parseaddr(sender)[1].rpartition("@")[2] or "recommender.local"
    return f"<digest.{digest_id}.{user_id}.{secrets.token_hex(6)}@{domain}>"


def build_message(smtp: SmtpConfig, user: UserConfig, rendered: RenderedDigest, message_id: str,
                  unsubscribe_url: str, unsubscribe_mailto: str, now: datetime) -> bytes:
    """multipart/alternative (text/plain, then text/html) with RFC 8058 one-click unsubscribe.

    Written out directly: the email package's header registry and generator took ~5 ms a
    message, most of a digest run. Same structure and encodings (7bit or quoted-printable parts,
    RFC 2047 for non-ASCII names and subjects, CRLF lines); an address that is not ASCII
    itself (SMTPUTF8) goes through the email package instead."""
    sender_name, sender_address = parseaddr(smtp.sender)
    if not (sender_address.isascii() and user.email.isascii()):
        return _build_with_email_package(smtp, user, rendered, message_id, unsubscribe_url, unsubscribe_mailto, now)
    targets = _unsubscribe_targets(unsubscribe_url, unsubscribe_mailto)
    boundary = f"=_{secrets.token_hex(16)}"  # quoted-printable never has "=_" (= takes two hex digits)
    headers = [
        f"From: {_address(one_line(sender_name), sender_address or smtp.sender)}",
        f"To: {_address(one_line(user.name), user.email)}",
        f"Subject: {_encoded(one_line(rendered.subject), 'Subject')}",
        f"Date: {format_datetime(now)}",
        f"Message-ID: {one_line(message_id)}",
        "List-Unsubscribe: " + ",\r\n ".join(one_line(t) for t in targets),
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        "Auto-Submitted: auto-generated",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
    ]
    text_encoding, text = _encoded_body(_crlf_lines(rendered.text))
    html_encoding, html = _encoded_body(_crlf_lines(_mail_html(rendered.html)))
    return b"".join([
        "\r\n".join(headers).encode("ascii"), b"\r\n\r\n",
        f"--{boundary}\r\n".encode(),
        f'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: {text_encoding}\r\n\r\n'.encode(),
        text, b"\r\n",  # the line break before a boundary belongs to the boundary (RFC 2046)
        f"--{boundary}\r\n".encode(),
        f'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: {html_encoding}\r\n\r\n'.encode(),
        html, b"\r\n",
        f"--{boundary}--\r\n".encode(),
    ])


def ascii_html(html: str) -> str:
    """The same document in ASCII: other characters as numeric character references, which
    mean the same in HTML text and attributes (our template puts none in <style>)."""
    return html if html.isascii() else html.encode("ascii", "xmlcharrefreplace").decode("ascii")


def _mail_html(html: str) -> str:
    """The HTML part as it is sent: ASCII, in long lines."""
    return packed_lines(ascii_html(html))


def packed_lines(html: str, width: int = PACKED_LINE_CHARS) -> str:
    """The document with consecutive lines joined by a space into lines of up to ``width``
    characters (a longer line stays as it is). In HTML a line break is whitespace like a space
    (our templates have no <pre> or <textarea>, and no line breaks inside attribute values),
    and a mail server reads a message a line at a time: a quarter of the lines, a quarter of
    its reading. The indentation of each line goes too: it only adds to the whitespace between
    the lines, which HTML collapses into one space."""
    lines = [line.strip(" ") for line in html.rstrip("\n").split("\n")]
    packed, current, length = [], [lines[0]], len(lines[0])
    for line in lines[1:]:
        if length + 1 + len(line) <= width:
            current.append(line)
            length += 1 + len(line)
        else:
            packed.append(" ".join(current))
            current, length = [line], len(line)
    packed.append(" ".join(current))
    return "\n".join(packed) + ("\n" if html.endswith("\n") else "")


def _encoded_body(lines: bytes) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, body). The part as it is when SMTP carries its lines
    unchanged (at most 998 octets, no NUL or lone CR: RFC 5322): 7bit if it is ASCII, else 8bit
    (UTF-8; sent with BODY=8BITMIME, RFC 6152, or re-encoded for a server without it). A server
    reads a message a line at a time, and quoted-printable adds "=" escapes and breaks lines
    at 76 characters, links included. Else quoted-printable."""
    if _carried_as_is(lines):
        return ("7bit" if lines.isascii() else "8bit"), lines
    return "quoted-printable", binascii.b2a_qp(lines, istext=True)


def _carried_as_is(lines: bytes) -> bool:
    """No NUL, CR and LF only as CRLF, no line longer than ``MAX_LINE_OCTETS``. Some line is
    longer exactly when a stretch of that many octets plus the CRLF holds no line end, so the
    check jumps from line end to line end, the furthest within reach each time: a few steps a
    message instead of a copy of every line."""
    if b"\0" in lines or not _crlf_only(lines):
        return False
    start = 0
    while len(lines) - start > MAX_LINE_OCTETS:
        end = lines.rfind(b"\n", start, start + MAX_LINE_OCTETS + 2)
        if end < 0:
            return False
        start = end + 1
    return True


def _crlf_only(data: bytes) -> bool:
    """CR and LF occur only together, as CRLF (three counts, no copy)."""
    return data.count(b"\r") == data.count(b"\n") == data.count(b"\r\n")


def _seven_bit(message: bytes) -> bytes:
    """The message with its 8bit parts re-encoded (base64) for a server without 8BITMIME; the
    headers and everything else mean the same."""
    parsed = message_from_bytes(message, policy=SMTP_POLICY)
    return parsed.as_bytes(policy=SMTP_POLICY.clone(cte_type="7bit"))


def _unsubscribe_targets(url: str, mailto: str) -> list[str]:
    """The List-Unsubscribe entries: the one-click URL, then the mailto address if configured."""
    return [f"<{url}>"] + ([f"<mailto:{mailto}?subject=unsubscribe>"] if mailto else [])


def _crlf_lines(text: str) -> bytes:
    """UTF-8 lines, each ended by CRLF (as the email package stores a text part): the lines of
    ``bytes.splitlines`` (CRLF, CR and LF end a line), by three replaces instead of a join of
    every line."""
    data = text.encode("utf-8").replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if not data.endswith(b"\n"):
        data += b"\n"
    return data.replace(b"\n", b"\r\n")


@lru_cache(maxsize=256)
def _encoded(value: str, name: str) -> str:
    """A header value as ASCII: RFC 2047 encoded words when not ASCII, folded to 78 columns.
    Cached: the email package's encoder is slow, and a run's subjects repeat."""
    charset = "us-ascii" if value.isascii() else "utf-8"
    return Header(value, charset, header_name=name).encode(linesep="\r\n")


def _address(name: str, address: str) -> str:
    return formataddr((name, address), charset="utf-8") if name else address


def _build_with_email_package(smtp: SmtpConfig, user: UserConfig, rendered: RenderedDigest, message_id: str,
                              unsubscribe_url: str, unsubscribe_mailto: str, now: datetime) -> bytes:
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = smtp.sender
    message["To"] = formataddr((one_line(user.name), user.email))
    message["Subject"] = one_line(rendered.subject)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    targets = _unsubscribe_targets(unsubscribe_url, unsubscribe_mailto)
    message["List-Unsubscribe"] = ", ".join(targets)
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"
    html = _mail_html(rendered.html)
    message.set_content(rendered.text, subtype="plain", charset="utf-8", cte=_encoded_body(_crlf_lines(rendered.text))[0])
    message.add_alternative(html, subtype="html", charset="utf-8", cte=_encoded_body(_crlf_lines(html))[0])
    return message.as_bytes()


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return False
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return 400 <= exc.code < 500
    return isinstance(exc, (aiosmtplib.SMTPException, OSError, ssl.SSLError, asyncio.TimeoutError))


def describe(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{exc.code} {one_line(exc.message)}"
    return one_line(f"{type(exc).__name__}: {exc}") or type(exc).__name__


async def _as_server_takes(client: aiosmtplib.SMTP, message: bytes) -> tuple[bytes, list[str]]:
    """The message and MAIL FROM options for this server: a message with 8-bit parts goes with
    BODY=8BITMIME where the server offers it, and re-encoded to 7 bits where it does not; its
    size (RFC 1870) where the server takes it."""
    if client.is_ehlo_or_helo_needed:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            await client.helo()  # no extensions at all
    options = []
    if not message.isascii():
        if client.supports_extension("8BITMIME"):
            options.append("BODY=8BITMIME")
        else:
            message = _seven_bit(message)
    if client.supports_extension("SIZE"):
        options.insert(0, f"SIZE={_transmitted_size(message)}")
    return message, options


def _transmitted_size(message: bytes) -> int:
    """The octets of the message as DATA transmits it: every line ended by CRLF. Ours already
    are, which three counts confirm (instead of a rewrite of the whole message to measure it)."""
    if not _crlf_only(message):
        message = re.sub(rb"\r\n|\r|\n", b"\r\n", message)
    return len(message) + (0 if message.endswith(b"\r\n") else 2)


async def _send(client: aiosmtplib.SMTP, sender: str, recipient: str, message: bytes, options: list[str],
                timeout: float) -> str:
    """``client.sendmail`` for one recipient, its commands one by one: MAIL FROM with our own
    measure of the size (sendmail rewrites the whole message once more only to measure it),
    RCPT TO, DATA; on a refusal the envelope is reset for the next message, as sendmail does.
    Returns the server's reply to the message."""
    try:
        await client.mail(sender, options=options, timeout=timeout)
        await client.rcpt(recipient, timeout=timeout)
        return (await client.data(message, timeout=timeout)).message
    except aiosmtplib.SMTPResponseException:
        with contextlib.suppress(ConnectionError, aiosmtplib.SMTPResponseException):
            await client.rset(timeout=timeout)
        raise


class SmtpSender:
    """Sends stored messages; reports each outcome through ``on_outcome`` as soon as it is known."""

    def __init__(self, smtp: SmtpConfig):
        self.smtp = smtp
        self.envelope_from = parseaddr(smtp.sender)[1] or smtp.sender

    def _client(self) -> aiosmtplib.SMTP:
        smtp = self.smtp
        context = ssl.create_default_context(cafile=smtp.ca_file or None) if smtp.security != "none" else None
        return aiosmtplib.SMTP(
            hostname=smtp.host, port=smtp.port, use_tls=smtp.security == "tls",
            start_tls=True if smtp.security == "starttls" else False,
            username=smtp.username or None, password=smtp.password if smtp.username else None,
            timeout=smtp.timeout_seconds, tls_context=context,
        )

    async def send_stream(self, batches: AsyncIterator[Sequence[Outgoing]],
                          on_outcome: Callable[[Outcome], Awaitable[None] | None]) -> None:
        """Send every message of every batch over up to ``max_connections`` connections, kept
        open from one batch to the next; the next batch is fetched while the connections still
        send the last messages of this one. A connection reports each outcome (and awaits the
        report, when it returns an awaitable) before it sends its next message."""
        workers = max(1, self.smtp.max_connections)
        queue: asyncio.Queue[Outgoing | None] = asyncio.Queue(maxsize=workers)

        async def feed() -> None:  # if fetching fails, gather raises at once and the connections are cancelled
            async for batch in batches:
                for item in batch:
                    await queue.put(item)
            for _ in range(workers):
                await queue.put(None)  # each connection stops after what was queued before

        await asyncio.gather(feed(), *(self._worker(queue, on_outcome) for _ in range(workers)))

    async def _worker(self, queue: asyncio.Queue[Outgoing | None],
                      on_outcome: Callable[[Outcome], Awaitable[None] | None]) -> None:
        client: aiosmtplib.SMTP | None = None
        try:
            while (item := await queue.get()) is not None:
                client, outcome = await self._deliver(client, item)
                reported = on_outcome(outcome)
                if reported is not None:
                    await reported
        finally:
            if client is not None and client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()

    async def _deliver(self, client: aiosmtplib.SMTP | None, item: Outgoing) -> tuple[aiosmtplib.SMTP | None, Outcome]:
        attempts = 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.smtp.max_attempts),
            wait=wait_exponential(multiplier=self.smtp.retry_initial_seconds, max=MAX_BACKOFF_SECONDS),
            retry=retry_if_exception(is_transient), reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    try:
                        if client is None or not client.is_connected:
                            client = self._client()
                            await client.connect()
                        message, options = await _as_server_takes(client, item.message)
                        reply = await _send(client, self.envelope_from, item.recipient, message, options,
                                            self.smtp.timeout_seconds)
                    except BaseException:
                        if client is not None:
                            client.close()
                        client = None
                        raise
            log.info("digest %d sent to %s: %s", item.digest_id, item.recipient, one_line(reply))
            return client, Outcome(item.digest_id, "sent", one_line(reply), attempts)
        except Exception as exc:  # classified below; nothing escapes unreported
            status = "deferred" if is_transient(exc) else "failed"
            log.warning("digest %d to %s %s after %d attempt(s): %s", item.digest_id, item.recipient,
                        status, attempts, describe(exc))
            return client, Outcome(item.digest_id, status, describe(exc), attempts)
