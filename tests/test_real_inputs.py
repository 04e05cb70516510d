"""Readers against files that the real services and tools produced (tests/fixtures/SOURCES.md
says where each comes from): fields asserted exactly, after the documented normalisation
(LaTeX as Unicode, NFC, whitespace folded to one line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recommender.base.errors import InputError
from recommender.base.text import arxiv_id
from recommender.sources import arxiv, hf_daily, jsonl, parse, read_library

FIXTURES = Path(__file__).parent / "fixtures"


def _cassette(name: str) -> tuple[int, bytes]:
    """A recorded arXiv API answer: its status and the bytes arXiv sent (the recorder kept the
    body decoded as Latin-1)."""
    recorded = json.loads((FIXTURES / "arxiv" / name).read_text(encoding="utf-8"))
    return recorded["status_code"], recorded["body"].encode("latin-1")


def test_rss1_feed_titles_authors_and_abstracts_and_updated_entries_skipped():
    data = (FIXTURES / "arxiv/rss1-hep-ex-2018-05-23.xml").read_bytes()
    batch = parse(data, "rss1.xml")  # detected as arxiv
    assert [(e.arxiv_id, e.title, e.authors) for e in batch.entries] == [
        ("1805.08875", "Measurement of Transverse Single Spin Asymmetries.", ("Christopher Dilks",)),
        ("1805.09166", "Recent Top quark results from the Tevatron.", ("Boris Tuchming",)),  # CROSS LISTED kept
    ]
    assert batch.entries[0].abstract == (
        "In 2015 the first collisions between polarized protons and nuclei occurred at the Relativistic Heavy Ion "
        "Collider (RHIC), at a center-of-mass energy of √(s_NN)=200 GeV. Comparisons between spin asymmetries and "
        "cross-sections in p+p production to those in p+A production provide insight into nuclear structure, namely "
        "nuclear modification factors, nuclear dependence of spin asymmetries, and comparison to models with "
        "saturation effects. The transverse single-spin asymmetry, A_N, has been measured in π^0 production in the "
        "STAR Forward Meson Spectrometer (FMS), an electromagnetic calorimeter covering a forward psuedorapidity "
        "range of 2.6<η<4. Within this kinematic range, STAR has previously reported the persistence of large π^0 "
        "asymmetries with unexpected dependences on p_T and event topology in p+p collisions. This talk will compare "
        "these dependences to those in p+A production.")
    updated = arxiv.parse(data, "rss1.xml", include_replacements=True).entries[2]
    assert (updated.arxiv_id, updated.title) == ("1805.06430", "New Perspective on Hybrid Mesons.")
    assert updated.authors == ("Shu-Sheng Xu", "Zhu-Fang Cui", "Lei Chang", "Joannis Papavassiliou",
                               "Craig D. Roberts", "Hong-Shi Zong")


def test_announcement_feed_keeps_comparisons_converts_latex_and_splits_authors():
    batch = arxiv.parse((FIXTURES / "arxiv/atom-cs.AI-2025-08-20-excerpt.xml").read_bytes(), "cs.AI")
    assert [e.arxiv_id for e in batch.entries] == ["2508.13167", "2508.13171", "2508.13176", "2508.13177"]
    first, second, third, fourth = batch.entries
    assert len(first.authors) == 30 and first.authors[:2] == ("Weizhen Li", "Jianbo Lin")
    assert first.authors[-1] == "Wangchunshu Zhou" and first.url == "https://arxiv.org/abs/2508.13167"
    assert second.title == ("Cognitive Workspace: Active Memory Management for LLMs – An Empirical Study of "
                            "Functional Infinite Context")
    assert "confirms these advantages with p < 0.001 and Cohen's d > 23 across multiple task types" in second.abstract
    assert second.abstract.startswith("Large Language Models (LLMs) face fundamental limitations")
    assert "we consider the description logics ℰℒ and ℰℒℐ as well as several classes" in third.abstract
    assert fourth.authors == ("Nikola Pižurica", "Nikola Milović", "Igor Jovančević", "Conor Heins",
                              "Miguel de Prado")


def test_api_responses_old_and_current_format():
    old = arxiv.parse((FIXTURES / "arxiv/api-2016-search.xml").read_bytes(), "api").entries
    assert [(e.arxiv_id, e.title, e.authors) for e in old] == [(
        "cond-mat/0603029",
        "From stripe to checkerboard order on the square lattice in the presence of quenched disorder",
        ("Adrian Del Maestro", "Bernd Rosenow", "Subir Sachdev"))]
    assert old[0].abstract.startswith("We discuss the effects of quenched disorder on a model of charge density wave "
                                      "(CDW) ordering on the square lattice.")
    status, body = _cassette("api-2026-id-list-cassette.json")
    current = arxiv.parse(body, "api").entries
    assert status == 200 and [e.arxiv_id for e in current] == ["1707.08567"]
    assert current[0].title == "Proceedings of Workshop AEW10: Concepts in Information Theory and Communications"
    assert current[0].authors[-3:] == ("Tadashi Wadayama", "Dirk Wübben", "Hirosuke Yamamoto")
    assert len(current[0].authors) == 34


def test_an_api_error_entry_is_an_error_not_a_paper():
    status, body = _cassette("api-2026-error-cassette.json")
    assert status == 400
    with pytest.raises(arxiv.ArxivApiError, match="the arXiv API answered with an error: incorrect id format for abc"):
        arxiv.parse(body, "api")


def test_metadata_snapshot_rows_are_arxiv_papers():
    batch = jsonl.parse((FIXTURES / "arxiv/metadata-snapshot-excerpt.jsonl").read_bytes(), "snapshot")
    assert [(e.arxiv_id, e.url) for e in batch.entries] == [
        (i, f"https://arxiv.org/abs/{i}") for i in ("0704.0001", "0704.0002", "0704.0005", "0704.0006", "0704.0010")]
    first, second, third, fourth, fifth = batch.entries
    assert first.title == "Calculation of prompt diphoton production cross sections at Tevatron and LHC energies"
    assert first.authors == ("C. Balázs", "E. L. Berger", "P. M. Nadolsky", "C.-P. Yuan")
    assert second.authors == ("Ileana Streinu", "Louis Theran")
    assert second.abstract.startswith("We describe a new algorithm, the (k,ℓ)-pebble game with colors, and use it ")
    assert third.title == "From dyadic Λ_α to Λ_α"
    assert fourth.abstract.endswith("where more than 90% of the atoms occupy the corresponding molecular condensates.")
    assert "semicubes, and Djoković's and Winkler's relations play an important role" in fifth.abstract


def test_hugging_face_daily_response_and_an_empty_day():
    batch = hf_daily.parse((FIXTURES / "hf/daily_papers-2024-10-25-excerpt.json").read_bytes(), "hf")
    assert [(e.arxiv_id, e.title) for e in batch.entries] == [
        ("2410.17243", "Breaking the Memory Barrier: Near Infinite Batch Size Scaling for Contrastive Loss"),
        ("2410.16251", "Can Knowledge Editing Really Correct Hallucinations?")]
    assert batch.entries[0].authors == ("Zesen Cheng", "Hang Zhang", "Kehan Li", "Sicong Leng", "Zhiqiang Hu",
                                        "Fei Wu", "Deli Zhao", "Xin Li", "Lidong Bing")
    assert batch.entries[1].abstract.startswith("Large Language Models (LLMs) suffer from hallucinations, referring "
                                                "to the non-factual information")
    assert hf_daily.parse(b"[]", "empty.json").entries == ()


@pytest.mark.parametrize(("text", "expected"), [
    ("https://www.jstor.org/stable/3044046", ""), ("http://adsabs.harvard.edu/abs/2017arXiv170802025M", ""),
    ("pages 1706.03762-1706.03790", ""), ("1234.5678", ""),
    ("1706.03762", "1706.03762"), ("arXiv:1706.03762v5", "1706.03762"), ("https://arxiv.org/abs/1706.03762", "1706.03762"),
    ("https://arxiv.org/pdf/1706.03762v2.pdf", "1706.03762"), ("10.48550/arXiv.1706.03762", "1706.03762"),
    ("hep-th/9901001", "hep-th/9901001"), ("arXiv:1212.0858 [astro-ph]", "1212.0858"), ("math.CO/0601001", "math.CO/0601001"),
])
def test_arxiv_ids_come_only_from_arxiv_forms(text: str, expected: str):
    assert arxiv_id(text) == expected


def _library(name: str):
    return read_library((FIXTURES / "library" / name).read_bytes(), name)


def test_bibdesk_capitalised_fields_last_first_names_and_latex():
    read = _library("bibdesk.bib")
    assert read.skipped == [] and len(read.entries) == 2
    protein, epcam = read.entries
    assert protein.title == "Improved protein structure prediction using potentials from deep learning"
    assert len(protein.authors) == 19 and protein.authors[:2] == ("Andrew W Senior", "Richard Evans")
    assert protein.authors[7] == "Augustin Žídek"
    assert epcam.authors == ("Miha Pavšič", "Gregor Gunčar", "Kristina Djinović-Carugo", "Brigita Lenarčič")
    assert (protein.published, epcam.published) == ("2020", "2014")


def test_jabref_qiqqa_mendeley_style_and_hand_kept_libraries():
    jabref = _library("jabref-3.8.bib")
    assert [e.title for e in jabref.entries] == ["The paper in subgroup", "The article in my other subgroup",
                                                 "the paper in two groups", "the paper not in a group"]
    qiqqa = _library("qiqqa.bib")
    assert [(e.title, e.authors) for e in qiqqa.entries] == [
        ("Matters of (meta-) modeling", ("Thomas Kühne",)),
        ("The present situation in the foundations of mathematics", ("Kurt Gödel",))]
    mendeley = _library("mendeley-style.bib")  # starts with a byte-order mark
    assert mendeley.entries[0].title == "The physical volcanology of the 1600 eruption of Huaynaputina, southern Peru"
    assert mendeley.entries[0].authors[0] == "Nancy K Adams" and len(mendeley.entries[0].authors) == 7
    assert _library("hand-strings.bib").entries[0].title == "SQL is great"
    traps = _library("bibtexparser-traps.bib").entries[0]
    assert traps.title == "An amazing title"
    assert traps.abstract == ("This is an abstract. This line should be long enough to test multilines... and with a "
                              "french érudit word")


def test_better_bibtex_eprint_gives_the_arxiv_id():
    entry = _library("better-biblatex-eprint.bib").entries[0]
    assert entry.arxiv_id == "1412.2970"
    assert entry.title == ("Lieb-Robinson Bounds, Arveson Spectrum and Haag-Ruelle Scattering Theory for Gapped "
                           "Quantum Spin Systems")
    assert entry.authors == ("Sven Bachmann", "Wojciech Dybalski", "Pieter Naaijkens")


def test_string_macros_joined_with_hash_are_resolved():
    from recommender.sources import bibtex

    read = bibtex.read((FIXTURES / "library/hand-concatenation.bib").read_bytes(), "lib.bib")
    assert read.entries[0].title == "Title"
    # The same mechanism on the fields a profile uses (a derived case: the fixture's journal is not kept).
    derived = b'@string{MCD = "McDermott, G."}\n@article{k, author = MCD # " and Smith, J.", title = "T " # MCD}\n'
    entry = bibtex.read(derived, "derived.bib").entries[0]
    assert entry.authors == ("G. McDermott", "J. Smith") and entry.title == "T McDermott, G."


def test_zotero_csv_export():
    read = _library("zotero-export.csv")
    assert read.skipped == []
    assert [(e.arxiv_id, e.authors) for e in read.entries] == [
        ("1708.02025", ("F. Marin", "A. Rohatgi", "S. Charlot")),  # from Pages "arXiv:1708.02025", not the ADS URL
        ("1707.02160", ("Mark Taylor",)),
        ("", ("F. Hroch",)),
        ("1212.0858", ("B. J. Maughan",)),
    ]
    assert read.entries[1].title == "TOPCAT: Desktop Exploration of Tabular Data for Astronomy and Beyond"
    assert read.entries[3].url == "http://arxiv.org/abs/1212.0858"


def test_ris_export():
    entry = _library("sciencedirect.ris").entries[0]
    assert entry.title == "Phase separation and ω transformation in binary V-Ti and ternary V-Ti-Cr alloys"
    assert entry.authors == ("Chanchal Ghosh", "Joysurya Basu", "Divakar Ramachandran", "E. Mohandas")
    assert entry.published == "2016" and entry.arxiv_id == ""


def test_unreadable_entries_are_skipped_with_their_line_and_reason():
    data = (b"@article{good, title = {Kept}}\n\n@article{, title = {No key, still a paper}}\n\n"
            b"@article{dup, title = {First}}\n@article{dup, title = {Second}}\n\n@article{bad, title = {unclosed\n")
    read = read_library(data, "lib.bib")
    assert [e.title for e in read.entries] == ["Kept", "No key, still a paper", "First", "Second"]
    assert read.skipped == ["lib.bib:8: an entry is not closed (a brace or quote is missing) or a field is malformed; "
                            "skipped"]


def test_formats_are_detected_from_the_content():
    from recommender.sources import detect_library_format

    assert {name: detect_library_format((FIXTURES / "library" / name).read_bytes(), name) for name in (
        "bibdesk.bib", "zotero-export.csv", "sciencedirect.ris", "mendeley-style.bib", "better-bibtex-philosophy.json",
        "zotero-manual-tags-excerpt.csv", "mendeley-desktop-tags-excerpt.bib")} == {
        "bibdesk.bib": "bibtex", "zotero-export.csv": "csv", "sciencedirect.ris": "ris", "mendeley-style.bib": "bibtex",
        "better-bibtex-philosophy.json": "bbt-json", "zotero-manual-tags-excerpt.csv": "csv",
        "mendeley-desktop-tags-excerpt.bib": "bibtex"}
    with pytest.raises(InputError, match="not a known library format"):
        detect_library_format(b"just some words\n", "notes.txt")


def _config(tmp_path: Path) -> Path:
    from conftest import write_config

    return write_config(tmp_path)


def test_an_empty_day_is_nothing_new_and_an_api_error_stores_nothing(tmp_path: Path, run):
    path = _config(tmp_path)
    run("init", config=path)
    empty = tmp_path / "daily.json"
    empty.write_text("[]")
    result = run("ingest", str(empty), config=path)
    assert "1 with nothing new" in result.stderr
    error = tmp_path / "error.xml"
    error.write_bytes(_cassette("api-2026-error-cassette.json")[1])
    failed = run("ingest", str(error), config=path, code=1)
    assert failed.stderr == (f"Error: {error}: the arXiv API answered with an error: incorrect id format for abc\n")
    assert run("papers", "list", config=path).stdout == ""


def test_a_paper_seen_in_the_snapshot_and_then_a_feed_with_a_revised_title_is_stored_once(tmp_path: Path, run):
    path = _config(tmp_path)
    run("init", config=path)
    run("ingest", "--format", "jsonl", str(FIXTURES / "arxiv/metadata-snapshot-excerpt.jsonl"), config=path)
    feed = tmp_path / "feed.jsonl"
    feed.write_text(json.dumps({"id": "feed-0704-0002", "arxiv_id": "arXiv:0704.0002v2",
                                "title": "Sparsity-certifying graph decompositions (revised)",
                                "abstract": "A later version."}) + "\n")
    run("ingest", str(feed), config=path)
    ids = [line.split("\t")[0] for line in run("papers", "list", config=path).stdout.splitlines()]
    assert sorted(ids) == ["0704.0001", "0704.0002", "0704.0005", "0704.0006", "0704.0010"]
    # The id the feed gave the paper stays an alias every command accepts.
    shown = json.loads(run("papers", "show", "feed-0704-0002", "--json", config=path).stdout)
    assert shown["id"] == "0704.0002" and shown["title"] == "Sparsity-certifying Graph Decompositions"
    run("star", "--offline", "feed-0704-0002", config=path)
    assert [json.loads(line)["id"] for line in run("stars", "--json", config=path).stdout.splitlines()] == ["0704.0002"]
    run("unstar", "feed-0704-0002", config=path)
    assert run("stars", config=path).stdout == ""


def test_merged_titles_keep_both_ids(tmp_path: Path, run):
    path = _config(tmp_path)
    run("init", config=path)
    first = tmp_path / "a.jsonl"
    first.write_text(json.dumps({"id": "site-a-17", "title": "A Study of Things", "abstract": "x"}) + "\n")
    second = tmp_path / "b.jsonl"
    second.write_text(json.dumps({"id": "site-b-99", "title": "A study of things.", "abstract": "x"}) + "\n")
    run("ingest", str(first), config=path)
    run("ingest", str(second), config=path)
    assert json.loads(run("papers", "show", "site-b-99", "--json", config=path).stdout)["id"] == "site-a-17"
    run("star", "--offline", "site-b-99", config=path)
    lines = tmp_path / "stars.csv"
    lines.write_text("user,paper_id\nada@example.org,site-b-99\n")
    assert "imported 0 new star(s)" in run("stars", "import", str(lines), config=path).stderr


def test_works_that_share_a_title_but_no_author_stay_apart(tmp_path: Path, run):
    path = _config(tmp_path)
    run("init", config=path)
    digest = tmp_path / "day.jsonl"
    digest.write_text("\n".join(json.dumps(e) for e in [
        {"id": "j1-ed", "title": "Editorial", "abstract": "One journal's.", "authors": ["Ann Smith"]},
        {"id": "j2-ed", "title": "Editorial", "abstract": "Another's.", "authors": ["Bo Chen", "Carl Jung"]},
        # the same work again, its authors written another way: one paper
        {"id": "j2-ed-copy", "title": "EDITORIAL.", "abstract": "Another's.", "authors": ["Jung, C.", "B. Chen"]},
    ]) + "\n")
    run("ingest", str(digest), config=path)
    ids = [line.split("\t")[0] for line in run("papers", "list", config=path).stdout.splitlines()]
    assert sorted(ids) == ["j1-ed", "j2-ed"]
    assert json.loads(run("papers", "show", "j2-ed-copy", "--json", config=path).stdout)["id"] == "j2-ed"

    # A library of commentaries all titled "§ 305 BGB" by different authors, none with an id
    # (Better BibTeX JSON of a legal library): one paper each, and importing it again adds none.
    library = FIXTURES / "library/better-bibtex-legal-commentaries.json"
    first = run("import-library", "--offline", str(library), config=path).stderr
    assert "86 imported, 3 matched stored papers, 83 added" in first
    titled = [line for line in run("papers", "search", "305 BGB", config=path).stdout.splitlines()
              if line.endswith("\t§ 305 BGB")]
    assert len(titled) == 3
    again = run("import-library", "--offline", str(library), config=path).stderr
    assert "86 imported, 86 matched stored papers, 0 added" in again


def test_readers_see_unicode_and_et_al_while_json_keeps_every_author(tmp_path: Path, run):
    path = _config(tmp_path)
    run("init", config=path)
    run("ingest", "--format", "arxiv", str(FIXTURES / "arxiv/atom-cs.AI-2025-08-20-excerpt.xml"), config=path)
    shown = run("papers", "show", "2508.13167", config=path).stdout
    assert "authors:  Weizhen Li, Jianbo Lin, Zhuosong Jiang, Jingyi Cao, Xinpeng Liu, Jiayu Zhang, " \
           "Zhenqiang Huang, Qianben Chen et al.\n" in shown
    full = json.loads(run("papers", "show", "2508.13167", "--json", config=path).stdout)
    assert len(full["authors"]) == 30 and full["arxiv_id"] == "2508.13167"
    latex = json.loads(run("papers", "show", "2508.13177", "--json", config=path).stdout)
    assert latex["authors"][0] == "Nikola Pižurica"
    import unicodedata

    assert unicodedata.is_normalized("NFC", json.dumps(latex, ensure_ascii=False))


@pytest.mark.parametrize(("latex", "shown"), [
    (r"200\,{\mbox{$\mu$}}{J} pulses", "200 μJ pulses"),
    ("We get 50% more and 90% of the atoms", "We get 50% more and 90% of the atoms"),  # % is not a comment
    (r"Michal Hajdu\v{s}ek and Jakob G\"unther", "Michal Hajdušek and Jakob Günther"),
    (r"$\mathcal{O}(n^2)$ time", "𝒪(n^2) time"),
    ("Lambda - d Lambda < k < Lambda, where", "Lambda - d Lambda < k < Lambda, where"),
    (r"\href{https://example.org}{the code}", "the code <https://example.org>"),
])
def test_latex_becomes_unicode_and_no_text_is_dropped(latex: str, shown: str):
    from recommender.base.latex import readable

    assert readable(latex) == shown


def test_each_reader_gives_the_primary_category_which_is_stored_and_in_json(tmp_path: Path, run):
    """The API names the primary category; the feeds list it first (a cross-list's own primary
    included); RSS 1.0 puts it in the title's brackets; the snapshot lists it first too."""
    fixture = FIXTURES / "arxiv"
    atom = arxiv.parse((fixture / "atom-cs.AI-2025-08-20-excerpt.xml").read_bytes(), "cs.AI").entries
    assert [e.category for e in atom] == ["cs.AI"] * 4
    assert [e.category for e in arxiv.parse((fixture / "api-2016-search.xml").read_bytes(), "api").entries] == [
        "cond-mat.str-el"]  # the primary, not the first of its categories in document order
    rss1 = arxiv.parse((fixture / "rss1-hep-ex-2018-05-23.xml").read_bytes(), "rss1", include_replacements=True)
    assert [(e.arxiv_id, e.category) for e in rss1.entries] == [
        ("1805.08875", "hep-ex"), ("1805.09166", "hep-ex"), ("1805.06430", "nucl-th")]
    rss2 = arxiv.parse((Path(__file__).parent / "data/arxiv_rss.xml").read_bytes(), "cs.LG").entries
    assert [(e.arxiv_id, e.category) for e in rss2] == [("2503.10001", "cs.LG"), ("2503.10002", "")]
    snapshot = jsonl.parse((fixture / "metadata-snapshot-excerpt.jsonl").read_bytes(), "snapshot").entries
    assert [e.category for e in snapshot] == ["hep-ph", "math.CO", "math.CA", "cond-mat.mes-hall", "math.CO"]
    own = jsonl.parse(b'{"title": "A", "category": "q-bio.NC"}\n{"title": "B", "categories": ["stat.ML", "cs.LG"]}\n'
                      b'{"title": "C"}\n', "own.jsonl").entries
    assert [e.category for e in own] == ["q-bio.NC", "stat.ML", ""]

    path = _config(tmp_path)
    run("init", config=path)
    run("ingest", str(fixture / "atom-cs.AI-2025-08-20-excerpt.xml"), config=path)
    run("ingest", "--format", "jsonl", str(fixture / "metadata-snapshot-excerpt.jsonl"), config=path)
    assert json.loads(run("papers", "show", "2508.13171", "--json", config=path).stdout)["category"] == "cs.AI"
    assert "\ncategory: cs.AI\n" in run("papers", "show", "2508.13171", config=path).stdout
    assert json.loads(run("papers", "show", "0704.0002", "--json", config=path).stdout)["category"] == "math.CO"
    run("star", "--offline", "2508.13167", config=path)
    picks = [json.loads(line) for line in run("recommend", "--json", config=path).stdout.splitlines()]
    assert picks and {p["category"] for p in picks} <= {"cs.AI", "hep-ph", "math.CO", "math.CA", "cond-mat.mes-hall"}
