"""The digest's mail message: headers (List-Unsubscribe, Message-ID, Auto-Submitted), the
plain and HTML parts in lines any relay carries (7-bit when the server lacks 8BITMIME), and
the DKIM signature."""

from __future__ import annotations

import binascii
import hashlib
import secrets
from datetime import datetime
from email import message_from_bytes
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache

from recommender.base.config import SmtpConfig, UserConfig
from recommender.base.errors import DeliveryError
from recommender.base.text import one_line
from recommender.digest.render import RenderedDigest

MAX_LINE_OCTETS = 998  # without the CRLF (RFC 5322 2.1.1)
PACKED_LINE_CHARS = 900  # the HTML part's lines are joined up to this length


def make_message_id(digest_id: int, user_id: int, sender: str) -> str:
    domain = parseaddr(sender)[1].rpartition("@")[2] or "recommender.local"
    return f"<digest.{digest_id}.{user_id}.{secrets.token_hex(6)}@{domain}>"


def build_message(smtp: SmtpConfig, user: UserConfig, rendered: RenderedDigest, message_id: str,
                  unsubscribe_url: str, unsubscribe_mailto: str, now: datetime) -> bytes:
    """multipart/alternative (text/plain, then text/html) with RFC 8058 one-click unsubscribe.

    Written out directly (the email package's cost against the digest run's budget: bench/tricks.py,
    figure in bench/RESULTS.md). Same structure and encodings (7bit or quoted-printable parts,
    RFC 2047 for non-ASCII names and subjects, CRLF lines); an address that is not ASCII
    itself (SMTPUTF8) goes through the email package instead."""
    sender_name, sender_address = parseaddr(smtp.sender)
    if not (sender_address.isascii() and user.email.isascii()):
        return _build_with_email_package(smtp, user, rendered, message_id, unsubscribe_url, unsubscribe_mailto, now)
    targets = _unsubscribe_targets(unsubscribe_url, unsubscribe_mailto)
    # From the Message-ID (itself unique), so a message rendered again is the same bytes;
    # quoted-printable never has "=_" (= takes two hex digits).
    boundary = _boundary(message_id)
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


def _boundary(message_id: str) -> str:
    return f"=_{hashlib.sha256(message_id.encode()).hexdigest()[:32]}"


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


def seven_bit(message: bytes) -> bytes:
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
    message.set_boundary(_boundary(message_id))
    return message.as_bytes()


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
