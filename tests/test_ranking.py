"""Ranking on a small handmade corpus, through the same pipeline the CLI uses."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from recommender import pipeline, textmodel
from recommender.config import load_config
from recommender.domain import ParsedBatch, ParsedPaper
from recommender.store import Store

from conftest import write_config

A = [
    ("Optimal transport for domain adaptation", "We align source and target distributions with optimal transport plans and Wasserstein distances."),
    ("Sinkhorn iterations for entropic optimal transport", "Entropic regularisation makes optimal transport plans fast to compute with Sinkhorn scaling."),
    ("Wasserstein barycenters of empirical distributions", "We compute Wasserstein barycenters with optimal transport solvers for distributions."),
    ("Sliced Wasserstein distances for generative models", "Sliced optimal transport projects distributions to one dimension where Wasserstein distance is cheap."),
]
B = [
    ("Protein folding with coevolution signals", "Residue contacts predicted from coevolution guide protein structure prediction and folding."),
    ("Cryo-electron microscopy of membrane proteins", "We resolve membrane protein structures with cryo-electron microscopy at near-atomic resolution."),
    ("Molecular dynamics of intrinsically disordered proteins", "Simulations of disordered protein regions reveal folding pathways and residue contacts."),
    ("Antibody design from protein language models", "Protein language models propose antibody sequences with improved binding and folding."),
]


def _papers(rows, prefix):
    return [ParsedPaper(title=t, abstract=a, source_id=f"{prefix}{i}") for i, (t, a) in enumerate(rows)]


@pytest.fixture
def corpus(store: Store, tmp_path: Path):
    """Old papers A0, B0 (starred material); a new batch with A1..A3 and B1..B3 interleaved."""
    store.ingest_batch(ParsedBatch("jsonl", (*_papers(A[:1], "A"), *_papers(B[:1], "B"))), "old", "h-old", "run-old")
    new = [p for pair in zip(_papers(A, "A")[1:], _papers(B, "B")[1:], strict=True) for p in pair]
    store.ingest_batch(ParsedBatch("jsonl", tuple(new)), "new", "h-new", "run-new")
    config = load_config(write_config(tmp_path, database_url=store.engine.url.render_as_string(False)))
    return config


def _recommend(config, store, **changes):
    user = replace(config.users[0], **changes)
    return pipeline.recommend(config, store, [user], store.latest_run_batch_ids())[user.email]


def test_a_starred_topic_ranks_its_unseen_papers_first(corpus, store: Store):
    store.star(store.user_id("ada@example.org"), ["A0"])
    picks = _recommend(corpus, store)
    assert [r.paper.id[0] for r in picks] == ["A", "A", "A", "B", "B", "B"]
    assert picks[0].score > picks[3].score
    assert picks[0].explanation.nearest[0][0] == "A0"
    scores = [r.score for r in picks]
    assert scores == sorted(scores, reverse=True)


def test_switching_stars_switches_the_ranking(corpus, store: Store):
    store.star(store.user_id("ada@example.org"), ["B0"])
    assert [r.paper.id[0] for r in _recommend(corpus, store)][:3] == ["B", "B", "B"]


def test_without_stars_or_interests_the_batch_comes_in_source_order(corpus, store: Store):
    picks = _recommend(corpus, store)
    assert [r.paper.id for r in picks] == ["A1", "B1", "A2", "B2", "A3", "B3"]
    assert all(r.score == 0 and not r.explanation.personalized for r in picks)
    assert "not personalized" in picks[0].explanation.sentence().lower()
    assert "recommender star" in picks[0].explanation.sentence()


def test_interests_personalize_a_cold_start(corpus, store: Store):
    picks = _recommend(corpus, store, interests=("protein folding",))
    assert picks[0].paper.id.startswith("B") and picks[0].explanation.personalized


def test_starred_papers_are_never_recommended_and_limits_apply(corpus, store: Store):
    store.star(store.user_id("ada@example.org"), ["A0", "A1"])
    picks = _recommend(corpus, store, max_items=2)
    assert len(picks) == 2 and "A1" not in {r.paper.id for r in picks}


def test_min_score_and_exclude(corpus, store: Store):
    store.star(store.user_id("ada@example.org"), ["A0"])
    picks = _recommend(corpus, store, min_score=0.05)
    assert picks and all(r.score >= 0.05 for r in picks) and all(r.paper.id[0] == "A" for r in picks)
    excluded = _recommend(corpus, store, exclude=("sinkhorn",))
    assert "A1" not in {r.paper.id for r in excluded}


def test_why_names_terms_that_occur_in_both_papers(corpus, store: Store):
    store.star(store.user_id("ada@example.org"), ["A0"])
    top = _recommend(corpus, store)[0]
    starred = store.paper("A0")
    assert top.explanation.terms
    for shared in top.explanation.terms:
        for paper in (top.paper, starred):
            words = re.findall(r"[a-z]+", f"{paper.title} {paper.abstract}".lower())
            assert shared.term in " ".join(words), (shared.term, paper.id)


def test_ranking_is_deterministic(corpus, store: Store):
    store.star(store.user_id("ada@example.org"), ["A0"])
    first = [(r.paper.id, r.score) for r in _recommend(corpus, store)]
    assert first == [(r.paper.id, r.score) for r in _recommend(corpus, store)]


def test_model_is_cached_and_refit_only_when_the_corpus_changes(corpus, store: Store):
    store.star(store.user_id("ada@example.org"), ["A0"])
    _recommend(corpus, store)
    version = store.corpus_version()
    assert store.load_model("tfidf", f"{version}:{textmodel.settings_key(corpus.ranking)}") is not None
    model = textmodel.load_or_fit(store, corpus.ranking)
    assert model.version == version
    store.ingest_batch(ParsedBatch("jsonl", (ParsedPaper(title="Optimal transport maps", abstract="x",
                                                          source_id="A9"),)), "more", "h-more", "run-more")
    assert store.corpus_version() == version + 1
    assert store.load_model("tfidf", f"{version + 1}:{textmodel.settings_key(corpus.ranking)}") is None
    assert textmodel.load_or_fit(store, corpus.ranking).version == version + 1


def test_profile_is_persisted_in_term_space_and_rebuilt_after_a_refit(corpus, store: Store):
    user_id = store.user_id("ada@example.org")
    store.star(user_id, ["A0"])
    _recommend(corpus, store)
    saved = store.load_profile(user_id)
    assert "transport" in saved.terms and saved.sources == [["A0", 1.0]]
    _recommend(corpus, store)
    assert store.load_profile(user_id).updated_at == saved.updated_at  # nothing changed: not rewritten
    store.ingest_batch(ParsedBatch("jsonl", (ParsedPaper(title="Another topic entirely", abstract="y",
                                                          source_id="C1"),)), "more", "h-c", "run-c")
    _recommend(corpus, store)
    refit = store.load_profile(user_id)
    assert refit.model_version == store.corpus_version() != saved.model_version
    assert refit.sources == saved.sources and set(refit.terms) == set(saved.terms)


def test_explain_breaks_the_score_down(corpus, store: Store, run, tmp_path: Path):
    import json

    store.star(store.user_id("ada@example.org"), ["A0"])
    folder = tmp_path / "explain"
    folder.mkdir()
    path = write_config(folder, database_url=store.engine.url.render_as_string(False))
    result = json.loads(run("explain", "A1", "--json", config=path).stdout)
    assert result["paper_id"] == "A1" and result["nearest"][0]["paper_id"] == "A0"
    assert abs(result["score"] - (result["content"] + result["collaborative"] + result["interests"])) < 1e-6
    starred = store.paper("A0")
    candidate = store.paper("A1")
    for term in result["terms"]:
        for paper in (starred, candidate):
            assert term["term"] in " ".join(re.findall(r"[a-z]+", f"{paper.title} {paper.abstract}".lower()))
    assert "you starred this paper" in json.loads(run("explain", "A0", "--json", config=path).stdout)["notes"][0]
    assert "score" in run("explain", "B1", config=path).stdout


def test_many_users_are_ranked_half_in_a_forked_child_with_the_same_results(corpus, store: Store, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch):
    import os

    from recommender import halves

    users = [replace(corpus.users[0], email=f"u{i:03d}@example.org") for i in range(pipeline.PARALLEL_USERS + 10)]
    for i, user in enumerate(users[::3]):
        store.star(store.user_id(user.email), ["A0" if i % 2 else "B0"])

    def render(part, results):
        return "".join(json.dumps([u.email, os.getpid(), [r.as_json_line() for r in results[u.email]]]) + "\n"
                       for u in part)

    def written(name: str) -> tuple[int, list]:
        path = tmp_path / name

        def write(text: str) -> None:
            with path.open("a", encoding="utf-8") as out:  # appended by whichever process writes
                out.write(text)

        count = pipeline.recommend_written(corpus, store, users, store.latest_run_batch_ids(), None, render, write)
        return count, [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    assert halves.can_fork(), f"threads left running by earlier tests: {__import__('threading').enumerate()}"
    count, parts = written("halves.jsonl")
    monkeypatch.setattr(pipeline, "PARALLEL_USERS", len(users) + 1)
    alone_count, alone = written("alone.jsonl")

    half = len(users) // 2
    assert {pid for _, pid, _ in parts[:half]} == {os.getpid()} != {pid for _, pid, _ in parts[half:]}  # a child wrote
    assert [(email, lines) for email, _, lines in parts] == [(email, lines) for email, _, lines in alone]
    assert count == alone_count == sum(len(lines) for _, _, lines in alone)
    assert all(lines for _, _, lines in alone)
    tops = [json.loads(lines[0])["paper_id"][0] for _, _, lines in alone]
    assert tops[0] == "B" and tops[3] == "A"  # the stars of each user count, in both halves
    last = (len(users) - 1) // 3 * 3  # the last starred user, in the child's half
    assert tops[last] == ("A" if last // 3 % 2 else "B")


def test_when_the_first_half_fails_the_child_writes_nothing(corpus, store: Store, tmp_path: Path):
    import os

    from recommender import halves

    users = [replace(corpus.users[0], email=f"u{i:03d}@example.org") for i in range(pipeline.PARALLEL_USERS + 10)]
    parent, out = os.getpid(), tmp_path / "out.txt"

    def render(part, results):
        if os.getpid() == parent:
            raise ValueError("rendering failed here")
        return "".join(f"{u.email}\n" for u in part)

    def write(text: str) -> None:
        with out.open("a", encoding="utf-8") as file:
            file.write(text)

    assert halves.can_fork()
    with pytest.raises(ValueError, match="rendering failed here"):
        pipeline.recommend_written(corpus, store, users, store.latest_run_batch_ids(), None, render, write)
    assert not out.exists()  # no second half without the first


def test_titles_are_looked_up_once_per_ranking_run():
    from recommender.ranking import _RunTitles

    asked: list[list[str]] = []

    def lookup(ids: list[str]) -> dict[str, str]:
        asked.append(list(ids))
        return {i: f"title of {i}" for i in ids if i != "gone"}

    titles = _RunTitles(lookup)
    assert titles(["a", "b", "gone"]) == {"a": "title of a", "b": "title of b"}
    assert titles(["b", "c", "gone"]) == {"b": "title of b", "c": "title of c"}
    assert titles(["a", "gone"]) == {"a": "title of a"}
    assert asked == [["a", "b", "gone"], ["c"]]  # each id asked once, known or not
