"""Topics: several interest profiles per reader ([[users.topics]]), each ranked with its own
stars and clicks, shown as its own section of one digest; through the CLI, a real SMTP
server, the feedback web app and a database written by the schema before topics."""

from __future__ import annotations

import html as html_text
import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from recommender.base.config import load_config
from recommender.base.domain import Paper, Recommendation
from recommender.pipeline import topics
from recommender.pipeline.web_site import web_app
from recommender.store import Store, migrate
from recommender.store.feedback import FeedbackLog

import browser
from conftest import Invoke, smtp_section, write_config
from smtp_server import SmtpServer

BEFORE_TOPICS = "0012"  # the schema migration 0013 upgrades

TOPICS = """
[[users]]
email = "ada@example.org"
name = "Ada"
max_items = 6

[[users.topics]]
name = "transport"
interests = ["optimal transport"]

[[users.topics]]
name = "language models"
max_items = 2
"""

TRANSPORT = ("TAROT: Targeted Data Selection via Optimal Transport",
             "Performance Scaling via Optimal Transport: Enabling Data Selection from Partially Revealed Sources")
LANGUAGE = ("Self-supervised Preference Optimization: Enhance Your Language Model with Preference Degree Awareness",
            "Predictable Scale: Part I -- Optimal Hyperparameter Scaling Law in Large Language Model Pretraining",
            "GReaTer: Gradients over Reasoning Makes Smaller Language Models Strong Prompt Optimizers")


def _picks(run: Invoke, *args: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in run("recommend", "--batch", "all", "--json", *args).stdout.splitlines()]


def _starred_library(run: Invoke, seeds: list[Path]) -> None:
    run("init")
    run("ingest", *map(str, seeds))
    run("star", "--topic", "transport", *[arg for title in TRANSPORT for arg in ("--title", title)])
    run("star", "--topic", "LANGUAGE MODELS", *[arg for title in LANGUAGE for arg in ("--title", title)])


# -- config ---------------------------------------------------------------------------------------


def test_topics_are_read_in_order_with_their_settings(tmp_path: Path):
    config = load_config(write_config(tmp_path, users=TOPICS + 'exclude = ["quantum"]\nmin_score = 0.1\n'))
    user = config.users[0]
    assert [t.name for t in user.topics] == ["transport", "language models"]
    assert user.topics[0].interests == ("optimal transport",) and user.topics[0].max_items is None
    assert user.topics[1].max_items == 2 and user.topics[1].exclude == ("quantum",)
    assert user.topics[1].min_score == 0.1 and user.topic("Language Models") is user.topics[1]


def test_every_mistake_in_topics_is_reported_by_config_check(tmp_path: Path, run: Invoke):
    (tmp_path / "bad").mkdir()
    bad = write_config(tmp_path / "bad", users="""
        [[users]]
        email = "ada@example.org"
        max_items = 4
        [[users.topics]]
        name = "a"
        max_items = 3
        [[users.topics]]
        name = "A"
        [[users.topics]]
        interests = ["x"]
        [[users.topics]]
        name = "b"
        max_items = 0
        colour = "red"
        [[users.topics]]
        name = "c"
        max_items = 2
        """)
    result = run("config", "check", config=bad, code=2)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert any("users[0].topics[1].name: duplicate topic 'A'" in e for e in errors)
    assert any("users[0].topics[2].name: required key is missing" in e for e in errors)
    assert any("users[0].topics[3].colour: unknown key" in e for e in errors)
    assert any("users[0].topics[3].max_items: expected an integer from 1 to 1000, got 0" in e for e in errors)
    assert any("users[0].topics: their max_items add up to 5, more than the digest's max_items 4" in e for e in errors)
    other = run("recommend", config=bad, code=2)
    assert other.stderr.startswith("Error: ") and "Traceback" not in other.stderr


# -- the store's upgrade --------------------------------------------------------------------------


def test_an_upgrade_keeps_every_star_click_and_outbox_row_untopiced(database_url: str):
    store = Store.open(database_url)
    migrate.upgrade(store.engine, target=BEFORE_TOPICS)
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, email, created_at) VALUES (1, 'a@example.org', '2026-01-01')"))
        for n in range(3):
            conn.execute(text("INSERT INTO papers (id, title_key, title, abstract, authors, url, published, created_at) "
                              "VALUES (:id, :key, :title, 'x', '[]', '', '', '2026-01-01')"),
                         {"id": f"p{n}", "key": f"p{n}", "title": f"p{n}"})
        conn.execute(text("INSERT INTO stars (user_id, paper_id, origin, created_at) VALUES "
                          "(1, 'p0', 'cli', '2026-01-01'), (1, 'p1', 'library', '2026-01-02')"))
        conn.execute(text("INSERT INTO digests (id, user_id, status, message_id, subject, last_batch_id, attempts, "
                          "last_error, server_reply, lease_owner, created_at) VALUES (7, 1, 'pending', '<m@x>', 's', "
                          "1, 0, '', '', '', '2026-01-01')"))
        conn.execute(text("INSERT INTO digest_messages (digest_id, message) VALUES (7, :m)"), {"m": b"kept"})
        conn.execute(text("INSERT INTO digest_entries (digest_id, position, paper_id, score, why) "
                          "VALUES (7, 0, 'p2', 0.5, 'because')"))
        conn.execute(text("INSERT INTO feedback (user_id, paper_id, action, digest_id, token_id, client, created_at) "
                          "VALUES (1, 'p2', 'less', 7, 't1', 'c', '2026-01-03')"))
    assert store.upgrade_schema() == (BEFORE_TOPICS, migrate.HEAD_REVISION)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT paper_id, origin, topic FROM stars ORDER BY paper_id")).all() == [
            ("p0", "cli", None), ("p1", "library", None)]
        assert conn.execute(text("SELECT paper_id, action, topic FROM feedback")).all() == [("p2", "less", None)]
        assert conn.execute(text("SELECT status, subject FROM digests")).all() == [("pending", "s")]
        assert conn.execute(text("SELECT message FROM digest_messages")).scalar_one() == b"kept"
        assert conn.execute(text("SELECT why, topic FROM digest_entries")).all() == [("because", None)]
    before = store.signal_generations([1]) if store.engine.dialect.name == "sqlite" else None
    store.star(1, ["p2"], topic="folding")  # the signal-generation triggers survived the new columns
    if before is not None:
        assert store.signal_generations([1])[1] == before.get(1, 0) + 1
    assert store.star_topics(1) == {"p2": "folding"}
    assert [(s.paper_id, t) for s, t in store.topic_signals(1)] == [("p0", None), ("p1", None), ("p2", "folding"),
                                                                    ("p2", None)]
    store.close()


# -- splitting one digest between topics ----------------------------------------------------------


def test_the_budget_goes_to_fixed_shares_then_evenly():
    assert topics.budgets(10, [None, None]) == [5, 5]
    assert topics.budgets(10, [None, 2, None]) == [4, 2, 4]
    assert topics.budgets(7, [None, None, None]) == [3, 2, 2]
    assert topics.budgets(4, [6, 2]) == [3, 1]  # --limit below the shares: scaled down together
    assert topics.budgets(5, [2, 1]) == [2, 1]


def _ranked(section: str, ids: str, scores: list[float] | None = None) -> list[Recommendation]:
    return [Recommendation("a", Paper(pid, pid, ""), (scores or [1.0] * len(ids))[n], n + 1)
            for n, pid in enumerate(ids)]


def test_a_paper_goes_to_the_topic_where_it_ranks_best_and_the_other_takes_its_next():
    joined = topics.joined(["a", "b"], [_ranked("a", "xyz"), _ranked("b", "wxv")], [2, 2])
    assert [(r.topic, r.paper.id, r.rank) for r in joined] == [("a", "x", 1), ("a", "y", 2), ("b", "w", 3),
                                                                ("b", "v", 4)]
    # Same rank in both: the higher score wins it.
    joined = topics.joined(["a", "b"], [_ranked("a", "xy", [0.2, 0.1]), _ranked("b", "xz", [0.9, 0.1])], [1, 1])
    assert [(r.topic, r.paper.id) for r in joined] == [("a", "y"), ("b", "x")]


def test_a_share_a_topic_cannot_fill_goes_to_the_others():
    joined = topics.joined(["a", "b"], [_ranked("a", "x"), _ranked("b", "pqrs")], [3, 3])
    assert [(r.topic, r.paper.id) for r in joined] == [("a", "x"), ("b", "p"), ("b", "q"), ("b", "r"), ("b", "s")]


def test_each_topic_gets_its_floor_and_the_rest_of_the_digest_goes_by_merit():
    assert topics.floors(50, [None, None], 0.5) == [12, 12]
    assert topics.floors(6, [None, 2], 0.5) == [2, 2]  # a max_items is the section's count
    # Both sections rank the same papers by nearly the same score; "a" owns the best-scored ones.
    ids = "pqrstuvwxyz"
    scores = [1.0 - n / 20 for n in range(len(ids))]
    section_of = {pid: 0 if pid in "pqrstuvw" else 1 for pid in ids}
    ranked = [_ranked("a", ids, scores), _ranked("b", ids, [s - 0.001 for s in scores])]
    picks = topics.interleaved(["a", "b"], ranked, [None, None], 6, 0.5, section_of)
    # "b" is guaranteed one of its even 3 (x, its best), the other 5 go by score: all "a"'s.
    assert [(r.topic, r.paper.id, r.rank) for r in picks] == [
        ("a", "p", 1), ("a", "q", 2), ("a", "r", 3), ("a", "s", 4), ("a", "t", 5), ("b", "x", 6)]
    # No floor: the digest is the best scores whatever their section (one profile's picks).
    assert [r.paper.id for r in topics.interleaved(["a", "b"], ranked, [None, None], 6, 0.0, section_of)] == list("pqrstu")
    # A fixed max_items is the section's count; a section without one takes what is left by merit.
    picks = topics.interleaved(["a", "b"], ranked, [None, 3], 6, 0.5, section_of)
    assert [(r.topic, r.paper.id) for r in picks] == [("a", "p"), ("a", "q"), ("a", "r"), ("b", "x"), ("b", "y"),
                                                      ("b", "z")]
    # Merit by the whole profile's scores when given (a section's own pull left out).
    merit = {pid: (1.0 if pid in "yz" else 0.0) for pid in ids}
    picks = topics.interleaved(["a", "b"], ranked, [None, None], 4, 0.5, section_of, merit=merit)
    assert [(r.topic, r.paper.id) for r in picks] == [("a", "p"), ("b", "x"), ("b", "y"), ("b", "z")]
    # A followed author's paper is taken first, above any score.
    picks = topics.interleaved(["a", "b"], ranked, [None, None], 3, 0.0, section_of, frozenset({"z"}))
    assert [r.paper.id for r in picks] == ["p", "q", "z"]


def test_a_paper_belongs_to_the_topic_where_its_affinity_ranks_highest():
    # Section 0's stars are close together: it scores every paper higher than section 1 does.
    affinity = np.array([[0.9, 0.8, 0.7, 0.6], [0.1, 0.2, 0.3, 0.5]])
    assert topics.assigned(affinity).tolist() == [0, 0, 1, 1]


# -- through the CLI ------------------------------------------------------------------------------


@pytest.fixture
def topic_config(tmp_path: Path) -> Path:
    return write_config(tmp_path, users=TOPICS)


def test_stars_carry_their_topic_through_star_stars_and_unstar(run: Invoke, topic_config: Path, seeds: list[Path]):
    _starred_library(lambda *a, **k: run(*a, config=topic_config, **k), seeds)
    listed = [json.loads(line) for line in run("stars", "--json", config=topic_config).stdout.splitlines()]
    assert sorted((s["title"], s["topic"]) for s in listed) == sorted(
        [(t, "transport") for t in TRANSPORT] + [(t, "language models") for t in LANGUAGE])
    only = run("stars", "--topic", "transport", config=topic_config)
    assert len(only.stdout.splitlines()) == 2 and "2 star(s) in topic 'transport'" in only.stderr
    tarot = next(s["id"] for s in listed if s["title"] == TRANSPORT[0])
    assert "removed 0 star(s)" in run("unstar", "--topic", "language models", tarot, config=topic_config).stderr
    run("star", "--topic", "language models", tarot, config=topic_config)  # moves it
    assert len(run("stars", "--topic", "transport", config=topic_config).stdout.splitlines()) == 1
    assert "removed 1 star(s)" in run("unstar", "--topic", "language models", tarot, config=topic_config).stderr
    wrong = run("star", "--topic", "folding", tarot, config=topic_config, code=2)
    assert "Error: ada@example.org has no topic 'folding' (topics: 'transport', 'language models')" in wrong.stderr


def test_import_library_stars_a_file_into_a_topic(run: Invoke, topic_config: Path, seeds: list[Path]):
    library = Path(__file__).parent / "fixtures" / "library" / "jabref-3.8.bib"
    run("init", config=topic_config)
    run("ingest", str(seeds[0]), config=topic_config)
    result = run("import-library", "--offline", "--topic", "transport", str(library), config=topic_config)
    assert "4 new star(s)" in result.stderr
    listed = [json.loads(line) for line in run("stars", "--json", config=topic_config).stdout.splitlines()]
    assert len(listed) == 4 and {s["topic"] for s in listed} == {"transport"}


def test_recommend_ranks_each_topic_with_its_own_stars(run: Invoke, topic_config: Path, seeds: list[Path]):
    _starred_library(lambda *a, **k: run(*a, config=topic_config, **k), seeds)
    picks = _picks(lambda *a, **k: run(*a, config=topic_config, **k))
    assert [p["topic"] for p in picks] == ["transport"] * 4 + ["language models"] * 2
    assert [p["rank"] for p in picks] == list(range(1, 7))
    assert len({p["paper_id"] for p in picks}) == 6  # never twice
    language = [p for p in picks if p["topic"] == "language models"]
    assert all("language model" in f"{p['title']} {p['abstract']}".lower() or "llm" in f"{p['title']} {p['abstract']}".lower()
               for p in language)
    only = _picks(lambda *a, **k: run(*a, config=topic_config, **k), "--topic", "language models", "--limit", "3")
    assert [p["topic"] for p in only] == ["language models"] * 3
    assert [p["paper_id"] for p in only[:2]] == [p["paper_id"] for p in language]
    why = json.loads(run("explain", language[0]["paper_id"], "--json", config=topic_config).stdout)
    assert why["topic"] == "language models"
    text_out = run("recommend", "--batch", "all", config=topic_config).stdout
    assert text_out.index("# transport") < text_out.index("# language models")
    shown = json.loads(run("profile", "show", "--topic", "transport", "--json", config=topic_config).stdout)
    assert {p["title"] for p in shown["papers"] if p["pull"] == "positive"} == set(TRANSPORT)
    listed = run("profile", "topics", config=topic_config).stdout.splitlines()
    assert listed == ["transport\t2 star(s)", "language models\t3 star(s)"]


def _sections(body: str) -> list[str]:
    return re.findall(r"^== (.+?) \(\d+\) ==\r?$", body, re.MULTILINE)


def _headings(html: str) -> list[str]:
    return re.findall(r'<h2 class="topic"[^>]*>\s*(.+?) (?:·|&#183;) \d+\s*</h2>', html)


def test_one_digest_in_two_sections_with_feedback_per_topic(tmp_path: Path, run: Invoke, seeds: list[Path],
                                                           smtp_server: SmtpServer):
    path = write_config(tmp_path, users=TOPICS, extra=smtp_section(smtp_server.port))

    def cli(*args: str, code: int = 0) -> object:
        return run(*args, config=path, code=code)

    _starred_library(cli, seeds)
    language_before = _picks(cli, "--topic", "language models", "--limit", "10")
    transport_before = _picks(cli, "--topic", "transport", "--limit", "10")
    cli("digest", "send")
    [message] = smtp_server.box.to("ada@example.org")
    plain = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert _sections(plain) == ["transport", "language models"], plain
    assert _headings(html) == ["transport", "language models"], html
    titles = re.findall(r"^\d+\. (.+?)\r?$", plain, re.MULTILINE)
    assert len(titles) == 6 == len(set(titles))
    # The web view shows the same sections and entries.
    config = load_config(path)
    store = Store.open(config.database.url)
    with TestClient(web_app(config, store), base_url="http://127.0.0.1:8080") as client:
        view = re.search(r"View in browser: http://127\.0\.0\.1:8080(/digest/\S+)", plain)
        assert view is not None
        page = client.get(view.group(1)).text
        assert _headings(page) == ["transport", "language models"]
        assert [html_text.unescape(t) for t in
                re.findall(r'<p class="title"[^>]*><a href="[^"]+"[^>]*>([^<]+)</a>', page)] == titles
        # "less like this" on the first transport pick teaches transport only.
        less = re.findall(r"Less like this: http://127\.0\.0\.1:8080(/feedback/less/\S+)", plain)
        more = re.findall(r"More like this: http://127\.0\.0\.1:8080(/feedback/more/\S+)", plain)
        assert client.get(less[0]).status_code == 200
        assert client.get(more[1]).status_code == 200  # (a "more" makes a positive: the stronger test)
    assert [e.action for e in FeedbackLog(store).events()] == ["less", "more"]
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT topic FROM feedback")).scalars().all() == ["transport", "transport"]
    store.close()
    # (the papers the digest sent are left out of later rankings: compare the ones both have)
    language_after = _scores(_picks(cli, "--topic", "language models", "--limit", "10"))
    transport_after = _scores(_picks(cli, "--topic", "transport", "--limit", "10"))
    same = language_after.keys() & _scores(language_before).keys()
    assert len(same) >= 5 and all(language_after[p] == _scores(language_before)[p] for p in same)
    assert transport_after != _scores(transport_before)


def _scores(picks: list[dict[str, object]]) -> dict[str, object]:
    return {str(p["paper_id"]): p["score"] for p in picks}


def test_a_reader_without_topics_gets_no_topic_anywhere(run: Invoke, seeds: list[Path]):
    run("init")
    run("ingest", *map(str, seeds))
    run("star", "--title", TRANSPORT[0])
    picks = _picks(run)
    assert picks and all("topic" not in p for p in picks)
    assert "Error: ada@example.org has no topic 'x' (topics: none" in run("recommend", "--topic", "x", code=2).stderr
    assert all(s["topic"] is None for s in map(json.loads, run("stars", "--json").stdout.splitlines()))
    assert "topic" not in json.loads(run("explain", picks[0]["paper_id"], "--json").stdout)


def test_a_user_export_carries_each_stars_topic(run: Invoke, topic_config: Path, seeds: list[Path]):
    _starred_library(lambda *a, **k: run(*a, config=topic_config, **k), seeds)
    exported = json.loads(run("users", "export", "ada@example.org", config=topic_config).stdout)
    assert sorted({s["topic"] for s in exported["stars"]}) == ["language models", "transport"]
    assert [(t["name"], t["max_items"]) for t in exported["topics"]] == [("transport", None), ("language models", 2)]


@pytest.mark.browser
@pytest.mark.skipif(browser.chromium() is None, reason=browser.SKIP_REASON)
def test_sections_fit_a_phone_and_a_desktop_in_a_real_browser(tmp_path: Path, run: Invoke, seeds: list[Path]):
    long_name = "reinforcementlearningfromhumanfeedbackandpreferenceoptimisation"  # 63 characters, no break
    path = write_config(tmp_path, users=TOPICS + f'[[users.topics]]\nname = "{long_name}"\ninterests = ["reward"]\n')
    _starred_library(lambda *a, **k: run(*a, config=path, **k), seeds)
    run("digest", "preview", "--out", str(tmp_path / "digest.html"), config=path)
    driver = browser.start(tmp_path / "profile")
    try:
        for width in (375, 1024):
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                   {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500})
            driver.get((tmp_path / "digest.html").as_uri())
            headings = driver.execute_script(
                "return Array.from(document.querySelectorAll('h2.topic')).map(h => [h.innerText, "
                "h.getBoundingClientRect().right, h.getBoundingClientRect().height])")
            assert [h[0].split(" · ")[0] for h in headings] == ["TRANSPORT", "LANGUAGE MODELS", long_name.upper()]
            assert all(right <= width and height > 0 for _, right, height in headings)
            assert driver.execute_script("return document.documentElement.scrollWidth") <= width
    finally:
        driver.quit()


LIBRARY = Path(__file__).parent / "fixtures" / "library"


def test_topics_from_jabref_groups_prefer_a_configured_topic_and_offer_the_others(tmp_path: Path, run: Invoke,
                                                                                  seeds: list[Path]):
    path = write_config(tmp_path, users=TOPICS + '[[users.topics]]\nname = "My-Other-Subgroup-3"\n')
    run("init", config=path)
    run("ingest", str(seeds[0]), config=path)
    result = run("import-library", "--offline", "--topics-from", "groups", str(LIBRARY / "jabref-3.8.bib"), config=path)
    starred = {s["title"]: s["topic"] for s in map(json.loads, run("stars", "--json", config=path).stdout.splitlines())}
    assert starred == {"The paper in subgroup": "my-subgroup-3", "The article in my other subgroup": "My-Other-Subgroup-3",
                       "the paper in two groups": "My-Other-Subgroup-3", "the paper not in a group": "my-main-group-3"}
    offered = tomllib.loads("[[users]]\n" + result.stdout.replace("[[users.topics]]", "[[users.topics]]"))["users"][0]["topics"]
    assert [t["name"] for t in offered] == ["my-subgroup-3", "my-main-group-3"]  # not the configured one
    assert "My-Other-Subgroup-3 (2)" in result.stderr


@pytest.mark.parametrize(("export", "expected"), [
    ("mendeley-style.bib", {"Vulcanian eruptions"}),  # Mendeley's keywords field
    ("zotero-export.csv", {"Astrophysics - Instrumentation and Methods for Astrophysics",
                           "Astrophysics - Cosmology and Extragalactic Astrophysics", None}),  # Zotero's tags
    ("sciencedirect.ris", {"V-Ti-Cr alloys"}),  # RIS KW
])
def test_topics_from_keywords_of_real_exports(run: Invoke, seeds: list[Path], export: str, expected: set[str | None]):
    run("init")
    run("ingest", str(seeds[0]))
    run("import-library", "--offline", "--topics-from", "keywords", str(LIBRARY / export))
    assert {s["topic"] for s in map(json.loads, run("stars", "--json").stdout.splitlines())} == expected


REWARD = ("Scaling Laws for Reward Model Overoptimization in Direct Alignment Algorithms",
          "Reward Model Ensembles Help Mitigate Overoptimization",
          "Confronting Reward Model Overoptimization with Constrained RLHF",
          "Provably Mitigating Overoptimization in RLHF: Your SFT Loss is Implicitly an Adversarial Regularizer")


OPTIMISATION = ("Target-based Surrogates for Stochastic Optimization",
                "Efficient Global Optimization of Two-layer ReLU Networks: Quadratic-time Algorithms and Adversarial "
                "Training",
                "From Logistic Regression to the Perceptron Algorithm: Exploring Gradient Descent with Large Step Sizes")


def test_suggested_topics_split_stars_name_them_and_paste_into_the_config(tmp_path: Path, run: Invoke,
                                                                          seeds: list[Path]):
    path = write_config(tmp_path, users='[[users]]\nemail = "ada@example.org"\n')
    run("init", config=path)
    run("ingest", *map(str, seeds), config=path)
    run("star", *[arg for title in TRANSPORT + REWARD + LANGUAGE + OPTIMISATION for arg in ("--title", title)],
        config=path)
    result = run("profile", "topics", "--suggest", "--max", "3", "--apply", config=path)
    block = result.stdout
    suggested = tomllib.loads("[[users]]\nemail = 'ada@example.org'\n" + block)["users"][0]["topics"]
    assert 2 <= len(suggested) <= 3
    starred = {s["title"]: s["topic"] for s in map(json.loads, run("stars", "--json", config=path).stdout.splitlines())}
    # The reward-model papers stay together, apart from the optimal-transport ones.
    assert len({starred[t] for t in REWARD}) == 1 and starred[REWARD[0]] not in {starred[t] for t in TRANSPORT}
    assert {t["name"] for t in suggested} == set(starred.values())
    reward = next(t["name"] for t in suggested if t["name"] == starred[REWARD[0]])
    assert "overoptimization" in reward or "reward" in reward
    assert any(title[:60] in block for title in REWARD)
    # Pasted under the reader, the block makes a config whose digest has those sections.
    path.write_text(path.read_text() + "\n" + block)
    assert "OK: 1 user(s)" in run("config", "check", config=path).stdout
    picks = _picks(lambda *a, **k: run(*a, config=path, **k))
    assert {p["topic"] for p in picks} <= {t["name"] for t in suggested} and len({p["topic"] for p in picks}) >= 2


def test_too_few_stars_make_one_suggested_topic_and_none_make_an_error(run: Invoke, seeds: list[Path]):
    run("init")
    run("ingest", str(seeds[0]))
    assert "Error: ada@example.org has no starred papers" in run("profile", "topics", "--suggest", code=1).stderr
    assert "--apply goes with --suggest" in run("profile", "topics", "--apply", code=2).stderr
