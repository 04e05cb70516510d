"""Parsers on the seed pages and on handmade bad input."""

from __future__ import annotations

import inspect
import os
from datetime import date, datetime
from pathlib import Path

import pytest

from recommender.base.config import load_config
from recommender.base.errors import ConfigError, InputError
from recommender.base.formats import DIGEST_FORMATS, LIBRARY_FORMATS, DigestFormat, LibraryFormat
from recommender.base.text import title_key
from recommender.sources import detect_format, library_reader, parse, reader

from conftest import SEEDS

EXPECTED_ENTRIES = [98, 91, 79, 92, 74]


def test_seed_pages_parse_exactly():
    counts, keys = [], set()
    for seed in SEEDS:
        batch = parse(seed.read_bytes(), str(seed), year_hint=date(2025, 1, 1))
        assert batch.format == "trending_page"
        counts.append(len(batch.entries))
        for entry in batch.entries:
            assert entry.title and "\n" not in entry.title and entry.title == entry.title.strip()
            assert len(entry.abstract) > 100
            keys.add(title_key(entry.title))
    assert counts == EXPECTED_ENTRIES
    assert sum(counts) == 434
    assert len(keys) == 374


def test_seed_first_entry_and_latex_kept_as_given():
    batch = parse(SEEDS[0].read_bytes(), str(SEEDS[0]), year_hint=date(2025, 6, 1))
    first = batch.entries[0]
    assert first.title == "TAROT: Targeted Data Selection via Optimal Transport"
    assert first.abstract.startswith("We propose TAROT, a targeted data selection framework")
    assert batch.batch_date == date(2025, 3, 11)
    assert any("DNAS~wu2018mixed" in e.abstract for e in batch.entries)  # residue kept in storage


def test_year_from_modification_time_is_most_recent_not_after(tmp_path: Path):
    page = tmp_path / "page.txt"
    page.write_bytes(SEEDS[0].read_bytes())  # date line "Mar 11"
    early = datetime(2026, 2, 1, 12, 0).timestamp()
    os.utime(page, (early, early))
    batch = parse(page.read_bytes(), str(page), modified=datetime.fromtimestamp(early))
    assert batch.batch_date == date(2025, 3, 11)
    late = datetime(2026, 3, 11, 9, 0)
    assert parse(page.read_bytes(), str(page), modified=late).batch_date == date(2026, 3, 11)


def test_detect_formats():
    assert detect_format(SEEDS[0].read_bytes(), "x") == "trending_page"
    assert detect_format(b'{"title": "a"}\n', "x") == "jsonl"
    assert detect_format(b"  \n[{}]", "x") == "hf_daily"
    assert detect_format(b"<?xml version='1.0'?><rss/>", "x") == "feed"
    assert detect_format(b"<?xml version='1.0'?><rss><channel><link>http://arxiv.org/</link></channel></rss>",
                         "x") == "arxiv"
    assert detect_format(b'{"messages": [], "collection": []}', "x") == "biorxiv"


def test_every_registered_format_has_its_reader():
    """The registry is the one list: each name there resolves to a module that conforms to its
    kind's Protocol, function names and parameters alike."""
    for name, module, protocol in ([(n, reader(n), DigestFormat) for n in DIGEST_FORMATS]
                                   + [(n, library_reader(n), LibraryFormat) for n in LIBRARY_FORMATS]):
        assert isinstance(module, protocol), name
        for function in ("looks_like", "read"):
            wanted = list(inspect.signature(getattr(protocol, function)).parameters)[1:]  # without self
            assert list(inspect.signature(getattr(module, function)).parameters) == wanted, (name, function)


@pytest.mark.parametrize("kind", [*DIGEST_FORMATS, "rss"])
def test_config_accepts_exactly_the_registered_source_kinds(tmp_path: Path, kind: str):
    path = tmp_path / "config.toml"
    path.write_text(f'[[sources]]\nname = "x"\nkind = "{kind}"\npath = "a/*"\n', encoding="utf-8")
    if kind in DIGEST_FORMATS:
        assert load_config(path).sources[0].kind == kind
    else:
        with pytest.raises(ConfigError, match=r"sources\[0\]\.kind: .*one of " + ", ".join(DIGEST_FORMATS)):
            load_config(path)


@pytest.mark.parametrize("data, message, line", [
    (b"", "empty file", None),
    (b"\n\n   \n", "empty file", None),
    (bytes(range(128, 256)) * 4 + b"\nmore", "not valid UTF-8", 1),
    (b"Mar 11\n\nfine\n\x00\x01binary\n", "NUL byte", 4),
    (b"just some words\nwith no structure\n", "not a known digest format", None),
])
def test_bad_files_fail_with_a_clear_line(data, message, line):
    with pytest.raises(InputError) as info:
        parse(data, "bad.txt")
    assert message in str(info.value)
    assert info.value.line == line
    assert "\n" not in str(info.value)


def test_trending_page_title_without_abstract_names_its_line():
    data = b"new\n\nMar 11\n\nA title\n\nAn abstract that is long enough.\n\nDangling title\n"
    with pytest.raises(InputError) as info:
        parse(data, "page.txt", year_hint=date(2025, 1, 1))
    assert info.value.line == 9
    assert "title without an abstract" in str(info.value)


def test_jsonl_fields_and_ids():
    data = (b'{"id": "p1", "title": "Line\\none\\tand\\rmore", "abstract": "A", "authors": ["X Y", "Z W"],'
            b' "url": "https://arxiv.org/abs/2401.01234v3"}\n'
            b'\n'
            b'{"title": "", "abstract": "only an abstract", "authors": "A B and C D"}\n')
    batch = parse(data, "f.jsonl")
    first, second = batch.entries
    assert first.title == "Line one and more"
    assert first.source_id == "p1" and first.arxiv_id == "2401.01234"
    assert first.authors == ("X Y", "Z W")
    assert second.title == "" and second.authors == ("A B", "C D") and second.line == 3


@pytest.mark.parametrize("data, line, message", [
    (b'{"title": "ok", "abstract": "x"}\n{"title": "trunc', 2, "not valid JSON"),
    (b'{"title": "ok"}\n[1, 2]\n', 2, "expected a JSON object"),
    (b'{"title": "ok"}\n{"title": "", "abstract": ""}\n', 2, "non-empty 'title' or 'abstract'"),
    (b'{"title": "ok"}\n{"title": "caf\xe9"}\n', 2, "not valid UTF-8"),
    (b'{"title": 5}\n', 1, "field 'title'"),
])
def test_jsonl_bad_lines(data, line, message):
    with pytest.raises(InputError) as info:
        parse(data, "f.jsonl")
    assert info.value.line == line and message in str(info.value)
    assert str(info.value).startswith(f"f.jsonl:{line}: ")
