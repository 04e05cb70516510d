"""Config loading: defaults, validation messages naming file and key, precedence."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from recommender.base.config import ConfigErrors, find_config_path, load_config
from recommender.base.errors import ConfigError

from conftest import REPO


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_only_a_user_email_is_required_and_defaults_apply(tmp_path: Path):
    config = load_config(_write(tmp_path, '[[users]]\nemail = "a@b.org"\n'))
    user = config.users[0]
    assert (user.max_items, user.frequency, user.send_at, user.timezone, user.min_score) == (10, "daily", time(7, 30), "UTC", None)
    assert config.database.url == f"sqlite:///{tmp_path / 'db' / 'recommender.sqlite'}"
    assert config.smtp.port == 587 and config.smtp.security == "starttls"
    assert config.feedback.max_age_days == 90 and config.feedback.rate_limit_per_minute == 600


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "c.toml"
    path.write_text('[database]\nurl = "sqlite:///data/x.sqlite"\n[[users]]\nemail = "a@b.org"\n')
    config = load_config(path)
    assert config.database.url == f"sqlite:///{tmp_path / 'sub' / 'data' / 'x.sqlite'}"
    assert config.resolve("inbox/*.txt") == tmp_path / "sub" / "inbox" / "*.txt"


@pytest.mark.parametrize("text, fragment", [
    ('[[users]]\nname = "x"\n', "users[0].email: required key is missing"),
    ('[[users]]\nemail = "a@b.org"\nmax_items = "ten"\n', "users[0].max_items: expected a positive integer, got 'ten'"),
    ('[[users]]\nemail = "a@b.org"\nmax_items = 0\n', "users[0].max_items: expected an integer from 1 to 1000"),
    ('[[users]]\nemail = "a@b.org"\ntimezone = "Mars/Base"\n', "users[0].timezone"),
    ('[[users]]\nemail = "a@b.org"\nsend_at = "25:00"\n', "users[0].send_at: expected a time HH:MM"),
    ('[smtp]\nsecurity = "ssl"\n', "smtp.security: expected one of none, starttls, tls, got 'ssl'"),
    ('[smtp]\npassword = "hunter2"\n', "smtp.password: secrets do not belong in the file"),
    ('[ranking]\ntitle_weight = -1\n', "ranking.title_weight: expected a number >= 0"),
    ('[ranking]\nbogus = 1\n', "ranking.bogus: unknown key"),
    ('[[sources]]\nname = "x"\nkind = "rss"\npath = "a"\n', "sources[0].kind"),
    ('[[users]]\nemail = "a@b.org"\n[[users]]\nemail = "A@b.org"\n', "duplicate email"),
    ('[smtp]\nprot = 25\n', "smtp.prot: unknown key (did you mean `port`?)"),
    ('[[sources]]\nname = "x"\ncategories = ["cs.lg"]\n',
     "sources[0].categories: 'cs.lg' is not an arXiv category: did you mean 'cs.LG'? (codes are case-sensitive)"),
    ('[[sources]]\nname = "x"\ncategories = ["stat.ML", "qbio.NC"]\n',
     "sources[0].categories: 'qbio.NC' is not an arXiv category: did you mean 'q-bio.NC'?"),
    ('[[sources]]\nname = "x"\ncategories = []\n', "sources[0].categories: expected arXiv category codes"),
    ('[[sources]]\nname = "x"\nkind = "jsonl"\npath = "a"\ncategories = ["cs.LG"]\n',
     "sources[0].categories: only for kind arxiv or biorxiv or medrxiv (this source is jsonl)"),
    ('[[sources]]\nname = "x"\ncategories = ["cs.LG"]\nurl = "https://rss.arxiv.org/rss/cs.AI"\n',
     "sources[0]: give exactly one of path, url or categories"),
])
def test_bad_values_name_the_file_and_key(tmp_path: Path, text: str, fragment: str):
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    message = str(info.value)
    assert message.startswith(str(tmp_path / "c.toml") + ": ")
    assert fragment in message and "\n" not in message
    assert info.value.exit_code == 2


def test_a_misspelt_key_is_never_offered_a_refused_one(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, '[smtp]\npasswrd = "x"\n'))
    assert "did you mean `password_env`?" in str(info.value)  # not `password`, which is refused
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, '[feedback]\nqqq = 1\n'))
    assert "expected one of base_url, " in str(info.value) and "secret," not in str(info.value)


def test_arxiv_categories_make_one_feed_of_rss_arxiv_org(tmp_path: Path):
    config = load_config(_write(tmp_path, '[[sources]]\nname = "ml"\ncategories = ["cs.LG", "stat.ML", "math-ph"]\n'))
    [source] = config.sources
    assert (source.kind, source.url, source.path) == ("arxiv", "https://rss.arxiv.org/rss/cs.LG+stat.ML+math-ph", "")
    example = load_config(REPO / "config.example.toml")
    assert [(s.name, s.kind, s.url) for s in example.sources if s.kind == "arxiv"] == [
        ("arxiv-ml", "arxiv", "https://rss.arxiv.org/rss/cs.LG+stat.ML")]


def test_syntax_errors_give_the_line_number(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, '[[users]]\nemail = "a@b.org"\nname = \n'))
    assert str(info.value).startswith(f"{tmp_path / 'c.toml'}:3: invalid TOML")


def test_config_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    option, env, default = (_write(tmp_path / d, "") if (tmp_path / d).mkdir() is None else None
                            for d in ("option", "env", "cwd"))
    (tmp_path / "cwd" / "c.toml").rename(tmp_path / "cwd" / "config.toml")
    monkeypatch.chdir(tmp_path / "cwd")
    assert find_config_path(None) == tmp_path / "cwd" / "config.toml"
    monkeypatch.setenv("RECOMMENDER_CONFIG", str(env))
    assert find_config_path(None) == env
    assert find_config_path(str(option)) == option
    with pytest.raises(ConfigError, match="config file not found"):
        find_config_path(str(tmp_path / "missing.toml"))


def test_database_url_override_wins(tmp_path: Path):
    config = load_config(_write(tmp_path, '[database]\nurl = "sqlite:///a.sqlite"\n'), "sqlite:////tmp/other.sqlite")
    assert config.database.url == "sqlite:////tmp/other.sqlite"


def test_messages_naming_the_configured_users_list_a_few_and_count_the_rest(tmp_path: Path):
    users = "".join(f'[[users]]\nemail = "u{i}@example.org"\n' for i in range(8))
    path = tmp_path / "config.toml"
    path.write_text(users, encoding="utf-8")
    config = load_config(path)
    with pytest.raises(ConfigError) as raised:
        config.user("nobody@example.org")
    message = str(raised.value)
    assert "u0@example.org, u1@example.org, u2@example.org, u3@example.org, u4@example.org and 3 more" in message
    assert "u5@example.org" not in message and "\n" not in message


def test_every_mistake_of_a_user_and_of_a_sources_categories_is_told_at_once(tmp_path: Path):
    path = tmp_path / "config.toml"
    path.write_text('[[users]]\nemail = "ada@example.org"\ntimezone = "Europe/Londn"\nsend_at = "7.30"\n'
                    'frequency = "dayly"\n[[sources]]\nname = "ml"\ncategories = ["cs.LGG", "stat.ml"]\n')
    with pytest.raises(ConfigErrors) as raised:
        load_config(path)
    said = "\n".join(raised.value.errors)
    assert len(raised.value.errors) == 5, said
    assert "users[0].timezone: expected an IANA time zone such as Europe/London, got 'Europe/Londn' " \
           "(did you mean Europe/London?)" in said
    assert "users[0].send_at: expected a time HH:MM, got '7.30'" in said
    assert "users[0].frequency: expected daily or weekly, got 'dayly'" in said
    assert "'cs.LGG' is not an arXiv category" in said and "'stat.ml' is not an arXiv category" in said
