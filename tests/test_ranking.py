"""Ranking on a small handmade corpus, through the same pipeline the CLI uses."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from recommender import pipeline
from recommender.base.config import load_config
from recommender.base.domain import ParsedBatch, ParsedPaper
from recommender.model import profiles, tfidf
from recommender.pipeline import stored_models
from recommender.pipeline.breakdown import explain
from recommender.store import Store
from recommender.store.feedback import FeedbackLog

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
    assert store.load_model("tfidf", f"{version}:{tfidf.settings_key(corpus.ranking)}") is not None
    model = stored_models.text_model(store, corpus.ranking)
    assert model.version == version
    store.ingest_batch(ParsedBatch("jsonl", (ParsedPaper(title="Optimal transport maps", abstract="x",
                                                          source_id="A9"),)), "more", "h-more", "run-more")
    assert store.corpus_version() == version + 1
    assert store.load_model("tfidf", f"{version + 1}:{tfidf.settings_key(corpus.ranking)}") is None
    assert stored_models.text_model(store, corpus.ranking).version == version + 1


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

    from recommender.base import parallel

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

        count = pipeline.recommend_written(corpus, store, pipeline.Wanted(users, store.latest_run_batch_ids()), render, write)
        return count, [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    assert parallel.can_fork(), f"threads left running by earlier tests: {__import__('threading').enumerate()}"
    count, parts = written("parallel.jsonl")
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

    from recommender.base import parallel

    users = [replace(corpus.users[0], email=f"u{i:03d}@example.org") for i in range(pipeline.PARALLEL_USERS + 10)]
    parent, out = os.getpid(), tmp_path / "out.txt"

    def render(part, results):
        if os.getpid() == parent:
            raise ValueError("rendering failed here")
        return "".join(f"{u.email}\n" for u in part)

    def write(text: str) -> None:
        with out.open("a", encoding="utf-8") as file:
            file.write(text)

    assert parallel.can_fork()
    with pytest.raises(ValueError, match="rendering failed here"):
        pipeline.recommend_written(corpus, store, pipeline.Wanted(users, store.latest_run_batch_ids()), render, write)
    assert not out.exists()  # no second half without the first


def test_papers_are_looked_up_once_per_ranking_run():
    from recommender.model.ranking import _RunPapers

    asked: list[list[str]] = []

    def lookup(ids: list[str]) -> dict[str, tuple[str, str]]:
        asked.append(list(ids))
        return {i: (f"title of {i}", "") for i in ids if i != "gone"}

    papers = _RunPapers(lookup)
    assert {i: title for i, (title, _) in papers(["a", "b", "gone"]).items()} == {"a": "title of a", "b": "title of b"}
    assert {i: title for i, (title, _) in papers(["b", "c", "gone"]).items()} == {"b": "title of b", "c": "title of c"}
    assert list(papers(["a", "gone"])) == ["a"]
    assert asked == [["a", "b", "gone"], ["c"]]  # each id asked once, known or not


def test_explanations_read_the_batch_forms_stored_by_the_refit_and_say_the_same(corpus, store: Store,
                                                                                   monkeypatch: pytest.MonkeyPatch):
    """Once readers have stars, the refit reads how the newest batch's papers write each of
    their terms (written_terms.read_batch); explanations then read no pick's text, and say
    exactly what reading the texts says."""
    from recommender.model.written_terms import BatchForms

    users = [replace(corpus.users[0], email=f"u{i}@example.org") for i in range(4)]
    batch = store.latest_run_batch_ids()
    assert pipeline.refresh(store, corpus).written is None  # no reader has stars: no pick is explained by one
    for i, user in enumerate(users):
        store.star(store.user_id(user.email), ["A0" if i % 2 else "B0"])
    monkeypatch.setattr(stored_models, "READ_BATCH_MAX", 5)  # the new batch's 6 papers: a backfill
    assert pipeline.refresh(store, corpus).written is None
    monkeypatch.undo()
    models = pipeline.refresh(store, corpus)
    assert isinstance(models.written, BatchForms)
    assert sorted(models.written.paper_ids) == sorted(p.id for p in store.batch_papers(batch))
    assert stored_models.batch_forms(store, models.text, corpus.ranking) is not None  # stored for the next command

    def lines() -> list[str]:
        picks = pipeline.recommend(corpus, store, users, batch)
        return [r.as_json_line() for user in users for r in picks[user.email]]

    assert pipeline.load_models(store, corpus).written is not None
    from_forms = lines()
    store.save_model("written", "the forms of another model", models.written)  # (not this model's: not used)
    assert pipeline.load_models(store, corpus).written is None
    from_texts = lines()
    assert from_forms == from_texts
    shown = [term["term"] for line in from_texts for term in json.loads(line)["terms"]]
    assert "optimal transport" in shown and "protein" in shown


def _reused_and_built(config, store: Store) -> tuple[profiles.Profiles, profiles.Profiles]:
    """Profiles as ranking gets them (from the cache where it can) and as the signal log gives them."""
    models = pipeline.load_models(store, config)
    ids = store.sync_users(u.email for u in config.users)
    pairs = [(ids[u.email.lower()], u) for u in config.users]
    now = datetime.now(UTC)
    return (stored_models.cached_or_built_profiles(store, models, pairs, config.ranking, now, False),
            stored_models.build_profiles(store, models, pairs, config.ranking, now, False))


def _row(built: profiles.Profiles, i: int) -> tuple:
    row = built.matrix[i]
    return (tuple(row.indices), tuple(row.data), built.weights[i], built.starred[i], built.interests[i])


def _three_users(corpus, store: Store):
    config = replace(corpus, users=(replace(corpus.users[0], email="ada@example.org"),
                                    replace(corpus.users[0], email="bob@example.org"),
                                    replace(corpus.users[0], email="cy@example.org", interests=("protein folding",))))
    store.star(store.user_id("ada@example.org"), ["A0"])
    store.star(store.user_id("bob@example.org"), ["B0", "A1"])
    return config


def test_profiles_built_at_ingest_are_reused_until_their_users_signals_or_interests_change(corpus, store: Store):
    config = _three_users(corpus, store)
    models = pipeline.refresh(store, config)  # what ingest and star imports do: models, profiles, the cache
    key = stored_models.profiles_cache_key(store, config.ranking, models.space is not None)
    cached = store.load_model("profiles", key)
    if store.sqlite_path is None:
        assert cached is None and store.signal_generations([1]) is None  # PostgreSQL: always built
        return
    assert isinstance(cached, profiles.CachedProfiles)
    reused, built = _reused_and_built(config, store)
    first = [_row(built, i)[:2] for i in range(3)]  # each user's profile vector (terms, weights)
    assert [_row(reused, i) for i in range(3)] == [_row(built, i) for i in range(3)]
    # Proof the rows come from the cache: with them rotated, each user gets the next one's...
    store.save_model("profiles", key, replace(cached, matrix=cached.matrix[[1, 2, 0]]))
    reused, built = _reused_and_built(config, store)
    assert [_row(reused, i)[:2] for i in range(3)] == [first[1], first[2], first[0]]
    # ...until their signals change: stars, a feedback click, or other interests. (As many stars
    # as before: a growing count can refit the collaborative model, which keys another cache.)
    store.unstar(store.user_id("ada@example.org"), ["A0"])
    store.star(store.user_id("ada@example.org"), ["A2"])
    reused, built = _reused_and_built(config, store)
    assert _row(reused, 0) == _row(built, 0) and reused.starred[0] == {"A2"}
    assert [_row(reused, i)[:2] for i in (1, 2)] == [first[2], first[0]]  # still rotated, from the cache
    FeedbackLog(store).record(store.user_id("bob@example.org"), "B1", "more", None, "t-bob", "test", datetime.now(UTC))
    reused, built = _reused_and_built(config, store)
    assert _row(reused, 1) == _row(built, 1) and reused.weights[1]["B1"] == 1.0
    assert _row(reused, 2)[:2] == first[0] != first[2]
    config = replace(config, users=(*config.users[:2], replace(config.users[2], interests=("transport",))))
    reused, built = _reused_and_built(config, store)
    assert [_row(reused, i) for i in range(3)] == [_row(built, i) for i in range(3)]
    # Another model or other settings key another cache: nothing read from this one.
    assert stored_models.profiles_cache_key(store, replace(config.ranking, more_weight=2.0), models.space is not None) != key


def test_every_change_to_a_users_stars_and_feedback_moves_their_signal_generation_on(corpus, store: Store):
    ada = store.user_id("ada@example.org")
    if store.sqlite_path is None:
        assert store.signal_generations([ada]) is None  # counted on SQLite only: PostgreSQL caches no profiles
        return
    log = FeedbackLog(store)
    seen = [store.signal_generations([ada]).get(ada, 0)]
    for change in (lambda: store.star(ada, ["A0", "B0"]), lambda: store.unstar(ada, ["B0"]),
                   lambda: log.record(ada, "A1", "less", None, "t1", "test", datetime.now(UTC)),
                   lambda: log.record(ada, "A1", "more", None, "t2", "test", datetime.now(UTC)),  # replaces the less
                   lambda: log.undo("t2"), lambda: store.star_many([(ada, "B1")], "import")):
        change()
        seen.append(store.signal_generations([ada])[ada])
    assert seen == sorted(set(seen)) and seen[0] == 0  # each change moved it on, never back
    log.forget(ada)
    again = store.user_id("ada@example.org")
    # A generation outlives its user: a new user given the same id never matches the old one's cache.
    assert store.signal_generations([again]).get(again, 0) > (seen[-1] if again == ada else -1)


def test_a_batchs_papers_are_one_run_of_model_rows_and_taken_as_a_view(corpus, store: Store):
    """On SQLite the model keeps the order papers were stored in, so a new batch's rows are one
    run in source order: ranking takes them as a view (not a copy of 5,000 rows for one user)."""
    model = stored_models.text_model(store, corpus.ranking)
    ids = [p.id for p in store.batch_papers(store.latest_run_batch_ids())]
    for wanted in (ids, ids[::-1]):
        rows = model.rows(wanted)
        assert rows.shape == (len(wanted), model.matrix.shape[1])
        assert (rows != model.matrix[[model.index[i] for i in wanted]]).nnz == 0
    assert np.shares_memory(model.rows(ids).data, model.matrix.data) == (store.sqlite_path is not None)
    assert not np.shares_memory(model.rows(ids[::-1]).data, model.matrix.data)
    dense = np.arange(20.0).reshape(10, 2)
    assert np.shares_memory(tfidf.taken_rows(dense, np.array([3, 4, 5])), dense)
    assert tfidf.taken_rows(dense, np.array([5, 3])).tolist() == [[10.0, 11.0], [6.0, 7.0]]


def test_without_its_cache_file_ranking_builds_the_same_profiles_from_the_log(corpus, store: Store):
    config = _three_users(corpus, store)
    pipeline.refresh(store, config)

    def ranked() -> list:
        picks = pipeline.recommend(config, store, config.users, store.latest_run_batch_ids())
        return [(r.user, r.paper.id, r.score, r.explanation.sentence()) for u in config.users for r in picks[u.email]]

    with_cache = ranked()
    if store.sqlite_path is not None:
        cache_file = store.sqlite_path.with_name(store.sqlite_path.name + "-models") / "profiles.model"
        cache_file.write_bytes(cache_file.read_bytes()[:400])  # cut short: a damaged file is never used
        assert store.load_model("profiles", stored_models.profiles_cache_key(store, config.ranking)) is None
        assert ranked() == with_cache
        cache_file.unlink()
    assert ranked() == with_cache and {u for u, *_ in with_cache} == {u.email for u in config.users}


TOPICS = {
    "transport": ["optimal", "transport", "wasserstein", "sinkhorn", "barycenter", "coupling"],
    "proteins": ["protein", "folding", "residue", "antibody", "cryo", "membrane"],
    "graphs": ["graph", "neural", "message", "passing", "node", "spectral"],
    "language": ["language", "model", "token", "attention", "decoder", "prompt"],
}


def _topic_papers(prefix: str, abstracts: bool = True) -> list[ParsedPaper]:
    papers = []
    for t, (topic, words) in enumerate(TOPICS.items()):
        for i in range(6):
            chosen = [words[(i + k) % len(words)] for k in range(4)]
            papers.append(ParsedPaper(title=f"{' '.join(chosen[:3])} study {prefix}{t}{i}",
                                      abstract=f"We study {' '.join(chosen)} in {topic} number {i}." if abstracts else "",
                                      source_id=f"{prefix}{topic}{i}"))
    return papers


def _install(tmp_path: Path, name: str, readers: int, community: str, personal: str = "auto",
             personal_max_users: int = 200, abstracts: bool = True, ranking: str = ""):
    """Old papers of four topics, a new batch of the same topics, and ``readers`` readers who
    star across topics; Ada stars transport papers. Returns (config, store, batch ids)."""
    folder = tmp_path / name
    folder.mkdir()
    store = Store.open(f"sqlite:///{folder / 'db.sqlite'}")
    store.upgrade_schema()
    store.ingest_batch(ParsedBatch("jsonl", tuple(_topic_papers("old", abstracts))), "old", "h-old", "run-old")
    store.ingest_batch(ParsedBatch("jsonl", tuple(_topic_papers("new", abstracts))), "new", "h-new", "run-new")
    ids = store.sync_users(["ada@example.org"] + [f"r{i}@example.org" for i in range(readers)])
    store.star(ids["ada@example.org"], ["oldtransport0", "oldtransport1", "oldproteins2"])
    topics = list(TOPICS)
    for i in range(readers):  # each reader saves two topics, so stars co-occur across them
        first, second = topics[i % 4], topics[(i + 1) % 4]
        store.star(ids[f"r{i}@example.org"], [f"old{first}{i % 6}", f"old{second}{(i + 2) % 6}",
                                              f"old{first}{(i + 3) % 6}"])
    config = load_config(write_config(folder, database_url=store.engine.url.render_as_string(False),
                                      extra=f'[ranking]\ncommunity = "{community}"\ncollaborative_min_users = 10\n'
                                            f'personal = "{personal}"\npersonal_max_users = {personal_max_users}\n'
                                            + ranking))
    pipeline.refresh(store, config)
    return config, store, store.latest_run_batch_ids()


def test_community_off_ranks_a_reader_exactly_as_a_one_reader_install(tmp_path: Path):
    alone, alone_store, alone_batches = _install(tmp_path, "alone", 0, "auto")
    crowd, crowd_store, crowd_batches = _install(tmp_path, "crowd", 16, "off")
    try:
        mine = pipeline.recommend(alone, alone_store, [alone.users[0]], alone_batches)["ada@example.org"]
        theirs = pipeline.recommend(crowd, crowd_store, [crowd.users[0]], crowd_batches)["ada@example.org"]
        assert [r.paper.id for r in mine] == [r.paper.id for r in theirs]
        assert np.allclose([r.score for r in mine], [r.score for r in theirs], atol=1e-6)
        assert explain(crowd, crowd_store, crowd.users[0], mine[0].paper.id)["collaborative"] == 0
    finally:
        alone_store.close()
        crowd_store.close()


@pytest.mark.parametrize("readers, community, personal, uses_others", [
    (16, "auto", "auto", True), (11, "auto", "auto", False), (16, "auto", "on", False), (11, "auto", "off", True),
    (3, "auto", "off", False), (3, "on", "auto", True), (16, "off", "off", False)])
def test_community_decides_whether_other_readers_stars_are_used(tmp_path: Path, readers: int, community: str,
                                                                personal: str, uses_others: bool):
    """"auto" takes everyone's stars from `collaborative_min_users` (10) readers with stars, but
    not while readers get classifiers of their own (`personal_max_users` 12 here)."""
    from recommender.model import reader_factors

    config, store, batches = _install(tmp_path, "install", readers, community, personal, personal_max_users=12)
    try:
        models = pipeline.load_models(store, config)
        assert (models.collab is not None) == uses_others
        assert (models.space is not None) == (uses_others or personal != "off")  # reader models, own classifiers
        top = pipeline.recommend(config, store, [config.users[0]], batches)["ada@example.org"][0]
        assert (explain(config, store, config.users[0], top.paper.id)["collaborative"] != 0) == uses_others
        assert reader_factors.uses_community(config.ranking, readers + 1) == uses_others
    finally:
        store.close()


def test_community_takes_only_its_three_values(tmp_path: Path):
    from recommender.base.errors import ConfigError

    with pytest.raises(ConfigError, match=r"ranking\.community: expected auto or off or on, got 'sometimes'"):
        load_config(write_config(tmp_path, extra='[ranking]\ncommunity = "sometimes"\n'))


def test_a_reader_alone_is_ranked_by_their_own_classifier(tmp_path: Path):
    """Without the community, a reader with three stars gets a linear classifier of their own
    (terms and LSA topics); `personal = "off"` keeps the plain profile."""
    config, store, batches = _install(tmp_path, "alone", 0, "auto")
    off_config = replace(config, ranking=replace(config.ranking, personal="off"))
    try:
        models = pipeline.load_models(store, config)
        assert models.collab is None and models.space is not None
        assert models.space.coordinates.shape[0] == len(models.text.paper_ids)
        picks = pipeline.recommend(config, store, [config.users[0]], batches)["ada@example.org"]
        # Ada starred two transport papers and one on proteins: those topics first, transport on top.
        assert picks[0].paper.id.startswith("newtransport")
        assert all(p.paper.id.startswith(("newtransport", "newproteins")) for p in picks[:8])
        scores = [p.score for p in picks]
        assert scores == sorted(scores, reverse=True)
        breakdown = explain(config, store, config.users[0], picks[0].paper.id)
        assert breakdown["collaborative"] == 0 and breakdown["topics"] != 0
        assert breakdown["score"] == pytest.approx(breakdown["content"] + breakdown["topics"] + breakdown["interests"],
                                                   abs=1e-5)
        assert breakdown["interests"] == pytest.approx(0, abs=1e-5)
        calls: list[tuple[int, int]] = []
        pipeline.refresh(store, config, on_reader=lambda done, total: calls.append((done, total)))
        assert calls == [(1, 1)]  # one configured reader, one classifier fitted
        pipeline.refresh(store, off_config, on_reader=lambda done, total: calls.append((done, total)))
        assert calls == [(1, 1)]  # without readers' own classifiers nothing to follow
        assert pipeline.load_models(store, off_config).space is None
        plain = explain(off_config, store, config.users[0], picks[0].paper.id)
        assert plain["topics"] == 0 and plain["content"] != breakdown["content"]
    finally:
        store.close()


@pytest.mark.parametrize("mode, community, readers, expected", [
    ("auto", False, 1, True), ("auto", False, 200, True), ("auto", False, 201, False), ("on", False, 5000, True),
    ("auto", True, 1, False), ("on", True, 1, False), ("off", False, 1, False)])
def test_personal_says_when_readers_get_their_own_classifier(mode: str, community: bool, readers: int, expected: bool):
    from recommender.base.config import RankingConfig
    from recommender.model import own_classifier

    assert own_classifier.used(RankingConfig(personal=mode), community, readers) == expected


def test_personal_takes_only_its_three_values(tmp_path: Path):
    from recommender.base.errors import ConfigError

    with pytest.raises(ConfigError, match=r"ranking\.personal: expected auto or off or on, got 'always'"):
        load_config(write_config(tmp_path, extra='[ranking]\npersonal = "always"\n'))


def test_cached_and_rebuilt_profiles_join_whether_or_not_their_readers_have_a_classifier(tmp_path: Path):
    """Readers' rows come from the cache and from the log in one ranking: a reader who drops
    below three stars (no classifier) is rebuilt beside cached readers who have one."""
    from recommender.base.config import UserConfig

    config, store, batches = _install(tmp_path, "install", 3, "auto")
    config = replace(config, users=(config.users[0], UserConfig(email="r0@example.org")))
    try:
        pipeline.refresh(store, config)
        store.unstar(store.user_id("r0@example.org"), ["oldtransport0"])
        reused, built = _reused_and_built(config, store)
        assert reused.dense is not None and built.dense is not None
        assert np.allclose(reused.dense, built.dense) and np.any(built.dense[0]) and not np.any(built.dense[1])
        assert [_row(reused, i) for i in range(2)] == [_row(built, i) for i in range(2)]
        picks = pipeline.recommend(config, store, list(config.users), batches)
        assert picks["ada@example.org"][0].paper.id.startswith("newtransport") and picks["r0@example.org"]
    finally:
        store.close()


def _motor_and_biology(count: int, rng: np.random.Generator) -> list[str]:
    """``count`` abstracts of three words each, alternately about biology and about motors;
    a motor abstract also says "automobile" (every other one) or "car", never both."""
    motor, biology = ["engine", "wheel", "brake", "fuel", "driver"], ["protein", "enzyme", "cell", "membrane", "gene"]
    abstracts = []
    for i in range(count):
        words = list(rng.choice(motor if i % 2 else biology, size=3, replace=False))
        abstracts.append(" ".join(words + (["automobile" if i % 4 == 1 else "car"] if i % 2 else [])))
    return abstracts


def test_word_vectors_bring_together_words_that_share_company_but_never_meet():
    """"automobile" and "car" never share a paper, but both keep company with "engine" and
    "wheel": their papers' word-vector sums are close, while a paper on proteins is not."""
    from recommender.base.config import RankingConfig
    from recommender.model import word_vectors

    abstracts = _motor_and_biology(60, np.random.default_rng(0)) + ["car", "automobile", "protein"]
    ids = [f"p{i}" for i in range(len(abstracts))]
    model = tfidf.fit(ids, [""] * len(ids), abstracts, RankingConfig(), 1)
    sums = word_vectors.paper_sums(model, 8)
    assert sums is not None and sums.shape == (len(ids), 8)
    car, automobile, protein = sums[-3], sums[-2], sums[-1]
    assert float(car @ automobile) > 0.6 and abs(float(car @ protein)) < 0.1
    # Their TF-IDF rows share no term: the terms alone cannot relate them.
    assert model.matrix[len(ids) - 3].multiply(model.matrix[len(ids) - 2]).sum() == 0


def test_a_new_papers_reader_factors_are_predicted_from_its_word_vectors_too():
    """Readers save "car" papers or biology papers, never an "automobile" one: a new paper
    saying only "automobile" gets the car readers' factors, and `cf_word_weight` decides
    whether its word vectors take part in that prediction."""
    from dataclasses import replace

    from recommender.base.config import RankingConfig
    from recommender.model import reader_factors

    rng = np.random.default_rng(0)
    abstracts = _motor_and_biology(80, rng) + ["automobile"]
    ids = [f"p{i}" for i in range(len(abstracts))]
    model = tfidf.fit(ids, [""] * len(ids), abstracts, RankingConfig(), 1)
    car_papers, biology_papers = [i for i in range(80) if i % 4 == 3], [i for i in range(80) if i % 2 == 0]
    saves = [(reader, ids[paper]) for reader in range(12)
             for paper in rng.choice(car_papers if reader % 2 else biology_papers, size=6, replace=False)]
    small = replace(RankingConfig(), community="on", cf_factors=4, lsa_dims=4, word_dims=4)
    predicted = {}
    for weight in (0.0, 1.0):
        fitted = reader_factors.fit(model, saves, replace(small, cf_word_weight=weight))
        assert fitted is not None
        car = fitted.combined[[i for i in car_papers if fitted.has_learned[i]]].mean(axis=0)
        biology = fitted.combined[[i for i in biology_papers if fitted.has_learned[i]]].mean(axis=0)
        new = fitted.predicted[len(ids) - 1]
        assert float(new @ car) > 0.9 and abs(float(new @ biology)) < 0.1
        predicted[weight] = fitted.predicted
    assert not np.allclose(predicted[0.0], predicted[1.0])


def test_the_papers_factors_are_fit_a_chunk_of_readers_at_a_time_and_match_the_exact_svd():
    """The community's factors never hold a row per reader (products a chunk of readers at a
    time) and still are the leading singular directions: on saves with a few strong tastes and
    noise, the same singular values and subspace as the exact SVD, whatever the chunk."""
    import scipy.sparse as sp

    from recommender.model.reader_factors import paper_factors
    from recommender.model.unit_rows import unit_rows

    rng = np.random.default_rng(4)
    papers, readers, k = 300, 1_500, 8
    taste = rng.integers(0, k, papers)
    rows, columns = [], []
    for reader in range(readers):
        liked = np.flatnonzero(taste == reader % k)
        picks = np.concatenate([rng.choice(liked, 6, replace=False), rng.integers(0, papers, 1)])
        rows += picks.tolist()
        columns += [reader] * len(picks)
    saves = unit_rows(sp.csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(papers, readers)))
    values, vectors = np.linalg.eigh((saves @ saves.T).toarray())
    exact = vectors[:, np.argsort(values)[::-1][:k]]
    strengths = np.sqrt(np.sort(values)[::-1][:k])
    for chunk in (97, 1_500, 10_000):
        found = paper_factors(saves, k, chunk=chunk)
        assert found.shape == (papers, k)
        assert np.allclose(np.linalg.norm(found, axis=0), strengths, rtol=1e-3)
        basis = np.linalg.qr(found)[0]
        assert np.linalg.svd(exact.T @ basis, compute_uv=False).min() > 0.999  # the same subspace
        assert (found[np.argmax(np.abs(found), axis=0), np.arange(k)] > 0).all()  # svd_flip's signs
