"""The manual agrees with the code: every config key has help, and config.example.toml,
README's configuration table and the command reference (README and docs/CLI.md) match the
settings table and the real `--help` output."""

from __future__ import annotations

import difflib
import importlib.util
import re
import tomllib
from dataclasses import fields
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import pytest

from recommender.app.cli import cli
from recommender.base.config import load_config
from recommender.base.settings_table import (
    ARRAY_SECTIONS,
    REQUIRED,
    SECTIONS,
    SETTINGS,
    TABLE_SECTIONS,
    TOML_TYPES,
    section_keys,
    setting,
)
from recommender.base.settings_table import _toml_value as toml_value

from conftest import REPO, Invoke


def _gen_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _example_keys() -> dict[tuple[str, str], str]:
    """(section, key) -> the value text of every key config.example.toml names, the commented-out
    ones (``# webhook = "lab-channel"``) too."""
    found: dict[tuple[str, str], str] = {}
    section = ""
    for line in (REPO / "config.example.toml").read_text(encoding="utf-8").splitlines():
        header = re.match(r"^#?\s*\[\[?([a-z_]+)\]\]?\s*(#.*)?$", line)
        if header:
            section = header.group(1)
            continue
        entry = re.match(r"^#?\s*([a-z_]+)\s*=\s*(.+)$", line)
        if entry and section:
            found.setdefault((section, entry.group(1)), entry.group(2))
    return found


def test_every_setting_has_help_a_known_type_and_a_section():
    for known in SETTINGS:
        assert len(known.help) > 8, f"{known.key} has no help"
        assert known.type in TOML_TYPES, known.key
        assert known.section in SECTIONS, known.key
        assert known.default is REQUIRED or known.default is None or not known.choices \
            or set(known.default if isinstance(known.default, list) else [known.default]) <= set(known.choices)
    assert len({s.key for s in SETTINGS}) == len(SETTINGS)
    assert {"ranking.personal_c", "ranking.personal_lsa_weight", "ranking.personal_word_weight",
            "lookup.retry_wait_seconds", "sources.categories", "sources.days", "sources.exclude_titles",
            "sources.exclude_types", "users.channels", "users.webhook", "webhooks.url_env"} <= {s.key for s in SETTINGS}


def test_the_example_config_is_valid_and_names_every_key_with_its_default():
    config = load_config(REPO / "config.example.toml")
    assert config.users[0].email == "ada@example.org"
    assert config.sources[0].kind == "trending_page"
    example = _example_keys()
    for known in SETTINGS:
        assert (known.section, known.name) in example, f"config.example.toml lacks {known.key}"
        if known.section in TABLE_SECTIONS:  # [[users]] and the like show examples, not defaults
            value = tomllib.loads("value = " + example[known.section, known.name])["value"]
            assert value == known.default, f"config.example.toml: {known.key} = {value!r}, default {known.default!r}"
    unknown = {f"{section}.{key}" for section, key in example if key not in section_keys(section)}
    assert not unknown, f"config.example.toml names keys the reader does not know: {sorted(unknown)}"


def _as_toml(value: Any) -> Any:
    return toml_value(value)


def test_the_reader_fills_in_the_tables_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("RECOMMENDER_ARXIV_API_URL")
    path = tmp_path / "c.toml"
    path.write_text('[[users]]\nemail = "a@b.org"\n[[sources]]\nname = "s"\nkind = "biorxiv"\n'
                    '[[webhooks]]\nname = "w"\nkind = "json"\nurl_env = "W_URL"\n', encoding="utf-8")
    config = load_config(path)
    assert config.database.url == "sqlite:///" + str(tmp_path / setting("database.url").default.removeprefix("sqlite:///"))
    read = {"users": config.users[0], "sources": config.sources[0], "webhooks": config.webhooks[0]}
    read |= {section: getattr(config, section) for section in TABLE_SECTIONS if section != "database"}
    for section, value in read.items():
        for f in fields(value):
            known = setting(f"{section}.{'from' if f.name == 'sender' else f.name}")
            if known.default is not REQUIRED:
                assert _as_toml(getattr(value, f.name)) == known.default, known.key
    assert set(read) | {"database"} == set(TABLE_SECTIONS) | set(ARRAY_SECTIONS)


def test_readme_and_the_command_reference_are_generated_from_the_code():
    gen_docs = _gen_docs()
    for path, text in gen_docs.generated().items():
        stale = list(difflib.unified_diff(path.read_text(encoding="utf-8").splitlines(), text.splitlines(), lineterm=""))
        assert not stale, f"{path.name} is stale: run python scripts/gen_docs.py\n" + "\n".join(stale[:20])
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for known in SETTINGS:
        assert f"| `{known.name}` | {known.type} | {gen_docs.default_text(known).replace('|', chr(92) + '|')} |" in readme


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _all_commands(command, (*prefix, name))


def test_every_command_has_help_with_an_example_and_is_in_the_reference(run: Invoke):
    reference = (REPO / "docs" / "CLI.md").read_text(encoding="utf-8")
    for path, command in _all_commands(cli):
        result = run(*path, "--help")
        assert command.help, path
        if not isinstance(command, click.Group) or getattr(command, "invoke_without_command", False):
            assert "Example:" in result.stdout, f"{' '.join(path)} --help has no example"
        assert f"\n## recommender {' '.join(path)}\n" in reference, f"docs/CLI.md lacks {' '.join(path)}"


def test_make_demo_keeps_its_own_database_as_readme_says():
    """The demo's papers and example reader never land in the database README's own setup
    builds (config.example.toml's url, copied to config.toml)."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe
    demo_url = re.search(r"^DEMO\s*:=.*--database-url (\S+)", makefile, re.MULTILINE)
    assert demo_url
    assert all(line.startswith("\t$(DEMO) ") for line in recipe.group(1).splitlines())
    own_url = tomllib.loads((REPO / "config.example.toml").read_text(encoding="utf-8"))["database"]["url"]
    assert demo_url.group(1) != own_url
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"export RECOMMENDER_DATABASE_URL={demo_url.group(1)}" in readme
