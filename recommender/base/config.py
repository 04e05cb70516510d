"""Read the TOML configuration, apply defaults, validate, return frozen dataclasses.

Every key except ``[[users]].email`` has a default. Relative paths resolve against
the folder of the config file. Secrets are never read from the file: it names the
environment variables that hold them.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
import re
import tomllib
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from recommender.base import config_readers
from recommender.base.channel_config import ChannelTables
from recommender.base.config_sources import SourceTables
from recommender.base.config_topics import TopicReader
from recommender.base.env_names import CONFIG_ENV, DATABASE_URL_ENV, DEFAULT_CONFIG_NAME  # noqa: F401
from recommender.base.errors import ConfigError
from recommender.base.settings import (  # noqa: F401  (the values are read from here too)
    ARXIV_API_URL,
    ARXIV_API_URL_ENV,
    COMMUNITY_MODES,
    EXAMPLE_SECRET,
    EXAMPLE_SENDER,
    HEADER_BOUND,
    PERSONAL_MODES,
    WEEKDAYS,
    Channel,
    CommunityMode,
    Config,
    DatabaseConfig,
    DeliveryConfig,
    DeliveryMode,
    FeedbackConfig,
    LookupConfig,
    PersonalMode,
    RankingConfig,
    SchedulerConfig,
    SmtpConfig,
    SmtpSecurity,
    SourceConfig,
    TopicConfig,
    UserConfig,
    WebhookConfig,
    WebhookKind,
    config_warnings,
    listed_emails,
    masked_url,
)
from recommender.base.settings_table import SECTIONS, SETTINGS, TOML_TYPES, section_keys, setting


class ConfigErrors(ConfigError):
    """Every mistake of a config file: the message is the first (with how many more there are);
    ``errors`` has them all, for ``config check``."""

    def __init__(self, errors: list[str]):
        more = f" (and {len(errors) - 1} more: run 'recommender config check')" if len(errors) > 1 else ""
        super().__init__(errors[0] + more)
        self.errors = list(errors)


def find_config_path(option: str | None) -> Path:
    """Command-line option, then RECOMMENDER_CONFIG, then ./config.toml."""
    chosen = option or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_NAME
    path = Path(chosen).expanduser()
    if not path.is_file():
        hint = "" if option or os.environ.get(CONFIG_ENV) else " (pass --config PATH or set RECOMMENDER_CONFIG)"
        raise ConfigError(f"{path}: config file not found{hint}")
    return path.resolve()


def load_config(path: Path, database_url: str | None = None, readers: bool = True) -> Config:
    """Parse and validate ``path``; ``database_url`` overrides ``[database].url``. Without
    ``readers`` the ``[[users]]`` tables are neither parsed nor checked (a worker reads the
    readers of its shards from the database): ``users`` is empty and ``readers_in_store`` set."""
    if not readers:
        try:
            with path.open(encoding="utf-8") as lines:
                data = tomllib.loads("".join(config_readers.without_readers(lines)))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
            data = None  # parsed whole below, where its error is named
        if data is not None:
            data.pop("users", None)
            return dataclasses.replace(_Parser(path).config(data, database_url), readers_in_store=True)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config file is not valid UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_error(path, exc)) from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: tables or arrays nested too deeply") from None
    return _Parser(path).config(data, database_url)


def _toml_error(path: Path, exc: tomllib.TOMLDecodeError) -> str:
    message = str(exc)
    match = re.search(r"\(at line (\d+), column (\d+)\)", message)
    if match:
        reason = message[: match.start()].strip()
        return f"{path}:{match.group(1)}: invalid TOML: {reason} (column {match.group(2)})"
    return f"{path}: invalid TOML: {message}"


class _Parser(ChannelTables, TopicReader, SourceTables):
    """Turns the TOML dict into typed objects, naming file and key on any mistake. Every mistake
    is collected (a key in error takes its default, a table in error is left out) so that one
    run of ``config check`` reports them all."""

    def config(self, data: dict[str, Any], database_url: str | None) -> Config:
        known = set(SECTIONS)
        for key in data:
            if key not in known:
                self.note(ConfigError(f"{self.path}: {key}: unknown section (expected one of {', '.join(sorted(known))})"))
        users_raw = data.get("users", [])
        if not isinstance(users_raw, list):
            self.note(self.fail("users", "an array of tables ([[users]])", users_raw))
            users_raw = []
        parsed_users: list[UserConfig | None] = [self.guarded(functools.partial(self.user, i, u), None)
                                                 for i, u in enumerate(users_raw)]
        users = tuple(u for u in parsed_users if u is not None)
        seen: set[str] = set()
        for i, user in enumerate(parsed_users):
            if user is None:
                continue
            if user.email.lower() in seen:
                self.note(ConfigError(f"{self.path}: users[{i}].email: duplicate email {user.email!r}"))
            seen.add(user.email.lower())
        sources_raw = data.get("sources", [])
        if not isinstance(sources_raw, list):
            self.note(self.fail("sources", "an array of tables ([[sources]])", sources_raw))
            sources_raw = []
        sources = tuple(s for s in (self.guarded(functools.partial(self.source, i, s), None)
                                    for i, s in enumerate(sources_raw)) if s is not None)
        names = [s.name for s in sources]
        for name in sorted(set(names)):
            if names.count(name) > 1:
                self.note(ConfigError(f"{self.path}: sources: duplicate source name {name!r}"))
        webhooks = self.webhooks(data)
        self.check_webhooks_named(users, webhooks)
        config = Config(
            path=self.path,
            database=self.guarded(lambda: self.database(self.table(data, "database"), database_url),
                                  DatabaseConfig("sqlite:///:memory:")),
            ranking=self.guarded(lambda: self.ranking(self.table(data, "ranking")), RankingConfig()),
            smtp=self.guarded(lambda: self.smtp(self.table(data, "smtp")), SmtpConfig()),
            feedback=self.guarded(lambda: self.feedback(self.table(data, "feedback")), FeedbackConfig()),
            users=users,
            sources=sources,
            scheduler=self.guarded(lambda: self.scheduler(self.table(data, "scheduler")), SchedulerConfig()),
            delivery=self.guarded(lambda: self.delivery(self.table(data, "delivery")), DeliveryConfig()),
            lookup=self.guarded(lambda: self.lookup(self.table(data, "lookup")), LookupConfig()),
            webhooks=webhooks,
        )
        if self.errors:
            raise ConfigErrors(self.errors)
        return config

    def scheduler(self, table: dict[str, Any]) -> SchedulerConfig:
        d = SchedulerConfig()
        self.check_keys("scheduler", table, section_keys("scheduler"))
        return SchedulerConfig(**{
            key: self.positive("scheduler", table, key, type(getattr(d, key)), getattr(d, key))
            for key in SchedulerConfig.__dataclass_fields__
        })

    def lookup(self, table: dict[str, Any]) -> LookupConfig:
        d = LookupConfig()
        self.check_keys("lookup", table, section_keys("lookup"))
        url = os.environ.get(ARXIV_API_URL_ENV) or self.get("lookup", table, "arxiv_api_url", str, d.arxiv_api_url)
        if not re.match(r"^https?://[^/\s]+", url):
            raise self.fail("lookup.arxiv_api_url" + (f" (${ARXIV_API_URL_ENV})" if os.environ.get(ARXIV_API_URL_ENV) else ""),
                            "an http:// or https:// address", url)
        return LookupConfig(
            arxiv_api_url=url,
            timeout_seconds=self.positive("lookup", table, "timeout_seconds", float, d.timeout_seconds),
            attempts=self.positive("lookup", table, "attempts", int, d.attempts),
            retry_wait_seconds=self.positive("lookup", table, "retry_wait_seconds", float, d.retry_wait_seconds),
            max_bytes=self.positive("lookup", table, "max_bytes", int, d.max_bytes),
        )

    def delivery(self, table: dict[str, Any]) -> DeliveryConfig:
        self.check_keys("delivery", table, section_keys("delivery"))
        known = setting("delivery.mode")
        mode = self.get("delivery", table, "mode", str, known.default)
        if mode not in known.choices:
            raise self.fail("delivery.mode", " or ".join(known.choices), mode)
        keep_days = self.positive("delivery", table, "keep_days", int, setting("delivery.keep_days").default)
        return DeliveryConfig(mode=DeliveryMode(mode), keep_days=keep_days)

    def database(self, table: dict[str, Any], override: str | None) -> DatabaseConfig:
        self.check_keys("database", table, section_keys("database"))
        url = override or self.get("database", table, "url", str, setting("database.url").default)
        if "://" not in url:
            raise self.fail("database.url", "an SQLAlchemy URL such as sqlite:///db/recommender.sqlite", url)
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
            relative = url[len("sqlite:///"):]
            url = "sqlite:///" + str(self.path.parent / relative)
        return DatabaseConfig(url=url)

    def ranking(self, table: dict[str, Any]) -> RankingConfig:
        self.check_keys("ranking", table, section_keys("ranking"))
        values: dict[str, Any] = {}
        for known in (s for s in SETTINGS if s.section == "ranking"):
            key, kind = known.name, TOML_TYPES[known.type]  # a mode's Enum is read as its string
            values[key] = self.get("ranking", table, key, kind, known.default)
            if kind in (int, float) and values[key] < 0:
                raise self.fail(f"ranking.{key}", "a number >= 0", values[key])
        if values["ngram_max"] < 1:
            raise self.fail("ranking.ngram_max", "an integer >= 1", values["ngram_max"])
        if values["min_df"] < 1:
            raise self.fail("ranking.min_df", "an integer >= 1", values["min_df"])
        if not 0 < values["max_df"] <= 1:
            raise self.fail("ranking.max_df", "a number in (0, 1]", values["max_df"])
        for mode in ("community", "personal"):
            choices = setting(f"ranking.{mode}").choices
            if values[mode] not in choices:
                raise self.fail(f"ranking.{mode}", " or ".join(choices), values[mode])
        values["community"], values["personal"] = CommunityMode(values["community"]), PersonalMode(values["personal"])
        return RankingConfig(**values)

    def smtp(self, table: dict[str, Any]) -> SmtpConfig:
        self.check_keys("smtp", table, section_keys("smtp"), refused=frozenset({"password"}))
        if "password" in table:
            self.note(ConfigError(f"{self.path}: smtp.password: secrets do not belong in the file; put the "
                                  "password in an environment variable named by smtp.password_env"))
        d = SmtpConfig()
        security = self.get("smtp", table, "security", str, d.security)
        if security not in tuple(SmtpSecurity):
            self.note(self.fail("smtp.security", f"one of {', '.join(SmtpSecurity)}", security))
            security = d.security
        port = self.get("smtp", table, "port", int, d.port, "an integer port")
        if not 0 < port < 65536:
            self.note(self.fail("smtp.port", "a port between 1 and 65535", port))
            port = d.port
        sender = self.get("smtp", table, "from", str, d.sender)
        name, address = parseaddr(sender)
        if not address or "@" not in address or self.address_error(address):
            self.note(self.fail("smtp.from", 'a sender address such as "Paper Digest <digest@example.org>"'
                                + (f" ({self.address_error(address)})" if address and "@" in address else ""), sender))
            sender = d.sender
        values = {
            key: self.positive("smtp", table, key, type(getattr(d, key)), getattr(d, key))
            for key in ("timeout_seconds", "max_connections", "max_attempts", "retry_initial_seconds",
                        "retry_delay_seconds")
        }
        dkim = {key: self.get("smtp", table, key, str, "") for key in ("dkim_selector", "dkim_domain", "dkim_key_file")}
        if any(dkim.values()) and not all(dkim.values()):
            missing = ", ".join(f"smtp.{k}" for k, v in dkim.items() if not v)
            self.note(ConfigError(f"{self.path}: smtp.dkim_*: DKIM signing needs dkim_selector, dkim_domain and "
                                  f"dkim_key_file together (missing: {missing})"))
            dkim = dict.fromkeys(dkim, "")
        dkim["dkim_key_file"] = self.resolve_path(dkim["dkim_key_file"])
        if dkim["dkim_key_file"] and not Path(dkim["dkim_key_file"]).is_file():
            self.note(ConfigError(f"{self.path}: smtp.dkim_key_file: {dkim['dkim_key_file']}: no such file"))
        ca_file = self.resolve_path(self.get("smtp", table, "ca_file", str, ""))
        if ca_file and not Path(ca_file).is_file():
            self.note(ConfigError(f"{self.path}: smtp.ca_file: {ca_file}: no such file"))
        config = SmtpConfig(
            host=self.get("smtp", table, "host", str, d.host),
            port=port,
            security=SmtpSecurity(security),
            username=self.get("smtp", table, "username", str, d.username),
            password_env=self.get("smtp", table, "password_env", str, d.password_env),
            sender=sender,
            ca_file=ca_file,
            tls_server_name=self.get("smtp", table, "tls_server_name", str, ""),
            allow_plaintext_auth=self.get("smtp", table, "allow_plaintext_auth", bool, False),
            **values, **dkim,
        )
        if config.username and config.security == SmtpSecurity.NONE and not config.allow_plaintext_auth:
            self.note(ConfigError(f'{self.path}: smtp.security: "none" with smtp.username would send the password '
                                  'in clear text: use "starttls" or "tls" (or set smtp.allow_plaintext_auth = true '
                                  "for a relay on this host)"))
        del name
        return config

    def feedback(self, table: dict[str, Any]) -> FeedbackConfig:
        self.check_keys("feedback", table, section_keys("feedback"), refused=frozenset({"secret"}))
        if "secret" in table:
            raise ConfigError(f"{self.path}: feedback.secret: secrets do not belong in the file; put it in an environment variable named by feedback.secret_env")
        d = FeedbackConfig()
        base_url = self.get("feedback", table, "base_url", str, d.base_url).rstrip("/")
        if not re.match(r"^https?://[^/\s]+", base_url):
            raise self.fail("feedback.base_url", "an http:// or https:// address", base_url)
        rate = self.at_least_zero("feedback", table, "rate_limit_per_minute", d.rate_limit_per_minute)
        return FeedbackConfig(
            base_url=base_url,
            secret_env=self.get("feedback", table, "secret_env", str, d.secret_env),
            max_age_days=self.positive("feedback", table, "max_age_days", int, d.max_age_days),
            rate_limit_per_minute=rate,
            unsubscribe_mailto=self.mailto(table),
            trusted_proxies=self.proxies(table),
            max_connections=self.positive("feedback", table, "max_connections", int, d.max_connections),
            max_connections_per_client=self.at_least_zero("feedback", table, "max_connections_per_client",
                                                          d.max_connections_per_client),
            request_timeout_seconds=self.positive("feedback", table, "request_timeout_seconds", float,
                                                  d.request_timeout_seconds),
        )

    def mailto(self, table: dict[str, Any]) -> str:
        address = self.get("feedback", table, "unsubscribe_mailto", str, "")
        problem = self.address_error(address) if address else ""
        if problem:
            self.note(self.fail("feedback.unsubscribe_mailto", f"an email address ({problem})", address))
            return ""
        return address

    def proxies(self, table: dict[str, Any]) -> tuple[str, ...]:
        proxies = self.strings("feedback", table, "trusted_proxies")
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                self.note(self.fail("feedback.trusted_proxies", "IP addresses or networks such as 10.0.0.0/8", proxy))
                return ()
        return proxies

    def user(self, index: int, table: Any) -> UserConfig:
        prefix = f"users[{index}]"
        if not isinstance(table, dict):
            raise self.fail(prefix, "a table", table)
        self.check_keys(prefix, table, section_keys("users"))
        if "email" not in table:
            raise ConfigError(f"{self.path}: {prefix}.email: required key is missing")
        email = self.get(prefix, table, "email", str, "").strip()
        problem = self.address_error(email)
        if problem:
            raise self.fail(f"{prefix}.email", f"an email address ({problem})", email)
        d = UserConfig(email=email)
        # Every mistake of the entry is noted before it is refused, not the first alone.
        problems: list[ConfigError] = []
        timezone = self.collected(problems, lambda: self.time_zone(prefix, table, "timezone", d.timezone), d.timezone)
        send_at = self.collected(problems, lambda: self.clock_time(prefix, table, "send_at", d.send_at), d.send_at)
        frequency = self.collected(problems, lambda: self.choice(prefix, table, "frequency", d.frequency,
                                                                 setting("users.frequency").choices), d.frequency)
        weekday = self.collected(problems, lambda: self.get(prefix, table, "weekday", str, d.weekday), d.weekday)
        weekday = weekday.lower()[:3]
        if weekday not in WEEKDAYS:
            problems.append(self.fail(f"{prefix}.weekday", "a weekday such as mon", table.get("weekday")))
        max_items = self.collected(problems, lambda: self.get(prefix, table, "max_items", int, d.max_items,
                                                              "a positive integer"), d.max_items)
        if not 1 <= max_items <= 1000:
            problems.append(self.fail(f"{prefix}.max_items", "an integer from 1 to 1000", max_items))
        min_score = self.collected(problems, lambda: self.get(prefix, table, "min_score", float, None, "a number"), None)
        channels, webhook = self.collected(problems, lambda: self.user_channels(prefix, table), ((), ""))
        self.refuse_all(problems)
        return UserConfig(
            email=email,
            name=self.get(prefix, table, "name", str, ""),
            timezone=timezone,
            send_at=send_at,
            frequency=frequency,
            weekday=weekday,
            max_items=max_items,
            min_score=min_score,
            interests=self.strings(prefix, table, "interests"),
            exclude=self.strings(prefix, table, "exclude"),
            authors=self.strings(prefix, table, "authors"),
            stars=self.strings(prefix, table, "stars"),
            topics=self.topics(prefix, table.get("topics", []), max_items),
            channels=channels,
            webhook=webhook,
        )
