"""A reader's library imported before any feed (the first thing a researcher does), and what a
reader sees of a ranking afterwards: the match, the digest preview, the words of an
explanation, the authors' names."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recommender.base.author_names import (
    arxiv_authors,
    bibtex_names,
    listed_names,
    without_dblp_number,
)
from recommender.base.config import RankingConfig, load_config
from recommender.base.domain import CLOSE_SIMILARITY
from recommender.model import own_classifier, sparse_loops, tfidf
from recommender.model.ranking import matches_among
from recommender.store import Store
from recommender.store.feedback import FeedbackLog

from conftest import SEEDS, Invoke, smtp_section, write_config
from smtp_server import SmtpServer

LIBRARY = Path(__file__).parent / "fixtures" / "library"
BETTER_BIBTEX = LIBRARY / "better-bibtex-philosophy.bib"  # a real Better BibTeX export, 36 papers
ZOTERO_CSV = LIBRARY / "zotero-export.csv"


def _no_traceback(*outputs: str) -> None:
    for output in outputs:
        assert "Traceback" not in output and "ValueError" not in output, output


def test_a_library_imported_before_any_feed_stars_and_ranks_nothing_with_one_line(run: Invoke, tmp_path: Path):
    run("init")
    for library in (BETTER_BIBTEX, ZOTERO_CSV):
        imported = run("import-library", str(library))
        _no_traceback(imported.stdout, imported.stderr)
        assert "new star(s)" in imported.stdout + imported.stderr
    one_of_them = run("papers", "list").stdout.splitlines()[0].split("\t")[0]
    starred = run("star", one_of_them)
    assert starred.stdout.startswith(f"starred {one_of_them}")
    recommended = run("recommend")
    assert recommended.stdout.splitlines() == [
        "no new papers to rank yet: get some with `recommender fetch` (the [[sources]] of the config) "
        "or `recommender ingest FILE`"]
    as_json = run("recommend", "--json")
    assert as_json.stdout == "" and "recommender fetch" in as_json.stderr  # stdout stays JSON lines
    profile = run("profile", "show").stdout
    assert profile.startswith("profile of ada@example.org") and "philosophy" in profile
    explained = run("explain", one_of_them).stdout
    assert "you starred this paper" in explained and "-0.0000" not in explained
    preview = run("digest", "preview", "--out", str(tmp_path / "preview.html"))
    assert preview.stdout.startswith("ada@example.org: nothing new") and not (tmp_path / "preview.html").exists()


def test_papers_fetched_after_the_library_are_ranked_by_the_readers_own_classifier(run: Invoke, seeds: list[Path]):
    run("init")
    run("import-library", str(ZOTERO_CSV))
    run("ingest", str(seeds[0]))
    picks = [json.loads(line) for line in run("recommend", "--json").stdout.splitlines()]
    assert picks and all(p["personalized"] for p in picks)
    assert all(p["score"] < 0 for p in picks)  # a classifier's decision values: the raw score stays
    matches = [p["match"] for p in picks]
    assert matches == sorted(matches, reverse=True) and all(0 <= m <= 100 for m in matches)
    assert matches[0] == 100 and matches == [p["match"] for p in map(json.loads, run(
        "recommend", "--json").stdout.splitlines())]  # the same reader and batch: the same matches
    text = run("recommend").stdout
    assert f"1. [{matches[0]:3d}% match] " in text and f"{picks[0]['score']:.3f}" not in text
    for pick in (picks[0], picks[-1]):  # explain gives the same match, beside the raw score
        explained = json.loads(run("explain", pick["paper_id"], "--json").stdout)
        assert (explained["match"], explained["score"]) == (pick["match"], pick["score"])
    explained = run("explain", picks[0]["paper_id"]).stdout.splitlines()
    assert explained[1].startswith(f"score {picks[0]['score']:.4f} = ") and "only their order counts" in explained[1]
    assert f"match {picks[-1]['match']}%:" in run("explain", picks[-1]["paper_id"]).stdout


def test_a_paper_with_no_word_the_model_knows_is_never_a_pick(run: Invoke, seeds: list[Path], tmp_path: Path):
    # Its every score part is 0, above a classifier's mostly negative scores: it would be first.
    run("init")
    run("import-library", str(BETTER_BIBTEX))
    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"id": "blank-1", "title": "x"}\n{"id": "blank-2", "title": "Editorial", "abstract": "Editorial."}\n')
    run("ingest", str(seeds[0]), str(notes))
    picks = [json.loads(line)["paper_id"] for line in run("recommend", "--json", "--limit", "500").stdout.splitlines()]
    assert len(picks) > 20 and not {"blank-1", "blank-2"} & set(picks)


def test_a_classifier_is_never_fit_without_papers_to_set_the_stars_against():
    """Every paper of the corpus starred (an install whose only papers are the reader's library),
    or all but a few: the Rocchio profile, not a classifier fit on one class."""
    titles = [f"paper {i} about optimal transport and wasserstein distances" for i in range(6)]
    model = tfidf.fit([f"p{i}" for i in range(6)], titles, [""] * 6, RankingConfig(), 1)
    space = own_classifier.LsaSpace(np.ones((6, 2), dtype=np.float32))
    every = sp.csr_matrix(np.ones((1, 6)))
    all_but_two = sp.csr_matrix(np.array([[1, 1, 1, 1, 0, 0]], dtype=float))
    for pull in (every, all_but_two):
        terms, dense, fitted = own_classifier.classifier_rows(model, space, pull, RankingConfig())
        assert not fitted.any() and terms.nnz == 0 and not dense.any()
    enough = sp.csr_matrix(np.array([[1, 1, 1, 0, 0, 0]], dtype=float))
    assert own_classifier.classifier_rows(model, space, enough, RankingConfig())[2].all()


def test_a_match_is_the_share_of_the_readers_other_candidates_scored_below():
    # A reader's own classifier scores every paper below zero: the match does not care.
    total = np.array([[-0.15, -0.10, -0.05, -0.10, -0.30]])
    scores = np.array([[-0.05, -0.10, -0.10, -0.15]])
    # -0.10: above two of the four others, level with one (half of it): 2.5 / 4
    assert matches_among(total, scores, [], []).tolist() == [[100, 62, 62, 25]]
    # The paper the reader starred (blocked) is no candidate: it counts neither above nor below.
    assert matches_among(total, scores[:, :1], [0], [4]).tolist() == [[100]]
    assert matches_among(total, np.array([[-0.3]]), [0], [4]).tolist() == [[0]]
    assert matches_among(np.array([[0.2]]), np.array([[0.2]]), [], []).tolist() == [[100]]  # the only one


def test_matches_of_many_readers_are_counted_by_the_compiled_kernel_as_numpy_counts_them():
    rng = np.random.default_rng(7)
    total = np.round(rng.standard_normal((64, 4_000)), 2).astype(np.float32)  # rounded: ties happen
    picked = np.argsort(-total, axis=1, kind="stable")[:, :10]
    scores = np.take_along_axis(total, picked, axis=1).astype(np.float64)
    rows, cols = np.nonzero(rng.random(total.shape) < 0.01)
    counts = rng.integers(0, 11, 64)
    assert total.size >= sparse_loops.COMPILED_MIN_WORK and sparse_loops.compiled(sparse_loops.places_among)
    found = matches_among(total, scores, rows.tolist(), cols.tolist(), counts)
    candidates = total.astype(np.float64)
    candidates[rows, cols] = np.nan
    others = np.isfinite(candidates).sum(axis=1) - 1
    for k in range(10):
        below = (candidates < scores[:, k:k + 1]).sum(axis=1)
        level = (candidates == scores[:, k:k + 1]).sum(axis=1) - 1
        expected = np.rint(100 * (below + level / 2) / others).astype(int)
        assert found[:, k].tolist() == np.where(k < counts, expected, 0).tolist()


def test_digest_preview_after_a_sent_digest_says_nothing_new(tmp_path: Path, smtp_server: SmtpServer, run: Invoke):
    config = write_config(tmp_path, extra=smtp_section(smtp_server.port))
    run("init", config=config)
    run("ingest", str(SEEDS[0]), config=config)
    tarot = run("papers", "search", "TAROT", config=config).stdout.split("\t")[0]
    run("star", tarot, config=config)
    assert "ada@example.org: sent" in run("digest", "send", config=config).stdout
    out = tmp_path / "preview.html"
    preview = run("digest", "preview", "--out", str(out), config=config).stdout
    assert preview.startswith("ada@example.org: nothing new") and "recommender fetch" in preview
    assert not out.exists()
    assert "nothing new" in run("digest", "send", "--dry-run", config=config).stdout


STAR = ("Optimal transport for domain adaptation: Type II errors",
        "Abstract: we consider optimal transport between source and target domains and establish "
        "Type II error bounds for Wasserstein barycenters.")
CANDIDATE = ("Optimal transport barycenters with Type II guarantees",
             "Abstract: we consider entropic optimal transport and establish Type II bounds for "
             "Wasserstein barycenters of empirical measures.")
OTHERS = [("Optimization of transport networks", "Optimization methods optimize the transport networks of cities."),
          ("Optimization in practice", "Optimization of optimization: optimizing optimizers for optimization."),
          ("Protein folding with coevolution", "Residue contacts guide protein structure prediction and folding."),
          ("Membrane proteins by cryo-electron microscopy", "We resolve membrane protein structures at atomic resolution.")]


def _jsonl(path: Path, rows: list[tuple[str, str]], prefix: str) -> Path:
    path.write_text("".join(json.dumps({"id": f"{prefix}{i}", "title": t, "abstract": a}) + "\n"
                            for i, (t, a) in enumerate(rows)), encoding="utf-8")
    return path


def _written_in(term: str, title: str, abstract: str) -> bool:
    text = " ".join(re.findall(r"\w+", f"{title} {abstract}".lower()))
    return re.search(rf"\b{re.escape(term)}\b", text) is not None


def _top_pick(run: Invoke, tmp_path: Path, star: tuple[str, str], candidate: tuple[str, str]) -> dict:
    run("init")
    run("ingest", str(_jsonl(tmp_path / "old.jsonl", [star, *OTHERS[:2]], "old")))
    run("ingest", str(_jsonl(tmp_path / "new.jsonl", [candidate, *OTHERS[2:]], "new")))
    run("star", "old0")
    top = json.loads(run("recommend", "--json").stdout.splitlines()[0])
    assert top["paper_id"] == "new0"
    return top


def test_a_stemmed_term_is_shown_as_both_papers_write_it(run: Invoke, tmp_path: Path):
    """The corpus writes the stem "optim" mostly as "optimization"; the two papers share
    "optimal transport", never "optimization transport"."""
    star = ("Optimal transport for domain adaptation",
            "We align domains with optimal transport plans between source and target measures.")
    candidate = ("Entropic optimal transport at scale",
                 "Entropic optimal transport plans computed with Sinkhorn scaling for large measures.")
    top = _top_pick(run, tmp_path, star, candidate)
    terms = [t["term"] for t in top["terms"]]
    assert terms[0] == "optimal transport" and "optimization" not in top["why"]
    for term in terms:
        assert _written_in(term, *star) and _written_in(term, *candidate), term
    assert [t["term"] for t in json.loads(run("explain", "new0", "--json").stdout)["terms"]] == terms


def test_explanations_name_no_filler(run: Invoke, tmp_path: Path):
    top = _top_pick(run, tmp_path, STAR, CANDIDATE)
    terms = [t["term"] for t in top["terms"]]
    assert terms
    for term in terms:
        assert _written_in(term, *STAR) and _written_in(term, *CANDIDATE), term
        assert not set(term.split()) & {"type", "ii", "consider", "establish", "abstract"}, term


def test_a_paper_only_clicked_on_is_a_paper_you_liked(run: Invoke, tmp_path: Path, config_path: Path):
    run("init")
    run("ingest", str(_jsonl(tmp_path / "old.jsonl", [STAR, *OTHERS[:2]], "old")))
    run("ingest", str(_jsonl(tmp_path / "new.jsonl", [CANDIDATE, *OTHERS[2:]], "new")))
    store = Store.open(load_config(config_path).database.url)
    FeedbackLog(store).record(store.user_id("ada@example.org"), "old0", "more", None, "t-1", "test", datetime.now(UTC))
    store.close()
    top = json.loads(run("recommend", "--json").stdout.splitlines()[0])
    assert top["paper_id"] == "new0" and top["why"].startswith(f'close to a paper you liked "{STAR[0]}"')
    assert "starred" not in top["why"]
    explained = run("explain", "new0").stdout
    assert "near a paper you liked" in explained and "near your starred paper" not in explained
    run("star", "old0")
    assert "close to your starred paper" in json.loads(run("recommend", "--json").stdout.splitlines()[0])["why"]


def test_explain_shows_no_negative_zero(run: Invoke, tmp_path: Path):
    run("init")
    run("ingest", str(_jsonl(tmp_path / "old.jsonl", [STAR, *OTHERS[:2]], "old")))
    run("star", "old0")
    for paper in ("old0", "old1"):
        text = run("explain", paper).stdout
        assert "-0.0000" not in text and text.splitlines()[1].startswith("score ")
        assert "only their order counts" not in text  # the centroid's scores are not below 0
        breakdown = json.loads(run("explain", paper, "--json").stdout)
        for part in ("content", "topics", "collaborative", "interests"):
            assert not (breakdown[part] == 0 and math.copysign(1.0, breakdown[part]) < 0), (paper, part)


def test_dblp_numbers_are_no_part_of_a_name(run: Invoke):
    assert bibtex_names('J{\\"o}rg Hoffmann 0001 and Malte Helmert') == ("Jörg Hoffmann", "Malte Helmert")
    assert listed_names("Hoffmann 0001, Jörg; Wang 0042, Wei", ";") == ("Jörg Hoffmann", "Wei Wang")
    assert arxiv_authors("Jörg Hoffmann 0001, Bernhard Nebel") == ("Jörg Hoffmann", "Bernhard Nebel")
    assert without_dblp_number("Agent 2001") == "Agent" and without_dblp_number("2001") == "2001"
    assert without_dblp_number("Jörg Hoffmann") == "Jörg Hoffmann"
    run("init")
    run("import-library", str(LIBRARY / "dblp-hoffmann-0001.bib"))  # as DBLP's BibTeX writes him
    shown = run("papers", "show", "1106.5271").stdout
    assert "authors:  Jörg Hoffmann\n" in shown and "0001" not in shown


def test_a_pick_is_close_to_its_nearest_star_only_when_they_share_a_subject(tmp_path: Path, seeds: list[Path],
                                                                           run: Invoke):
    config = write_config(tmp_path, users="""
    [[users]]
    email = "ada@example.org"
    stars = ["TAROT: Targeted Data Selection via Optimal Transport"]
    """)
    run("init", config=config)
    run("ingest", *map(str, seeds), config=config)
    run("star", "--from-config", config=config)
    picks = [json.loads(line) for line in run("recommend", "--limit", "40", "--json", config=config).stdout.splitlines()]
    said = set()
    for pick in picks:
        nearest = json.loads(run("explain", pick["paper_id"], "--json", config=config).stdout)["nearest"]
        if not nearest:
            continue
        close = nearest[0]["similarity"] >= CLOSE_SIMILARITY
        assert pick["why"].startswith("close to" if close else "loosely related to"), (nearest[0], pick["why"])
        said.add(close)
    assert said == {True, False}
