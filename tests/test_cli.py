"""Every command through CliRunner on a real SQLite file in tmp_path."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from conftest import Invoke, write_config

TAROT = "TAROT: Targeted Data Selection via Optimal Transport"


@pytest.fixture
def ready(run: Invoke, seeds: list[Path]) -> Invoke:
    run("init")
    run("ingest", "--date", "2025-03-20", *map(str, seeds))
    return run


def _db_digest(tmp_path: Path) -> str:
    """A fingerprint of everything stored (row dumps), to prove a failure changed nothing."""
    import sqlite3

    conn = sqlite3.connect(tmp_path / "db" / "recommender.sqlite")
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
    digest = hashlib.sha256()
    for table in tables:
        for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1"):  # noqa: S608 - table names from sqlite_master
            digest.update(repr(row).encode())
    conn.close()
    return digest.hexdigest()


def test_init_twice_and_ingest_summary(run: Invoke, seeds: list[Path], tmp_path: Path):
    assert "database created" in run("init").stdout
    assert "already up to date" in run("init").stdout
    result = run("ingest", "--date", "2025-03-20", *map(str, seeds))
    assert "434 entries, 374 new papers, 60 duplicates" in result.stderr
    assert result.stdout == ""
    again = run("ingest", *map(str, seeds))
    assert "5 already ingested" in again.stderr and "0 new papers" in again.stderr
    batches = [json.loads(line) for line in run("batches", "--json").stdout.splitlines()]
    assert [b["entries"] for b in batches] == [98, 91, 79, 92, 74]
    assert batches[0]["date"] == "2025-03-11"


def test_commands_before_init_say_so(run: Invoke):
    result = run("papers", "list", code=1)
    assert result.stderr.startswith("Error: ") and "recommender init" in result.stderr


def test_papers_list_search_show(ready: Invoke):
    lines = ready("papers", "list", "--json").stdout.splitlines()
    assert len(lines) == 374
    record = json.loads(lines[0])
    assert {"id", "title", "abstract", "authors", "url"} <= set(record)
    found = [json.loads(line) for line in ready("papers", "search", "optimal transport", "--json").stdout.splitlines()]
    assert any(p["title"] == TAROT for p in found)
    tarot = next(p for p in found if p["title"] == TAROT)
    shown = ready("papers", "show", tarot["id"]).stdout
    assert TAROT in shown and "We propose TAROT" in shown
    assert ready("papers", "show", "nope", code=1).stderr.startswith("Error: no paper with id 'nope'")


def test_star_by_id_title_and_fuzzy_title(ready: Invoke):
    tarot_id = json.loads(ready("papers", "search", "TAROT", "--json").stdout.splitlines()[0])["id"]
    ready("star", "--title", TAROT)
    ready("star", "--title", "zip fit embedding free data selection via compression based alignment")
    assert "1 already starred" in ready("star", tarot_id).stderr
    starred = [json.loads(line) for line in ready("stars", "--json").stdout.splitlines()]
    assert {s["id"] for s in starred} >= {tarot_id}
    assert len(starred) == 2 and all(s["user"] == "ada@example.org" for s in starred)
    ambiguous = ready("star", "--title", "data selection", code=1).stderr
    assert ambiguous.startswith("Error: ") and ("several papers match" in ambiguous or "no paper titled" in ambiguous)
    ready("unstar", tarot_id)
    assert len(ready("stars", "--json").stdout.splitlines()) == 1


def test_recommend_json_and_text(ready: Invoke):
    ready("star", "--title", TAROT)
    lines = ready("recommend", "--limit", "5", "--json").stdout.splitlines()
    assert len(lines) == 5
    recs = [json.loads(line) for line in lines]
    assert {"user", "paper_id", "title", "abstract", "score", "why"} <= set(recs[0])
    assert recs[0]["user"] == "ada@example.org"
    assert all(r["title"] != TAROT for r in recs)
    assert [r["score"] for r in recs] == sorted((r["score"] for r in recs), reverse=True)
    assert "optimal transport" in recs[0]["title"].lower() or "data selection" in recs[0]["title"].lower()
    assert TAROT in recs[0]["why"]
    text = ready("recommend").stdout
    assert text.count("why:") == 10  # max_items default


def test_recommend_cold_start_is_source_order(ready: Invoke, tmp_path: Path):
    recs = [json.loads(line) for line in ready("recommend", "--batch", "1", "--limit", "3", "--json").stdout.splitlines()]
    assert recs[0]["title"] == TAROT and all(r["score"] == 0 for r in recs)
    assert "not personalized" in recs[0]["why"].lower()


def test_several_users_need_a_choice(tmp_path: Path, seeds: list[Path], run: Invoke):
    config = write_config(tmp_path, users="""
    [[users]]
    email = "ada@example.org"
    [[users]]
    email = "bob@example.org"
    interests = ["protein"]
    """)
    run("init", config=config)
    run("ingest", *map(str, seeds), config=config)
    error = run("recommend", config=config, code=2).stderr
    assert "ada@example.org" in error and "bob@example.org" in error and "--user" in error
    both = [json.loads(line) for line in run("recommend", "--all-users", "--limit", "2", "--json", config=config).stdout.splitlines()]
    assert {r["user"] for r in both} == {"ada@example.org", "bob@example.org"}
    run("recommend", "--user", "carol@example.org", config=config, code=2)


def test_stars_import_csv_and_jsonl(ready: Invoke, tmp_path: Path):
    ids = [json.loads(line)["id"] for line in ready("papers", "list", "--json").stdout.splitlines()[:3]]
    csv_file = tmp_path / "stars.csv"
    csv_file.write_text("user,paper_id\n" + "".join(f"ada@example.org,{i}\n" for i in ids[:2]))
    assert "imported 2 new star(s)" in ready("stars", "import", str(csv_file)).stderr
    bad = tmp_path / "stars.jsonl"
    bad.write_text(json.dumps({"user": "ada@example.org", "paper_id": ids[2]}) + "\n"
                   + json.dumps({"user": "ada@example.org", "paper_id": "missing"}) + "\n")
    before = _db_digest(tmp_path)
    error = ready("stars", "import", str(bad), code=1).stderr
    assert f"{bad}:2" in error and "unknown paper id 'missing'" in error
    assert _db_digest(tmp_path) == before
    result = ready("stars", "import", "--skip-unknown", str(bad))
    assert "imported 1 new star(s)" in result.stderr and f"{bad}:2" in result.stderr
    assert len(ready("stars", "--json").stdout.splitlines()) == 3


def test_import_bibtex_matches_and_adds(ready: Invoke, tmp_path: Path):
    bib = tmp_path / "lib.bib"
    bib.write_text("""
@article{tarot, title = {{TAROT}: Targeted Data Selection via Optimal Transport},
  author = {Feng, Lan and Nie, Fan}, year = {2024}}
@misc{other, title = {A Paper Not In The Digests}, author = {Doe, Jane},
  eprint = {2401.00001v2}, archivePrefix = {arXiv}}
""")
    result = ready("import-bibtex", "--offline", str(bib))
    assert "2 imported, 1 matched stored papers, 1 added, 0 skipped, 2 new star(s)" in result.stderr
    starred = {json.loads(line)["title"] for line in ready("stars", "--json").stdout.splitlines()}
    assert starred == {TAROT, "A Paper Not In The Digests"}
    shown = json.loads(ready("papers", "show", "2401.00001", "--json").stdout)
    assert shown["authors"] == ["Jane Doe"]
    # Imported papers are not new digest entries.
    latest = [json.loads(line)["paper_id"] for line in ready("recommend", "--batch", "all", "--limit", "400", "--json").stdout.splitlines()]
    assert "2401.00001" not in latest
    broken = tmp_path / "broken.bib"
    broken.write_text("@article{x, title = {unclosed\n")
    failed = ready("import-bibtex", "--offline", str(broken), code=1)
    assert failed.stderr.startswith(f"Error: {broken}: nothing could be read ({broken}:1: an entry is not closed")
    mixed = tmp_path / "mixed.bib"
    mixed.write_text("@misc{good, title = {A Readable Entry}}\n\n@article{bad, title = {unclosed\n")
    partial = ready("import-bibtex", "--offline", str(mixed))
    assert f"warning: {mixed}:3: an entry is not closed" in partial.stderr and "1 imported" in partial.stderr
    strict = ready("import-bibtex", "--offline", "--strict", str(mixed), code=1)
    assert strict.stderr.startswith(f"Error: {mixed}:3: an entry is not closed") and "nothing was imported" in strict.stderr


def test_star_from_config(tmp_path: Path, seeds: list[Path], run: Invoke):
    config = write_config(tmp_path, users=f"""
    [[users]]
    email = "ada@example.org"
    stars = ["{TAROT}"]
    """)
    run("init", config=config)
    run("ingest", *map(str, seeds), config=config)
    assert TAROT in run("star", "--from-config", config=config).stdout


@pytest.mark.parametrize("content", [
    os.urandom(2048) + b"\xff",
    b"",
    b'{"title": "ok", "abstract": "fine"}\n{"title": "trunc',
    b"Mar 11\n\nTitle\n\nAbstract\n\nDangling\n",
])
def test_bad_input_gives_one_line_and_leaves_the_database_unchanged(ready: Invoke, tmp_path: Path, content: bytes):
    bad = tmp_path / "bad.input"
    bad.write_bytes(content)
    before = _db_digest(tmp_path)
    result = ready("ingest", str(bad), code=1)
    assert result.stderr.startswith(f"Error: {bad}")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert _db_digest(tmp_path) == before


def test_broken_config_is_one_line_exit_2(run: Invoke, tmp_path: Path):
    broken = tmp_path / "broken.toml"
    broken.write_text('[[users]]\nemail = "ada@example.org"\nmax_items = [\n')
    result = run("papers", "list", config=broken, code=2)
    assert result.stderr.startswith(f"Error: {broken}:") and len(result.stderr.strip().splitlines()) == 1


def test_config_check_reports_missing_secret(run: Invoke, monkeypatch: pytest.MonkeyPatch):
    assert "OK: 1 user(s)" in run("config", "check").stdout
    monkeypatch.delenv("RECOMMENDER_SECRET")
    assert "RECOMMENDER_SECRET is not set" in run("config", "check").stdout


def test_missing_file_and_directory(ready: Invoke, tmp_path: Path):
    assert "no such file" in ready("ingest", str(tmp_path / "nope.txt"), code=1).stderr
    assert "is a directory" in ready("ingest", str(tmp_path), code=1).stderr


def test_jobs_caps_the_processes_a_command_works_in(ready: Invoke):
    from recommender.base import parallel

    assert "--jobs" in ready("--jobs", "0", "recommend", code=2).stderr
    one = ready("--jobs", "1", "recommend", "--limit", "5", "--json").stdout
    assert parallel.jobs() == 1 and not parallel.can_fork()
    assert ready("--jobs", "3", "recommend", "--limit", "5", "--json").stdout == one
    assert parallel.jobs() == 3
