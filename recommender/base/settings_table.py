"""Every config key in one table (section, name, type, default, help), as datasette's
``SETTINGS``: the config reader takes the known keys, types and defaults from here,
``scripts/gen_docs.py`` writes README's configuration table from it, and tests/test_docs.py
checks that ``config.example.toml`` and README agree with it.

Types and defaults are read from the frozen dataclasses in ``settings`` (the values the code
uses), so the table adds names and help and cannot disagree with them."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from datetime import time
from enum import Enum
from typing import Any

from recommender.base import settings as s


class _Required:
    """The default of a key that must be given (a reader's email, a source's name)."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Setting:
    section: str  # "ranking" for [ranking]; "users" for each [[users]] table
    name: str  # the key as written in TOML
    type: str  # the TOML type: string, integer, float, boolean, list of strings
    default: Any  # the TOML value a missing key stands for; REQUIRED or None (no value)
    help: str
    choices: tuple[str, ...] = ()
    shown: str = ""  # the default in words, where None stands for a rule (exclude_types)

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


# The sections read as one table ([ranking]) and those read as arrays of tables ([[users]]).
TABLE_SECTIONS = ("database", "ranking", "smtp", "feedback", "lookup", "delivery", "scheduler")
ARRAY_SECTIONS = ("users", "webhooks", "sources")

_HELP: dict[str, dict[str, str]] = {
    "database": {
        "url": "any SQLAlchemy URL; `postgresql+psycopg://...` to scale out (also --database-url, "
               "$RECOMMENDER_DATABASE_URL)",
    },
    "ranking": {
        "title_weight": "a title word counts this many times an abstract word",
        "ngram_max": "1 = single words; 2 = also two-word phrases",
        "min_df": "drop terms seen in fewer papers (ignored below 100 papers)",
        "max_df": "drop terms in more than this share of papers",
        "sublinear_tf": "1 + log(tf): repeated words count less",
        "stem": 'count words by their English stem: "networks" and "networked" are "network" '
                '(explanations show the most frequent word)',
        "interests_weight": "pull of `interests` keywords while a reader has fewer than 5 stars",
        "more_weight": 'pull of a "more like this" click (a star counts 1.0)',
        "less_weight": 'push of a "less like this" click',
        "open_weight": "pull of opening a paper from the digest",
        "star_half_life_days": "> 0: older stars count less (halved every N days); 0 = off",
        "why_terms": "shared terms named in each explanation",
        "collaborative_weight": "weight of what readers with similar stars saved (0 = content only)",
        "collaborative_min_users": "the collaborative part needs this many readers with stars",
        "community": "off: each reader from their own stars alone; on: everyone's stars; auto: on from "
                     "collaborative_min_users readers when readers get no classifier of their own",
        "lsa_dims": "text dimensions used to predict a new paper's reader factors",
        "cf_factors": "reader factors learned from everyone's stars",
        "cf_ridge": "regularisation of the text -> factors regression",
        "cf_word_weight": "weight of a paper's word-vector sum in that regression (0 = LSA alone)",
        "lsa_max_terms": "the most frequent terms feed that projection (bounds memory)",
        "word_dims": "dimensions of the word vectors (from words met in the same papers)",
        "profile_terms": "a profile keeps its strongest terms (bounds memory and time)",
        "interest_boost": "added to the score of a paper matching an `interests` keyword",
        "personal": "a classifier of its own per reader: auto = when the community part is off and at "
                    "most personal_max_users readers have stars; on = always; off = never",
        "personal_max_users": "personal = auto gives classifiers up to this many readers with stars",
        "personal_dims": "LSA dimensions beside the TF-IDF terms of each paper (personal classifiers)",
        "personal_lsa_weight": "weight of those dimensions against the terms",
        "personal_word_weight": "weight of a paper's word-vector sum against the terms",
        "personal_c": "the personal classifier's C (smaller: smoother)",
        "reader_model_weight": "with the community part: weight of each reader's own ridge model over topics and word vectors (0 = off)",
        "reader_model_ridge": "regularisation of those reader models",
        "reader_model_near_groups": "where papers have abstracts: the older papers in this many groups of like topics, "
                                    "a reader model refit with the groups nearest it as harder negatives (0 = off)",
        "term_ridge": "with the community part: a reader's terms weighed by how well they tell the reader's "
                      "papers from the rest (a ridge classifier, this its regularisation; 0 = the sum of their papers' terms)",
    },
    "smtp": {
        "host": "the mail server",
        "port": "the mail server's port (587 for starttls, 465 for tls)",
        "security": "none, starttls or tls",
        "username": "empty: no login",
        "password_env": "environment variable holding the password",  # nosec B105  # help text, not a secret
        "from": "the sender of every digest",
        "timeout_seconds": "connect and send timeout",
        "max_connections": "SMTP connections used at once",
        "max_attempts": "tries for a transient failure before giving up",
        "retry_initial_seconds": "first backoff; doubles per try (capped at 60 s)",
        "retry_delay_seconds": "a digest deferred by a temporary failure waits this long",
        "ca_file": "extra CA certificates (PEM) to trust, e.g. a private relay's",
        "tls_server_name": "name the server's certificate must carry, if not host",
        "allow_plaintext_auth": 'true: allow a login with security = "none" (a relay on this host)',
        "dkim_selector": "DKIM signing (all three, or none): the selector",
        "dkim_domain": "DKIM signing: the signing domain",
        "dkim_key_file": "DKIM signing: the RSA private key (PEM)",
    },
    "feedback": {
        "base_url": "where `recommender serve` is reachable from a reader's mail client (public HTTPS in "
                    "production)",
        "secret_env": "environment variable holding the link-signing key",  # nosec B105  # help text
        "max_age_days": "feedback links older than this answer 410",
        "rate_limit_per_minute": "per client and serving process on feedback routes; 0 = off",
        "unsubscribe_mailto": "optional mailto: address for List-Unsubscribe",
        "trusted_proxies": "reverse proxies whose X-Forwarded-For is believed, e.g. [\"127.0.0.1\"]",
        "max_connections": "open connections at once; more are answered 503",
        "max_connections_per_client": "of them from one address (an IPv6 /64; not a trusted proxy); 0 = no cap",
        "request_timeout_seconds": "a request not received whole by then is closed",
    },
    "lookup": {
        "arxiv_api_url": "where papers named only by an arXiv id are looked up ($RECOMMENDER_ARXIV_API_URL "
                         "overrides it)",
        "timeout_seconds": "timeout of one lookup request",
        "attempts": "tries of a request that failed for a temporary reason",
        "retry_wait_seconds": "wait before the first retry (arXiv asks for 3 s between requests)",
        "max_bytes": "larger answers are refused",
    },
    "delivery": {
        "mode": "direct: `run` sends; queue: `run` says who is due, `worker`s build and send",
        "keep_days": "a sent digest's message (and its papers' reasons) is deleted this many days after it was "
                     "made; which papers it held stays, so none is sent twice",
    },
    "scheduler": {
        "misfire_grace_minutes": "a digest missed by less than this is sent late, once",
        "fetch_freshness_minutes": "sources fetched more recently are not fetched again",
        "fetch_timeout_seconds": "timeout of one source request",
        "fetch_max_bytes": "larger responses are refused",
        "fetch_attempts": "tries for a timeout or 5xx before the source fails",
    },
    "users": {
        "email": "the key for this reader's stars and history",
        "name": "shown in the digest's greeting",
        "timezone": "IANA zone for send_at",
        "send_at": "local time of the digest (HH:MM)",
        "frequency": "daily or weekly",
        "weekday": "the day of a weekly digest",
        "max_items": "papers per digest (recommend --limit overrides)",
        "min_score": "inclusive score threshold",
        "interests": "cold-start keywords before any star",
        "exclude": "keywords that drop a paper",
        "authors": "followed authors: their new papers are always shown",
        "stars": "papers (ids, arXiv ids or exact titles) starred by `star --from-config`",
        "channels": "where the digest goes: email, feed (a private Atom feed), webhook (README: Channels)",
        "webhook": 'with channel "webhook": a [[webhooks]] name; readers naming one share one post per run',
        "topics": "the reader's topics, [[users.topics]] tables: name (required, 1-64 characters), interests, "
                  "exclude, authors, max_items, min_score (README: Topics)",
    },
    "webhooks": {
        "name": "letters, digits, dots and dashes; what readers' `webhook` names",
        "kind": "slack, discord or json (README: Channels)",
        "url_env": "environment variable holding the webhook's URL (a secret)",
        "timeout_seconds": "timeout of one post",
        "max_attempts": "tries within a run for 5xx answers and timeouts",
        "retry_initial_seconds": "first wait between them (doubled each time)",
        "max_retry_after_seconds": "a longer 429 Retry-After defers the post to a later run",
        "retry_delay_seconds": "how long a deferred post waits",
    },
    "sources": {
        "name": "the source's name in logs, `fetch --source` and `config check`",
        "kind": "the format (README: Sources): " + ", ".join(("arxiv", "biorxiv", "medrxiv", "feed", "hf_daily", "jsonl",
                                            "trending_page")),
        "path": "a glob of files dropped into a folder (or url)",
        "url": "the address fetched (or path)",
        "include_replacements": "arxiv, biorxiv, medrxiv: later versions of a paper count as new",
        "categories": "arxiv: category codes (e.g. [\"cs.LG\", \"stat.ML\"]) instead of url, checked against arXiv's taxonomy; biorxiv/medrxiv: subjects kept; [] = every subject",
        "days": "biorxiv/medrxiv: days back a fetch covers, today included (1-31)",
        "exclude_titles": "feed: regular expressions (case ignored) on item titles to drop",
        "exclude_types": "feed: dc:type / PRISM section values dropped",
    },
}

_DATACLASSES: dict[str, type] = {
    "ranking": s.RankingConfig, "smtp": s.SmtpConfig, "feedback": s.FeedbackConfig, "lookup": s.LookupConfig,
    "delivery": s.DeliveryConfig, "scheduler": s.SchedulerConfig, "users": s.UserConfig,
    "webhooks": s.WebhookConfig, "sources": s.SourceConfig,
}
_TOML_NAMES = {("smtp", "sender"): "from"}  # a field whose TOML key is a Python keyword
# Defaults the dataclasses leave open (a field without one) or that the reader fills in.
_DEFAULTS: dict[str, Any] = {
    "database.url": "sqlite:///db/recommender.sqlite", "users.email": REQUIRED, "webhooks.name": REQUIRED,
    "webhooks.kind": REQUIRED, "webhooks.url_env": REQUIRED, "sources.name": REQUIRED, "sources.kind": REQUIRED,
}
_SHOWN = {"sources.exclude_types": "news, editorials and the like", "users.min_score": "none (no threshold)"}
_CHOICES: dict[str, tuple[str, ...]] = {
    "ranking.community": tuple(s.CommunityMode), "ranking.personal": tuple(s.PersonalMode),
    "smtp.security": tuple(s.SmtpSecurity), "delivery.mode": tuple(s.DeliveryMode),
    "users.frequency": ("daily", "weekly"), "users.weekday": s.WEEKDAYS, "users.channels": tuple(s.Channel),
    "webhooks.kind": tuple(s.WebhookKind),
}


def _toml_value(value: Any) -> Any:
    """A dataclass default as it is written in TOML."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_toml_value(v) for v in value]
    if isinstance(value, time):
        return value.strftime("%H:%M")
    return value


def _type_of(annotation: str, default: Any) -> str:
    if "TopicConfig" in annotation:
        return "array of tables"
    if "tuple" in annotation:
        return "list of strings"
    if "float" in annotation:
        return "float"
    for python, toml in (("bool", "boolean"), ("int", "integer")):
        if annotation == python:
            return toml
    return "string"


def _settings() -> tuple[Setting, ...]:
    table: list[Setting] = []
    for section in (*TABLE_SECTIONS, *ARRAY_SECTIONS):
        helps = _HELP[section]
        if section == "database":
            table.append(Setting("database", "url", "string", _DEFAULTS["database.url"], helps["url"]))
            continue
        for f in fields(_DATACLASSES[section]):
            name = _TOML_NAMES.get((section, f.name), f.name)
            key = f"{section}.{name}"
            if key in _DEFAULTS:
                default = _DEFAULTS[key]
            else:
                default = _toml_value(f.default if f.default is not MISSING else f.default_factory())  # type: ignore[misc,operator]
            table.append(Setting(section, name, _type_of(str(f.type), default), default, helps.get(name, ""),
                                 _CHOICES.get(key, ()), _SHOWN.get(key, "")))
    return tuple(table)


SETTINGS: tuple[Setting, ...] = _settings()
SECTIONS = TABLE_SECTIONS + ARRAY_SECTIONS
TOML_TYPES: dict[str, type] = {"string": str, "integer": int, "float": float, "boolean": bool, "list of strings": list,
                               "array of tables": list}


def section_keys(section: str) -> set[str]:
    """The keys a section accepts."""
    return {setting.name for setting in SETTINGS if setting.section == section}


def setting(key: str) -> Setting:
    """One setting by its dotted key, ``ranking.personal_c``."""
    section, _, name = key.partition(".")
    for candidate in SETTINGS:
        if candidate.section == section and candidate.name == name:
            return candidate
    raise KeyError(key)
