"""Send stored messages over SMTP (aiosmtplib); the messages themselves come from `message`.

Transient failures (timeouts, TLS trouble, 4xx replies) are retried with exponential
backoff (tenacity) a bounded number of times; 5xx replies are permanent. A first connection
that finds no SMTP server (refused, closed, or no greeting within ``GREETING_SECONDS``: an
HTTP server on that port) ends the run at once with a hint about ``[smtp]``: retrying a
wrong host or port only hides the mistake.
Messages go out concurrently over at most ``smtp.max_connections`` connections, each
connection reused for several messages.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from email.utils import parseaddr

import aiosmtplib
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from recommender.base.config import SmtpConfig, SmtpSecurity
from recommender.base.domain import DeliveryStatus
from recommender.base.errors import DeliveryError
from recommender.base.text import one_line
from recommender.digest.message import dkim_key, dkim_signed, seven_bit

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 60.0
# A mail server greets within a second or two (postscreen's pause is 6 s); a server of another
# kind waits for us to speak first and never does.
GREETING_SECONDS = 10.0


@dataclass(frozen=True)
class Outgoing:
    digest_id: int
    recipient: str
    message: bytes


@dataclass(frozen=True)
class Outcome:
    digest_id: int
    status: DeliveryStatus
    detail: str
    attempts: int


class DeliveryAborted(DeliveryError):
    """The server refused our login or its TLS certificate did not verify: no message can go
    out, and retrying would only repeat the refusal (and lock a real account after a few failed
    logins), so the run stops at the first connection."""


def check_credentials(smtp: SmtpConfig) -> None:
    """Refuse before connecting what can only fail or leak: a login without its password, or a
    password sent in clear text."""
    if smtp.username and not smtp.password:
        raise DeliveryError(f"${smtp.password_env} is not set, but smtp.username is: set the SMTP password "
                            "in that environment variable")
    if smtp.username and smtp.security == SmtpSecurity.NONE and not smtp.allow_plaintext_auth:
        raise DeliveryError("smtp.security = \"none\" would send the SMTP password in clear text: use "
                            "starttls or tls (or set smtp.allow_plaintext_auth = true for a relay on this host)")


def settings_fingerprint(smtp: SmtpConfig) -> str:
    """What identifies the server we talk to: a deferral made with other settings is void."""
    parts = (smtp.host, str(smtp.port), smtp.security, smtp.username, smtp.tls_server_name, smtp.ca_file)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def no_server_reason(smtp: SmtpConfig, exc: BaseException) -> str:
    """Why a first connection found no SMTP server at host:port, with the settings to check."""
    where = f"{smtp.host}:{smtp.port}"
    if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError):
        what = f"no SMTP greeting from {where} within {min(smtp.timeout_seconds, GREETING_SECONDS):g} s"
    elif isinstance(exc, aiosmtplib.SMTPConnectResponseError):
        what = f"{where} greeted with {describe(exc)!r} instead of 220"
    elif isinstance(exc, ConnectionRefusedError) or isinstance(exc.__cause__, ConnectionRefusedError):
        what = f"connection to {where} refused"
    elif smtp.security == SmtpSecurity.TLS and _ssl_error(exc):
        what = f"{where} answered without TLS (security = \"tls\" starts with it)"
    else:
        what = f"no SMTP server at {where}: {describe(exc)}"
    return (f"{what}: check [smtp] host and port (and security = \"{smtp.security}\": port 587 is usually "
            "starttls, 465 tls, 25 none)")


def _finds_no_server(exc: BaseException) -> bool:
    """A failure of ``connect`` that means nothing SMTP listens there (a 4xx greeting is a busy
    server, worth retrying)."""
    if isinstance(exc, aiosmtplib.SMTPConnectResponseError):
        return not 400 <= exc.code < 500
    return isinstance(exc, (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected,
                            aiosmtplib.SMTPResponseException, ConnectionRefusedError))


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


def _ssl_error(exc: BaseException) -> bool:
    """Whether a TLS handshake failed behind ``exc`` (aiosmtplib wraps it), as against a
    server that speaks plain SMTP."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError) or "SSL" in type(current).__name__ or "WRONG_VERSION" in str(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


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
    if smtp.security == SmtpSecurity.STARTTLS and isinstance(exc, aiosmtplib.SMTPException) \
            and "STARTTLS extension not supported" in str(exc):
        return (f"the mail server at {smtp.host}:{smtp.port} does not offer STARTTLS: check [smtp] security "
                "(\"tls\" for port 465, \"none\" for a relay on this host without encryption) and port")
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
            message = seven_bit(message)
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
        context = ssl.create_default_context(cafile=smtp.ca_file or None) if smtp.security != SmtpSecurity.NONE else None
        named_starttls = smtp.security == SmtpSecurity.STARTTLS and bool(smtp.tls_server_name)
        login = smtp.username and not named_starttls
        return aiosmtplib.SMTP(
            hostname=smtp.tls_server_name if sock is not None else smtp.host,
            port=None if sock is not None else smtp.port, sock=sock,
            use_tls=smtp.security == SmtpSecurity.TLS,
            start_tls=smtp.security == SmtpSecurity.STARTTLS and not named_starttls,
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
        client: aiosmtplib.SMTP | None = None
        greeted = False
        try:
            sock = None
            if smtp.security == SmtpSecurity.TLS and smtp.tls_server_name:
                sock = await asyncio.to_thread(socket.create_connection, (smtp.host, smtp.port), smtp.timeout_seconds)
            client = self._client(sock)
            await client.connect(timeout=min(smtp.timeout_seconds, GREETING_SECONDS))
            greeted = True
            if smtp.security == SmtpSecurity.STARTTLS and smtp.tls_server_name:
                await client.starttls(server_hostname=smtp.tls_server_name)
                if smtp.username:
                    await client.login(smtp.username, smtp.password)
            if client.is_ehlo_or_helo_needed:
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()  # an old server: no extensions at all
        except Exception as exc:
            if client is not None:
                client.close()
            reason = _fatal_reason(smtp, exc)
            if reason is None and not greeted and not self._connected_once and _finds_no_server(exc):
                reason = no_server_reason(smtp, exc)
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
            return client, Outcome(item.digest_id, DeliveryStatus.SENT, one_line(reply), attempts)
        except DeliveryAborted:
            raise
        except Exception as exc:  # classified below; nothing escapes unreported
            status = DeliveryStatus.DEFERRED if is_transient(exc) else DeliveryStatus.FAILED
            log.debug("digest %d to %s %s after %d attempt(s): %s", item.digest_id, item.recipient,
                        status, attempts, describe(exc))
            return client, Outcome(item.digest_id, status, describe(exc), attempts)
