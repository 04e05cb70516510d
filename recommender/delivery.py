"""Build the digest message and send stored messages over SMTP (aiosmtplib).

Transient failures (connection refused, timeouts, TLS trouble, 4xx replies) are retried
with exponential backoff (tenacity) a bounded number of times; 5xx replies are permanent.
Messages go out concurrently over at most ``smtp.max_connections`` connections, each
connection reused for several messages.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import secrets
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache

import aiosmtplib
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from recommender.config import SmtpConfig, UserConfig
from recommender.digest import RenderedDigest
from recommender.errors import DeliveryError
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
    """The message with its 8bit parts re-encoded for a server without 8BITMIME (RFC 6152).
    Only the parts are re-encoded: the top-level header block goes out byte for byte as it was
    (the email package would fold structured headers such as List-Unsubscribe into RFC 2047
    encoded words, which RFC 2369 forbids and providers then ignore)."""
    head, separator, _ = message.partition(b"\r\n\r\n")
    parsed = message_from_bytes(message, policy=SMTP_POLICY)
    regenerated = parsed.as_bytes(policy=SMTP_POLICY.clone(cte_type="7bit"))
    return head + separator + regenerated.partition(b"\r\n\r\n")[2]


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
    # An address beyond ASCII goes as UTF-8 in the headers (RFC 6532), over SMTPUTF8.
    message = EmailMessage(policy=SMTP_POLICY.clone(utf8=True))
    message["From"] = smtp.sender
    local, _, domain = user.email.rpartition("@")  # (addr_spec= refuses a local part beyond ASCII)
    message["To"] = Address(display_name=one_line(user.name), username=local, domain=domain)
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


class DeliveryAborted(DeliveryError):
    """The server refused our login or its TLS certificate did not verify: no message can go
    out, and retrying would only repeat the refusal (and lock a real account after a few failed
    logins), so the run stops at the first connection."""


DKIM_HEADERS = (b"From", b"To", b"Subject", b"Date", b"Message-ID", b"List-Unsubscribe",
                b"List-Unsubscribe-Post", b"MIME-Version", b"Content-Type")


def dkim_key(smtp: SmtpConfig) -> bytes | None:
    """The DKIM private key (PEM) when signing is configured, read before any connection."""
    if not smtp.dkim_selector:
        return None
    try:
        with open(smtp.dkim_key_file, "rb") as key:
            return key.read()
    except OSError as exc:
        raise DeliveryError(f"{smtp.dkim_key_file}: cannot read the DKIM key (smtp.dkim_key_file): "
                            f"{exc.strerror}") from None


def dkim_signed(smtp: SmtpConfig, key: bytes | None, message: bytes) -> bytes:
    """The message with a DKIM-Signature (RFC 6376, dkimpy) covering, among others, both
    List-Unsubscribe headers as RFC 8058 requires; unchanged when signing is not configured.
    Signed as it goes out (after any re-encoding for the server), so the body hash holds."""
    if key is None:
        return message
    import dkim  # only where signing is configured

    try:
        signature = dkim.sign(message, smtp.dkim_selector.encode(), smtp.dkim_domain.encode(), key,
                              canonicalize=(b"relaxed", b"relaxed"), include_headers=list(DKIM_HEADERS))
    except dkim.DKIMException as exc:
        raise DeliveryError(f"{smtp.dkim_key_file}: cannot sign with this DKIM key: {exc}") from None
    return signature + message


def check_credentials(smtp: SmtpConfig) -> None:
    """Refuse before connecting what can only fail or leak: a login without its password, or a
    password sent in clear text."""
    if smtp.username and not smtp.password:
        raise DeliveryError(f"${smtp.password_env} is not set, but smtp.username is: set the SMTP password "
                            "in that environment variable")
    if smtp.username and smtp.security == "none" and not smtp.allow_plaintext_auth:
        raise DeliveryError("smtp.security = \"none\" would send the SMTP password in clear text: use "
                            "starttls or tls (or set smtp.allow_plaintext_auth = true for a relay on this host)")


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (aiosmtplib.SMTPAuthenticationError, aiosmtplib.SMTPNotSupported, DeliveryError)):
        return False
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(400 <= r.code < 500 for r in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return 400 <= exc.code < 500
    return isinstance(exc, (aiosmtplib.SMTPException, OSError, ssl.SSLError, asyncio.TimeoutError))


def describe(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        exc = exc.recipients[0]
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{exc.code} {one_line(exc.message)}"
    return one_line(f"{type(exc).__name__}: {exc}") or type(exc).__name__


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate failure behind a connection error (aiosmtplib wraps it), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _fatal_reason(smtp: SmtpConfig, exc: BaseException) -> str | None:
    """Why no message can go out this run, for a connection failure that no retry heals."""
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return f"the mail server refused the login of {smtp.username!r}: {describe(exc)}"
    certificate = _certificate_error(exc)
    if certificate is not None:
        return (f"the TLS certificate of {smtp.tls_server_name or smtp.host} did not verify: "
                f"{one_line(certificate.verify_message or str(certificate))} (see smtp.ca_file and "
                "smtp.tls_server_name)")
    if smtp.username and isinstance(exc, aiosmtplib.SMTPException) and "AUTH" in str(exc):
        return f"the mail server offers no login we can use: {describe(exc)}"
    return None


def _options_for(client: aiosmtplib.SMTP, sender: str, recipient: str, message: bytes) -> tuple[bytes, list[str]]:
    """The message and MAIL FROM options for this server: a message with 8-bit parts goes with
    BODY=8BITMIME where the server offers it, and with its parts re-encoded to 7 bits where it
    does not; an address beyond ASCII needs SMTPUTF8 (RFC 6531)."""
    options = []
    if not (sender.isascii() and recipient.isascii()):
        if not client.supports_extension("SMTPUTF8"):
            raise aiosmtplib.SMTPNotSupported(
                f"the mail server does not offer SMTPUTF8, which the address {recipient if not recipient.isascii() else sender} needs")
        options.append("SMTPUTF8")
    if not message.isascii():
        if client.supports_extension("8BITMIME"):
            options.append("BODY=8BITMIME")
        else:
            message = _seven_bit(message)
    return message, options


def _connection_still_good(exc: BaseException) -> bool:
    """After this failure the connection can carry the next message: the server refused this one
    (and sendmail reset the envelope), or nothing was sent at all."""
    if isinstance(exc, (aiosmtplib.SMTPNotSupported, aiosmtplib.SMTPRecipientsRefused, ValueError)):
        return True
    return isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code != 421  # 421: the server closes


class SmtpSender:
    """Sends stored messages; reports each outcome through ``on_outcome`` as soon as it is known.
    Until one connection has logged in, connections are opened one at a time, so a refused
    login or certificate is met once and ends the run (``DeliveryAborted``)."""

    def __init__(self, smtp: SmtpConfig):
        check_credentials(smtp)
        self.smtp = smtp
        self.envelope_from = parseaddr(smtp.sender)[1] or smtp.sender
        self.dkim_key = dkim_key(smtp)
        self._first_connection: asyncio.Lock | None = None
        self._connected_once = False
        self._aborted = ""

    def _client(self, sock: socket.socket | None = None) -> aiosmtplib.SMTP:
        """A client; with ``smtp.tls_server_name`` the certificate is checked against that name
        (implicit TLS: over a socket already connected to ``host``; STARTTLS: in ``_open``)."""
        smtp = self.smtp
        context = ssl.create_default_context(cafile=smtp.ca_file or None) if smtp.security != "none" else None
        named_starttls = smtp.security == "starttls" and bool(smtp.tls_server_name)
        login = smtp.username and not named_starttls
        return aiosmtplib.SMTP(
            hostname=smtp.tls_server_name if sock is not None else smtp.host,
            port=None if sock is not None else smtp.port, sock=sock,
            use_tls=smtp.security == "tls", start_tls=smtp.security == "starttls" and not named_starttls,
            username=smtp.username if login else None, password=smtp.password if login else None,
            timeout=smtp.timeout_seconds, tls_context=context,
        )

    async def _connect(self) -> aiosmtplib.SMTP:
        if self._aborted:
            raise DeliveryAborted(self._aborted)
        if self._connected_once:
            return await self._open()
        assert self._first_connection is not None  # nosec B101  # set by send_stream, the only caller
        async with self._first_connection:
            if self._aborted:
                raise DeliveryAborted(self._aborted)
            return await self._open()

    async def _open(self) -> aiosmtplib.SMTP:
        smtp = self.smtp
        sock = None
        if smtp.security == "tls" and smtp.tls_server_name:
            sock = await asyncio.to_thread(socket.create_connection, (smtp.host, smtp.port), smtp.timeout_seconds)
        client = self._client(sock)
        try:
            await client.connect()
            if smtp.security == "starttls" and smtp.tls_server_name:
                await client.starttls(server_hostname=smtp.tls_server_name)
                if smtp.username:
                    await client.login(smtp.username, smtp.password)
            if client.is_ehlo_or_helo_needed:
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()  # an old server: no extensions at all
        except Exception as exc:
            client.close()
            reason = _fatal_reason(smtp, exc)
            if reason:
                self._aborted = reason
                raise DeliveryAborted(reason) from None
            raise
        self._connected_once = True
        return client

    async def send_stream(self, batches: AsyncIterator[Sequence[Outgoing]],
                          on_outcome: Callable[[Outcome], Awaitable[None] | None]) -> None:
        """Send every message of every batch over up to ``max_connections`` connections, kept
        open from one batch to the next; the next batch is fetched while the connections still
        send the last messages of this one. A connection reports each outcome (and awaits the
        report, when it returns an awaitable) before it sends its next message."""
        workers = max(1, self.smtp.max_connections)
        queue: asyncio.Queue[Outgoing | None] = asyncio.Queue(maxsize=workers)
        self._first_connection = asyncio.Lock()

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
                    if client is None or not client.is_connected:
                        client = await self._connect()
                    try:
                        message, options = _options_for(client, self.envelope_from, item.recipient, item.message)
                        message = dkim_signed(self.smtp, self.dkim_key, message)
                        _, reply = await client.sendmail(self.envelope_from, [item.recipient], message,
                                                         mail_options=options, timeout=self.smtp.timeout_seconds)
                    except BaseException as exc:
                        if not _connection_still_good(exc):
                            client.close()
                            client = None
                        raise
            log.info("digest %d sent to %s: %s", item.digest_id, item.recipient, one_line(reply))
            return client, Outcome(item.digest_id, "sent", one_line(reply), attempts)
        except DeliveryAborted:
            raise
        except Exception as exc:  # classified below; nothing escapes unreported
            status = "deferred" if is_transient(exc) else "failed"
            log.warning("digest %d to %s %s after %d attempt(s): %s", item.digest_id, item.recipient,
                        status, attempts, describe(exc))
            return client, Outcome(item.digest_id, status, describe(exc), attempts)
