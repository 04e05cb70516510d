"""The configuration's values: frozen dataclasses with their defaults, and the constants they
are checked against. `config` reads a TOML file into them."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import time
from email.utils import parseaddr
from enum import StrEnum
from functools import cached_property
from pathlib import Path

from recommender.base.errors import ConfigError


class Choice(StrEnum):
    """A kind the config chooses between: its value is the TOML string, and its repr is the
    string's too, so the fingerprints of stored profiles (made from ``repr(ranking)``) do not
    change with the type."""

    def __repr__(self) -> str:
        return repr(self.value)


class CommunityMode(Choice):
    """``ranking.community``: off, each reader alone; on, everyone's stars; auto, see
    reader_factors.uses_community."""

    AUTO = "auto"
    OFF = "off"
    ON = "on"


class PersonalMode(Choice):
    """``ranking.personal``: a classifier per reader; auto, without the community and up to
    ``personal_max_users`` readers."""

    AUTO = "auto"
    OFF = "off"
    ON = "on"


class SmtpSecurity(Choice):
    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


class DeliveryMode(Choice):
    """``delivery.mode``: direct, the daemon sends; queue, workers send from the outbox."""

    DIRECT = "direct"
    QUEUE = "queue"


class Channel(Choice):
    """Where a reader's digest goes (``users.channels``; see pipeline.channels)."""

    EMAIL = "email"
    FEED = "feed"  # the reader's private Atom feed
    WEBHOOK = "webhook"  # a post to the [[webhooks]] entry the reader names


class WebhookKind(Choice):
    """``webhooks.kind``: the shape of the post (see delivery.webhooks)."""

    SLACK = "slack"
    DISCORD = "discord"
    JSON = "json"


COMMUNITY_MODES = tuple(CommunityMode)
PERSONAL_MODES = tuple(PersonalMode)
CHANNELS = tuple(Channel)
WEBHOOK_KINDS = tuple(WebhookKind)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EXAMPLE_SECRET = "change-me-to-a-long-random-string"  # nosec B105  # the example value, refused as a secret
EXAMPLE_SENDER = "digest@example.org"
# String values that end up in a mail header: a line break in one would end the header.
HEADER_BOUND = frozenset({"from", "name", "email", "unsubscribe_mailto", "base_url", "dkim_selector",
                          "dkim_domain", "tls_server_name", "username"})



@dataclass(frozen=True)
class DatabaseConfig:
    url: str


@dataclass(frozen=True)
class RankingConfig:
    title_weight: float = 2.0
    ngram_max: int = 2
    min_df: int = 2
    max_df: float = 0.5
    sublinear_tf: bool = True
    stem: bool = True  # terms are stems: "networks" and "networked" count as "network"
    interests_weight: float = 1.0
    more_weight: float = 1.0
    less_weight: float = 0.5
    open_weight: float = 0.25
    star_half_life_days: float = 0.0
    why_terms: int = 3
    collaborative_weight: float = 1.4
    collaborative_min_users: int = 10
    community: CommunityMode = CommunityMode.AUTO
    lsa_dims: int = 1000
    cf_factors: int = 480
    cf_ridge: float = 1.0
    cf_word_weight: float = 1.0  # weight of a paper's word-vector sum beside its LSA text dimensions
    lsa_max_terms: int = 30000
    word_dims: int = 200  # dimensions of the word vectors learnt from the corpus
    profile_terms: int = 500
    interest_boost: float = 0.05
    personal: PersonalMode = PersonalMode.AUTO
    personal_max_users: int = 200
    personal_dims: int = 120
    personal_lsa_weight: float = 0.5
    personal_word_weight: float = 1.2
    personal_c: float = 0.03
    reader_model_weight: float = 1.5  # each reader's own linear model beside the reader factors (0 = off)
    reader_model_ridge: float = 30.0
    reader_model_near_groups: int = 1024  # groups of older papers a reader model is refit against (0 = off)
    term_ridge: float = 1.0  # with the community part: a reader's terms weighed by a ridge classifier (0 = their sum)


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "localhost"
    port: int = 587
    security: SmtpSecurity = SmtpSecurity.STARTTLS
    username: str = ""
    password_env: str = "RECOMMENDER_SMTP_PASSWORD"
    sender: str = "Paper Digest <digest@example.org>"
    timeout_seconds: float = 30.0
    max_connections: int = 4
    max_attempts: int = 5
    retry_initial_seconds: float = 2.0
    ca_file: str = ""  # extra CA certificates to trust (e.g. a private mail relay's)
    tls_server_name: str = ""  # the name the server's certificate must carry, if not host
    allow_plaintext_auth: bool = False  # log in over an unencrypted connection (a relay on this host)
    retry_delay_seconds: float = 60.0  # a digest deferred by a temporary failure waits this long
    dkim_selector: str = ""
    dkim_domain: str = ""
    dkim_key_file: str = ""

    @property
    def password(self) -> str:
        return os.environ.get(self.password_env, "")


@dataclass(frozen=True)
class FeedbackConfig:
    base_url: str = "http://127.0.0.1:8080"
    secret_env: str = "RECOMMENDER_SECRET"
    max_age_days: int = 90
    rate_limit_per_minute: int = 600
    unsubscribe_mailto: str = ""
    trusted_proxies: tuple[str, ...] = ()  # addresses whose X-Forwarded-For names the client
    max_connections: int = 1000  # open connections at once; more are answered 503
    max_connections_per_client: int = 100  # of them from one address (not a trusted proxy); 0 = no cap
    request_timeout_seconds: float = 20.0  # a request not received whole by then is closed

    @property
    def secret(self) -> str:
        return os.environ.get(self.secret_env, "")


@dataclass(frozen=True)
class TopicConfig:
    """One of a reader's interest profiles (``[[users.topics]]``): ranked with the stars and
    clicks that carry its name, shown as its own section of the digest."""

    name: str
    interests: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    max_items: int | None = None  # this topic's share of the digest (default: an even share)
    min_score: float | None = None  # default: the reader's


TOPIC_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,64}")  # one line, at most 64 characters


@dataclass(frozen=True)
class UserConfig:
    email: str
    name: str = ""
    timezone: str = "UTC"
    send_at: time = time(7, 30)
    frequency: str = "daily"
    weekday: str = "mon"
    max_items: int = 10
    min_score: float | None = None
    interests: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    stars: tuple[str, ...] = ()
    topics: tuple[TopicConfig, ...] = ()
    channels: tuple[Channel, ...] = (Channel.EMAIL,)
    webhook: str = ""  # the [[webhooks]] name this reader's digest is posted to (channel "webhook")

    def topic(self, name: str) -> TopicConfig | None:
        """The topic called ``name`` (case-insensitive), or None."""
        return next((t for t in self.topics if t.name.lower() == name.lower()), None)


@dataclass(frozen=True)
class WebhookConfig:
    """A chat channel or endpoint digests are posted to; the URL is a secret, read from
    ``url_env``. The readers naming it share one post per run."""

    name: str
    kind: WebhookKind
    url_env: str
    timeout_seconds: float = 10.0
    max_attempts: int = 4  # tries within a run for a 5xx answer or a timeout
    retry_initial_seconds: float = 1.0  # the first wait between them (then doubled)
    max_retry_after_seconds: float = 60.0  # a longer 429 Retry-After defers the post to a later run
    retry_delay_seconds: float = 300.0  # a post deferred by a temporary failure waits this long

    @property
    def url(self) -> str:
        return os.environ.get(self.url_env, "")


@dataclass(frozen=True)
class SourceConfig:
    name: str
    kind: str
    path: str = ""
    url: str = ""
    include_replacements: bool = False
    categories: tuple[str, ...] = ()  # biorxiv/medrxiv: subjects to keep (all when empty)
    days: int = 2  # biorxiv/medrxiv: days back a fetch covers (today included): the API lags its site
    exclude_titles: tuple[str, ...] = ()  # feed: items whose title matches one of these patterns are dropped
    exclude_types: tuple[str, ...] | None = None  # feed: item types dropped (None: news, editorials and the like)


@dataclass(frozen=True)
class SchedulerConfig:
    misfire_grace_minutes: int = 60
    fetch_freshness_minutes: int = 60
    fetch_timeout_seconds: float = 30.0
    fetch_max_bytes: int = 20_000_000
    fetch_attempts: int = 3


ARXIV_API_URL = "https://export.arxiv.org/api/query"
ARXIV_API_URL_ENV = "RECOMMENDER_ARXIV_API_URL"


@dataclass(frozen=True)
class LookupConfig:
    """Where papers named only by an arXiv id are looked up (a mirror, or a test server)."""

    arxiv_api_url: str = ARXIV_API_URL
    timeout_seconds: float = 30.0
    attempts: int = 3
    retry_wait_seconds: float = 3.0
    max_bytes: int = 20_000_000


@dataclass(frozen=True)
class DeliveryConfig:
    mode: DeliveryMode = DeliveryMode.DIRECT
    keep_days: int = 30  # a sent digest's message is deleted this long after it was made (its picks stay)


def listed_emails(users: Sequence[UserConfig], most: int = 5) -> str:
    """The first few users' emails for a one-line message, and how many more there are."""
    shown = ", ".join(u.email for u in users[:most])
    return f"{shown} and {len(users) - most} more" if len(users) > most else shown


@dataclass(frozen=True)
class Config:
    path: Path
    database: DatabaseConfig
    ranking: RankingConfig = field(default_factory=RankingConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    users: tuple[UserConfig, ...] = ()
    sources: tuple[SourceConfig, ...] = ()
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    lookup: LookupConfig = field(default_factory=LookupConfig)
    webhooks: tuple[WebhookConfig, ...] = ()
    # Loaded without its [[users]] (a worker): the readers are those the database keeps.
    readers_in_store: bool = False

    def webhook(self, name: str) -> WebhookConfig:
        for hook in self.webhooks:
            if hook.name == name:
                return hook
        raise ConfigError(f"{self.path}: no [[webhooks]] entry named {name!r}")

    @property
    def folder(self) -> Path:
        return self.path.parent

    @cached_property
    def users_by_email(self) -> dict[str, UserConfig]:
        """The readers by lower-case email (a run looks up thousands: no scan each)."""
        found: dict[str, UserConfig] = {}
        for user in self.users:
            found.setdefault(user.email.lower(), user)
        return found

    def user(self, email: str) -> UserConfig:
        user = self.users_by_email.get(email.lower())
        if user is not None:
            return user
        raise ConfigError(f"{self.path}: no [[users]] entry with email {email!r} "
                          f"(configured: {listed_emails(self.users) or 'none'})")

    def resolve(self, relative: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        candidate = Path(relative).expanduser()
        return candidate if candidate.is_absolute() else self.folder / candidate


def _loopback(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1", "[::1]") or host.startswith("127.")


def config_warnings(config: Config) -> list[str]:
    """What works but will hurt in production, each with what to change."""
    found = []
    secret = config.feedback.secret
    if not secret:
        found.append(f"${config.feedback.secret_env} is not set: feedback links cannot be signed "
                     "(needed by serve, run and digest send)")
    elif secret == EXAMPLE_SECRET:
        found.append(f"${config.feedback.secret_env} is the example value; choose a random secret")
    elif len(secret) < 16:
        found.append(f"${config.feedback.secret_env} is shorter than 16 characters: serve, run and digest send "
                     "refuse it; use a long random secret")
    smtp = config.smtp
    if smtp.username and not smtp.password:
        found.append(f"${smtp.password_env} is not set but smtp.username is: sending will fail")
    if parseaddr(smtp.sender)[1].lower().endswith("@example.org"):
        found.append(f"smtp.from is the example sender ({smtp.sender}): set your own address, in a domain "
                     "your mail server may send for")
    scheme, _, rest = config.feedback.base_url.partition("://")
    host = rest.split("/")[0].rsplit(":", 1)[0] if not rest.startswith("[") else rest.split("]")[0] + "]"
    if scheme == "http" and not _loopback(host):
        found.append(f"feedback.base_url is {config.feedback.base_url}: one-click unsubscribe (RFC 8058) and "
                     "mail providers need https:// links; serve it behind TLS and use https://")
    for i, user in enumerate(config.users):
        if not user.email.isascii():
            found.append(f"users[{i}].email {user.email}: an international address; it is delivered only "
                         "through a mail server that offers SMTPUTF8")
    used = {u.webhook for u in config.users if "webhook" in u.channels}
    for i, hook in enumerate(config.webhooks):
        if not hook.url:
            found.append(f"webhooks[{i}] {hook.name}: ${hook.url_env} is not set: "
                         + ("its posts will fail" if hook.name in used else "no reader uses it yet"))
    return found


def masked_url(url: str) -> str:
    """A database URL fit to print: its password replaced by ***."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)
