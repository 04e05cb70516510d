"""Signed link tokens for feedback, open, unsubscribe and view-in-browser links.

A token carries only opaque integers (user id, digest id, entry position) plus the
action and its issue time, signed with the secret named by ``feedback.secret_env``
(itsdangerous). No email address or title can be read from a URL.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from itsdangerous import BadData, BadSignature, SignatureExpired, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode, int_to_bytes
from itsdangerous.timed import TimestampSigner

from recommender.base.clock import Clock, system_clock
from recommender.base.config import EXAMPLE_SECRET
from recommender.base.errors import ConfigError

ACTIONS = ("more", "less", "open", "unsubscribe", "view", "undo", "feed")  # feed: the digest id slot holds the feed URL's number
_SALT = "recommender.links.v1"


class TokenError(Exception):
    """A token that is forged, tampered with, or malformed."""


class PreviewLink(TokenError):
    """A link of a digest preview (digest 0): valid, but it acts on nothing."""


class TokenExpired(TokenError):
    """A correctly signed token that is older than allowed."""


@dataclass(frozen=True)
class LinkToken:
    action: str
    user_id: int
    digest_id: int = 0
    position: int = -1  # the entry within the digest; -1 for digest-wide links
    issued_at: datetime | None = None

    @property
    def opaque(self) -> list[int | str]:
        return [self.action, self.user_id, self.digest_id, self.position]


MIN_SECRET_LENGTH = 16


def check_secret(secret: str, env_name: str) -> str:
    """Refuse an empty, example or short signing secret: whoever guesses it can forge any
    reader's links (unsubscribe them, skew their profile)."""
    if not secret:
        raise ConfigError(f"${env_name} is not set: links cannot be signed (set it to a long random string)")
    if secret == EXAMPLE_SECRET:
        raise ConfigError(f"${env_name} is the example value from config.example.toml; choose a random secret")
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(f"${env_name} is shorter than {MIN_SECRET_LENGTH} characters: use a long random "
                          "string (python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return secret


CLOCK_SKEW_SECONDS = 300  # a link signed this far in this host's future is a clock's drift, not a forgery


def _canonical(value: str) -> bool:
    """Whether each of a token's three parts is the unpadded URL-safe base64 of what it decodes to."""
    raw = value.encode("ascii", "replace")
    parts = raw.removeprefix(b".").split(b".")  # a leading "." marks a compressed payload
    if len(parts) != 3:
        return False
    try:
        return all(_base64(base64_decode(part)) == part for part in parts)
    except BadData:
        return False


def token_id(token: str) -> str:
    """A short digest of a token, for recording a click once."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]


class _ClockSigner(TimestampSigner):
    clock: Clock = staticmethod(system_clock)  # type: ignore[assignment]

    def get_timestamp(self) -> int:
        return int(self.clock().timestamp())


_URL_SAFE = bytes.maketrans(b"+/", b"-_")


def _base64(data: bytes) -> bytes:
    """itsdangerous's ``base64_encode`` (URL-safe, unpadded) in one call of each C function."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_URL_SAFE)


class LinkSigner:
    def __init__(self, secret: str, clock: Clock | None = None):
        signer = type("Signer", (_ClockSigner,), {"clock": staticmethod(clock or system_clock)})
        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT, signer=signer)
        self._signer = self._serializer.make_signer()
        # The keyed hash, set up once: a digest signs 63 links, and the serializer derives the
        # key and sets up the HMAC again for every one.
        self._mac = hmac.new(self._signer.derive_key(), digestmod=self._signer.digest_method)
        self._stamp: tuple[int, bytes] = (-1, b"")  # the last timestamp and its encoded part: shared by a digest's links

    def sign(self, token: LinkToken) -> str:
        """The serializer's token (``payload.timestamp.signature``), always in its uncompressed
        form: for four small values zlib never saves more than a few characters, and trying it
        was most of the cost (the serializer's cost against the digest run's budget:
        bench/tricks.py, figure in bench/RESULTS.md). ``verify`` (the serializer's loads) reads either form; a test keeps
        the two byte for byte the same."""
        return self.sign_link(token.action, token.user_id, token.digest_id, token.position)

    def now(self) -> int:
        """The issue time ``sign`` would stamp on a link now (whole seconds)."""
        return self._signer.get_timestamp()  # type: ignore[attr-defined]  # a TimestampSigner (make_signer)

    def sign_link(self, action: str, user_id: int, digest_id: int, position: int = -1,
                  issued: int | None = None) -> str:
        """``sign(LinkToken(action, user_id, digest_id, position))`` without making the token:
        a digest signs 61 links, all ``issued`` at the digest's time (from ``now``; default:
        the clock's time)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown link action {action!r}")
        # json.dumps(token.opaque, separators=(",", ":")), written out: an action is a plain word
        payload = f'["{action}",{int(user_id)},{int(digest_id)},{int(position)}]'.encode()
        now, stamp = self._signer.get_timestamp() if issued is None else issued, self._stamp  # type: ignore[attr-defined]
        if stamp[0] != now:
            stamp = self._stamp = (now, b"." + _base64(int_to_bytes(now)))
        value = _base64(payload) + stamp[1]
        mac = self._mac.copy()
        mac.update(value)
        return (value + b"." + _base64(mac.digest())).decode()

    def verify(self, value: str, max_age_seconds: int | None = None) -> LinkToken:
        # One link, one string: base64 that decodes alike when written otherwise (padding, the
        # unused bits of the last character, stray characters) would be a second token id.
        if not _canonical(value):
            raise TokenError("invalid link")
        try:
            payload, stamp = self._serializer.loads(value, max_age=max_age_seconds, return_timestamp=True)
        except SignatureExpired as exc:
            stamped = exc.date_signed
            if stamped is None or not 0 < stamped.timestamp() - self.now() <= CLOCK_SKEW_SECONDS:
                raise TokenExpired("link expired") from exc
            # signed by a host whose clock runs a little ahead of this one: not expired
            payload, stamp = self._serializer.loads(value, return_timestamp=True)
        except BadSignature as exc:
            raise TokenError("invalid link") from exc
        if not (isinstance(payload, list) and len(payload) == 4 and payload[0] in ACTIONS
                and all(isinstance(v, int) and not isinstance(v, bool) for v in payload[1:])):
            raise TokenError("invalid link")
        return LinkToken(payload[0], payload[1], payload[2], payload[3], issued_at=stamp)
