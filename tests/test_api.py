"""The Python API (docs/API.md) against a real SQLite file in tmp_path: the manual's example
runs, and each method returns what it says, refitting after a change by itself."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import event
from test_lookup import Answer, RecordedApi, _cassette, api  # noqa: F401  (api: the recorded arXiv API fixture)

from recommender import Recommender, pipeline
from recommender.base.config import load_config
from recommender.base.errors import ConfigError, NotFoundError, RecommenderError
from recommender.store import Store

from conftest import REPO, SEEDS, write_config

pytestmark = pytest.mark.fast

USERS = """
[[users]]
email = "ada@example.org"
name = "Ada"

[[users]]
email = "bob@example.org"
"""


def _create_database(config: Path) -> None:
    store = Store.open(load_config(config).database.url)
    store.upgrade_schema()
    store.close()


@pytest.fixture
def rec(tmp_path: Path) -> Recommender:
    """An install in tmp_path (the current folder): the seeds ingested, nobody starred yet."""
    config = write_config(tmp_path, USERS, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    _create_database(config)
    opened = Recommender.open(config)
    opened.ingest(SEEDS)
    yield opened
    opened.close()


def _stored_profile_papers(rec: Recommender, email: str) -> list[str]:
    profile = rec.export_user(email)["profile"]
    return [] if profile is None else [paper_id for paper_id, _weight in profile["papers"]]


def test_the_manuals_example_runs(rec: Recommender, capsys: pytest.CaptureFixture[str]):
    block = re.search(r"```python\n(.*?)```", (REPO / "docs" / "API.md").read_text(encoding="utf-8"), re.S)
    assert block is not None
    rec.star("ada@example.org", [rec.papers()[0].id])
    exec(compile(block.group(1), "docs/API.md", "exec"), {})  # nosec B102  # our own manual's example
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 20 and lines[0].startswith(" 1. [") and lines[1].startswith("    why: ")
    assert lines[-2].startswith("10. [")


def test_importing_the_package_stays_light():
    """The API is imported on first use: `import recommender` loads neither numpy nor the pipeline."""
    probe = "import sys, recommender; print(sorted(m for m in ('numpy', 'recommender.pipeline') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,  # noqa: S603
                          check=True).stdout.strip() == "[]"
    assert Recommender.__module__ == "recommender.pipeline.api"  # what the first use imported


def test_open_refuses_a_missing_config_and_a_url_beside_a_loaded_config(rec: Recommender, tmp_path: Path):
    with pytest.raises(ConfigError, match="config file not found"):
        Recommender.open(tmp_path / "nowhere.toml")
    with pytest.raises(RecommenderError, match="database_url"):
        Recommender.open(rec.config, "sqlite:///other.sqlite")


def test_ingest_again_adds_nothing_and_batches_list_each_file(rec: Recommender):
    again = rec.ingest(SEEDS)
    assert (again.files, again.skipped_files, again.new_papers) == (len(SEEDS), len(SEEDS), 0)
    assert [b.id for b in rec.batches()] == list(range(1, len(SEEDS) + 1))
    assert sum(b.entry_count for b in rec.batches()) == 434


def test_star_refits_the_profile_and_unstar_takes_it_back(rec: Recommender):
    first, second = rec.papers()[:2]
    assert _stored_profile_papers(rec, "ada@example.org") == []
    starred = rec.star("ada@example.org", [first.id, second.id])
    assert (starred.added, starred.already, [p.id for p in starred.papers]) == (2, 0, [first.id, second.id])
    assert sorted(_stored_profile_papers(rec, "ada@example.org")) == sorted([first.id, second.id])
    assert rec.star("ada@example.org", [first.id]).already == 1
    assert [s.paper.id for s in rec.stars("ada@example.org")] == [first.id, second.id]
    assert rec.unstar("ada@example.org", [first.id]) == 1
    assert _stored_profile_papers(rec, "ada@example.org") == [second.id]
    assert rec.unstar("ada@example.org", [first.id]) == 0  # a known paper not starred: nothing to remove
    with pytest.raises(NotFoundError, match="no paper with id 'bogus123'"):
        rec.unstar("ada@example.org", [second.id, "bogus123"])  # a mistyped id: said, and nothing removed
    assert [s.paper.id for s in rec.stars("ada@example.org")] == [second.id]


def test_star_of_a_paper_fetched_from_arxiv_refits_the_models(tmp_path: Path, api: RecordedApi,  # noqa: F811
                                                              monkeypatch: pytest.MonkeyPatch):
    """Starring adds the paper to the corpus: the text model is refit with it, at once."""
    api.answers = [Answer(*_cassette("api-2026-id-list-cassette.json"))]
    monkeypatch.setenv("RECOMMENDER_ARXIV_API_URL", api.url)
    config = write_config(tmp_path, USERS, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    _create_database(config)
    with Recommender.open(config) as rec:
        rec.ingest(SEEDS[:1])
        assert "1707.08567" not in rec.models.text.index
        starred = rec.star("ada@example.org", ["arXiv:1707.08567v1"])
        assert [p.id for p in starred.papers] == ["1707.08567"] and len(api.requests) == 1
        assert "1707.08567" in rec.models.text.index
        assert _stored_profile_papers(rec, "ada@example.org") == ["1707.08567"]


def test_star_by_title_and_refusals(rec: Recommender):
    paper = rec.papers()[5]
    assert [p.id for p in rec.star("ada@example.org", titles=[paper.title]).papers] == [paper.id]
    with pytest.raises(NotFoundError, match="--offline"):
        rec.star("ada@example.org", ["1706.03762"], offline=True)
    with pytest.raises(RecommenderError, match="give paper ids"):
        rec.star("ada@example.org")
    with pytest.raises(ConfigError, match="several users"):
        rec.star(None, [paper.id])


def test_recommend_ranks_the_starred_topic_first_and_explain_adds_up(rec: Recommender):
    starred = rec.papers()[0]
    rec.star("ada@example.org", [starred.id])
    picks = rec.recommend("ada@example.org", limit=5, batch="all")
    assert [p.rank for p in picks] == [1, 2, 3, 4, 5] and starred.id not in {p.paper.id for p in picks}
    assert picks[0].score >= picks[-1].score and starred.display.title in picks[0].explanation.sentence()
    breakdown = rec.explain("ada@example.org", picks[0].paper.id)
    assert breakdown.score == pytest.approx(picks[0].score, abs=1e-5)
    parts = breakdown.content + breakdown.topics + breakdown.collaborative + breakdown.interests
    assert parts == pytest.approx(breakdown.score, abs=1e-5)
    assert breakdown.as_json()["nearest"][0]["paper_id"] == starred.id
    both = rec.recommend_many(limit=2, batch="all")
    assert list(both) == ["ada@example.org", "bob@example.org"] and both["ada@example.org"] == picks[:2]
    with pytest.raises(NotFoundError, match="no batch"):
        rec.recommend("ada@example.org", batch="99")


def test_profile_shows_the_starred_papers_terms(rec: Recommender):
    starred = rec.papers()[0]
    assert rec.profile("bob@example.org").empty
    rec.star("ada@example.org", [starred.id])
    view = rec.profile("ada@example.org", terms=3)
    assert not view.empty and len(view.positive_terms) == 3 and view.positives == [(starred.id, starred.title)]
    assert all(term.lower() in f"{starred.title} {starred.abstract}".lower().replace("-", " ")
               for term, _ in view.positive_terms[:1])


def test_import_library_and_import_stars_star_and_refit(rec: Recommender, tmp_path: Path):
    library = tmp_path / "zotero.csv"
    shutil.copy(REPO / "tests" / "fixtures" / "library" / "zotero-export.csv", library)
    result = rec.import_library("bob@example.org", [library], offline=True)
    assert result.new_stars > 0 and result.added > 0
    assert len(rec.stars("bob@example.org")) == result.new_stars
    assert len(_stored_profile_papers(rec, "bob@example.org")) > 0
    rows = tmp_path / "stars.csv"
    rows.write_text(f"user,paper_id\nada@example.org,{rec.papers()[3].id}\ncy@example.org,x\n", encoding="utf-8")
    with pytest.raises(RecommenderError, match="stars.csv:3: nothing imported"):
        rec.import_stars(rows)
    imported = rec.import_stars(rows, skip_unknown=True)
    assert (imported.lines, imported.added, len(imported.problems)) == (2, 1, 1)
    assert _stored_profile_papers(rec, "ada@example.org") == [rec.papers()[3].id]


def test_fetch_reads_a_folder_source_and_refits(tmp_path: Path):
    drop = tmp_path / "drop"
    drop.mkdir()
    config = write_config(tmp_path, USERS, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                          extra='[[sources]]\nname = "drop"\nkind = "trending_page"\npath = "drop/*.txt"\n')
    _create_database(config)
    shutil.copy(SEEDS[0], drop / SEEDS[0].name)
    with Recommender.open(config) as rec:
        outcomes = rec.fetch()
        assert [(o.source, o.status) for o in outcomes] == [("drop", "new")] and outcomes[0].new_papers > 0
        assert rec.models.text.index and len(rec.models.text.index) == outcomes[0].new_papers
        assert [o.status for o in rec.fetch(["drop"])] == ["unchanged"]
        with pytest.raises(RecommenderError, match="no source named"):
            rec.fetch(["elsewhere"])


def test_preview_send_and_retry(rec: Recommender):
    rec.star("ada@example.org", [rec.papers()[0].id])
    preview = rec.preview("ada@example.org")
    assert preview.papers == 10 and preview.subject.startswith("10 new papers") and b"Subject:" in preview.message
    assert preview.text.startswith("Papers for Ada") and "Unsubscribe" in preview.html
    assert rec.recommend("ada@example.org")[0].paper.display.title in preview.text
    dry = rec.send(dry_run=True)
    assert [(r.email, r.status) for r in dry] == [("ada@example.org", "would send"), ("bob@example.org", "would send")]
    assert rec.users()[0].digests_sent == 0  # a dry run stores nothing
    retried = rec.retry()
    assert (retried.requeued, retried.outcomes, retried.sent) == ([], [], 0)


def test_users_export_forget_and_resubscribe(rec: Recommender):
    rec.star("ada@example.org", [p.id for p in rec.papers()[:3]])
    summaries = rec.users()
    assert [(u.user, u.stars, u.subscribed) for u in summaries] == [("ada@example.org", 3, True),
                                                                   ("bob@example.org", 0, True)]
    assert summaries[0].as_json()["send_at"] == f"{summaries[0].send_at:%H:%M}"
    assert rec.resubscribe("ada@example.org") is False
    assert len(rec.export_user("ada@example.org")["stars"]) == 3
    asked = []
    forgotten = rec.forget_user("ADA@example.org", confirm=lambda: asked.append(True))
    assert (forgotten.stars, forgotten.feedback, forgotten.digests, asked) == (3, 0, 0, [True])
    with pytest.raises(NotFoundError, match="nothing stored for nobody@example.org"):
        rec.forget_user("nobody@example.org", confirm=lambda: asked.append(False))
    assert asked == [True]
    with pytest.raises(ConfigError, match="no \\[\\[users\\]\\] entry"):
        rec.export_user("nobody@example.org")


def test_users_reads_every_readers_stars_in_one_query(tmp_path: Path):
    many = "".join(f'[[users]]\nemail = "r{i}@example.org"\n' for i in range(30))
    config = write_config(tmp_path, many, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    _create_database(config)
    with Recommender.open(config) as rec:
        rec.ingest(SEEDS[:1])
        rec.star("r7@example.org", [rec.papers()[0].id])
        statements: list[str] = []
        event.listen(rec.store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        assert [u.stars for u in rec.users()] == [1 if i == 7 else 0 for i in range(30)]
    assert sum(" stars" in s for s in statements) == 1, statements


def test_papers_search_and_show(rec: Recommender):
    papers = rec.papers()
    assert len(papers) == 374
    word = papers[0].title.split()[0]
    assert papers[0] in rec.search_papers(word)
    assert rec.paper(papers[0].id) == papers[0]
    with pytest.raises(NotFoundError):
        rec.paper("no-such-paper")


def test_close_drops_the_store_and_reopens_on_use(rec: Recommender):
    store = rec.store
    rec.close()
    assert rec.store is not store and len(rec.papers()) == 374


def test_a_ranking_that_refits_stale_readers_tells_on_refit(tmp_path: Path):
    """After an ingest stopped before its refit (Ctrl-C, a crash), the next ranking fits the
    readers' classifiers itself: ``on_refit`` follows it as it follows an ingest's."""
    config = write_config(tmp_path, USERS, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    _create_database(config)
    told: list[tuple[int, int]] = []
    with Recommender(load_config(config), on_refit=lambda done, total: told.append((done, total))) as rec:
        rec.ingest(SEEDS[:2])
        rec.star("ada@example.org", [p.id for p in rec.papers()[:3]])
        assert told and told[-1][0] == told[-1][1]
        told.clear()
        pipeline.ingest_files(rec.store, [SEEDS[2]], "auto", None)  # stored, not refit
        rec.close()
        assert rec.recommend("ada@example.org", limit=3)
        assert told == [(1, 1)]  # the one reader ranked
