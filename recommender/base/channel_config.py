"""Reading the channel keys of the config: ``[[webhooks]]`` and each reader's ``channels`` and
``webhook`` (a part of the config reader, kept apart so each file stays one subject)."""

from __future__ import annotations

import functools
import re
from typing import Any

from recommender.base.config_tables import TableReader
from recommender.base.errors import ConfigError
from recommender.base.settings import (
    CHANNELS,
    WEBHOOK_KINDS,
    Channel,
    UserConfig,
    WebhookConfig,
    WebhookKind,
)
from recommender.base.settings_table import section_keys

# Letters, digits, dots and dashes: a webhook's name is kept in the digests it is owed, and
# matched there with LIKE (where _ and % would be wildcards).
WEBHOOK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,47}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ChannelTables(TableReader):
    def webhooks(self, data: dict[str, Any]) -> tuple[WebhookConfig, ...]:
        raw = data.get("webhooks", [])
        if not isinstance(raw, list):
            self.note(self.fail("webhooks", "an array of tables ([[webhooks]])", raw))
            return ()
        hooks: list[WebhookConfig] = []
        for index, table in enumerate(raw):
            hook = self.guarded(functools.partial(self.webhook, index, table), None)
            if hook is None:
                continue
            if any(h.name == hook.name for h in hooks):
                self.note(ConfigError(f"{self.path}: webhooks[{index}].name: duplicate webhook name {hook.name!r}"))
                continue
            hooks.append(hook)
        return tuple(hooks)

    def webhook(self, index: int, table: Any) -> WebhookConfig:
        prefix = f"webhooks[{index}]"
        if not isinstance(table, dict):
            raise self.fail(prefix, "a table", table)
        self.check_keys(prefix, table, section_keys("webhooks") | {"url"})
        if "url" in table:
            raise ConfigError(f"{self.path}: {prefix}.url: a webhook URL is a secret and does not belong in the "
                              "file; put it in an environment variable named by url_env")
        for key in ("name", "kind", "url_env"):
            if key not in table:
                raise ConfigError(f"{self.path}: {prefix}.{key}: required key is missing")
        name = self.get(prefix, table, "name", str, "")
        if not WEBHOOK_NAME.fullmatch(name):
            raise self.fail(f"{prefix}.name", "a name of letters, digits, dots and dashes (up to 48)", name)
        kind = self.get(prefix, table, "kind", str, "")
        if kind not in WEBHOOK_KINDS:
            raise self.fail(f"{prefix}.kind", " or ".join(WEBHOOK_KINDS), kind)
        url_env = self.get(prefix, table, "url_env", str, "")
        if not ENV_NAME.fullmatch(url_env):
            raise self.fail(f"{prefix}.url_env", "an environment variable name", url_env)
        d = WebhookConfig(name, WebhookKind(kind), url_env)
        numbers = {key: self.positive(prefix, table, key, type(getattr(d, key)), getattr(d, key))
                   for key in ("timeout_seconds", "max_attempts", "retry_initial_seconds", "max_retry_after_seconds",
                               "retry_delay_seconds")}
        return WebhookConfig(name, WebhookKind(kind), url_env, **numbers)

    def user_channels(self, prefix: str, table: dict[str, Any]) -> tuple[tuple[Channel, ...], str]:
        """A reader's (channels, webhook name)."""
        channels = self.strings(prefix, table, "channels") if "channels" in table else (Channel.EMAIL,)
        if not channels:
            raise self.fail(f"{prefix}.channels", "at least one of " + ", ".join(CHANNELS), table.get("channels"))
        for channel in channels:
            if channel not in CHANNELS:
                raise self.fail(f"{prefix}.channels", "a list of " + ", ".join(CHANNELS), channel)
        webhook = self.get(prefix, table, "webhook", str, "")
        return tuple(dict.fromkeys(Channel(c) for c in channels)), webhook

    def check_webhooks_named(self, users: tuple[UserConfig, ...], webhooks: tuple[WebhookConfig, ...]) -> None:
        names = {h.name for h in webhooks}
        for index, user in enumerate(users):
            prefix = f"users[{index}]"
            if "webhook" in user.channels and not user.webhook:
                self.note(ConfigError(f'{self.path}: {prefix}.webhook: channels has "webhook" but no webhook is '
                                      "named (webhook = \"NAME\" of a [[webhooks]] entry)"))
            elif user.webhook and user.webhook not in names:
                self.note(self.fail(f"{prefix}.webhook", "the name of a [[webhooks]] entry ("
                                    + (", ".join(sorted(names)) or "none configured") + ")", user.webhook))
            elif user.webhook and "webhook" not in user.channels:
                self.note(ConfigError(f'{self.path}: {prefix}.webhook: set, but channels has no "webhook" '
                                      f"(channels = {list(user.channels)!r})"))
