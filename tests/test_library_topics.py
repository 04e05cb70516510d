"""`import-library --topics-from` on real exports (tests/fixtures/SOURCES.md): Better BibTeX
with collections (BibTeX and its JSON), JabRef groups (2.10, 3.8, 5 and JabRef's own example
library), Mendeley Desktop tags and a Zotero CSV's manual tags. Through the CLI into a real
SQLite file; each test names the papers that go to each topic."""

from __future__ import annotations

import json
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from conftest import Invoke, write_config

LIBRARY = Path(__file__).parent / "fixtures" / "library"


def _import(run: Invoke, export: str, kind: str, config: Path | None = None) -> tuple[dict[str, str | None], list[str]]:
    """Each starred title's topic after the import, and the topic names offered as a block."""
    run("init", config=config)
    result = run("import-library", "--offline", "--topics-from", kind, str(LIBRARY / export), config=config)
    stars = [json.loads(line) for line in run("stars", "--json", config=config).stdout.splitlines()]
    offered = tomllib.loads("[[users]]\n" + result.stdout)["users"][0].get("topics", []) if result.stdout else []
    return {s["title"]: s["topic"] for s in stars}, [t["name"] for t in offered]


@pytest.mark.parametrize(("export", "expected"), [
    # JabRef 5: nested StaticGroups (Group1a, Group1b under Group1), a group named "jfd1:1"
    ("jabref-5-nested-groups.bib", {
        "Virtual Sensing Directional Hub MAC (VSDH-MAC) Protocol with Power Control": "Group2",
        "An Experimental Study of the Variability of the Shielding Effectiveness of Circuit Board Shields": "Group1",
        "Coupling of Energy into PCB traces in a reverberant environment: Absorption cross-section and Risk of "
        "Susceptibility": "Group1a",  # in Group1a, jfd1:1 and Group2: the first of the two largest
        "Numerical and Analytical Analysis of Stochastic Electromagnetic Fields Coupling to a Printed Circuit Board "
        "Trace": "Group1a"}),
    # JabRef 2.10: no groups field; the group tree lists each group's citation keys
    ("jabref-2.10-groupstree.bib", {"The paper in my-subgroup-2": "my-subgroup-2",
                                    "The article in my-other-subgroup-2": "my-other-subgroup-2",
                                    "JR2: paper not in a group": None}),
])
def test_jabref_groups_give_each_paper_its_group(run: Invoke, export: str, expected: dict[str, str | None]):
    starred, offered = _import(run, export, "groups")
    assert starred == expected
    assert set(offered) == {t for t in expected.values() if t}


def test_a_configured_jabref_group_named_with_a_colon_takes_its_papers(tmp_path: Path, run: Invoke):
    config = write_config(tmp_path, users='[[users]]\nemail = "ada@example.org"\n[[users.topics]]\nname = "jfd1:1"\n')
    starred, offered = _import(run, "jabref-5-nested-groups.bib", "collections", config=config)
    assert [title for title, topic in starred.items() if topic == "jfd1:1"] == [
        "Coupling of Energy into PCB traces in a reverberant environment: Absorption cross-section and Risk of "
        "Susceptibility"]
    assert sorted(offered) == ["Group1", "Group1a", "Group2"]  # the configured one is not offered again


def test_jabref_keyword_groups_take_the_papers_their_field_matches(run: Invoke):
    """JabRef's example library: a static group "Used" (groups field), keyword groups "Read"
    and "Skimmed" on its `readstatus` field, and search groups (queries, not read)."""
    starred, offered = _import(run, "jabref-chocolate.bib", "groups")
    assert Counter(starred.values()) == {"Used": 5, "Skimmed": 3, None: 7}
    assert {t for t, topic in starred.items() if topic == "Skimmed"} == {
        "Cocoa and Chocolate in Human Health and Disease", "The Health Effects of Chocolate and Cocoa: A Systematic Review",
        "Effects of chocolate, cocoa, and flavan-3-ols on cardiovascular health: a systematic review and meta-analysis "
        "of randomized trials"}
    assert offered == ["Used", "Skimmed"]  # "Read" holds the same five as "Used": none goes there


def test_better_bibtex_collections_agree_between_its_bibtex_and_json_exports(tmp_path: Path, run: Invoke):
    """One Zotero library (a philosophy bibliography, 36 items in nested collections), exported
    by Better BibTeX as BibTeX (`groups` fields and a JabRef group tree) and as BBT JSON."""
    from_bibtex, offered = _import(run, "better-bibtex-philosophy.bib", "collections")
    (tmp_path / "json").mkdir()
    json_config = write_config(tmp_path / "json")  # a second database
    from_json, offered_json = _import(run, "better-bibtex-philosophy.json", "collections", config=json_config)
    assert len(from_bibtex) == len(from_json) == 36
    same = from_bibtex.keys() & from_json.keys()  # Better BibTeX title-cases a few titles in BibTeX
    assert len(same) == 33 and {t: from_bibtex[t] for t in same} == {t: from_json[t] for t in same}
    counts = Counter(from_json.values())
    assert (counts["Oeuvres"], counts["Ouvrages"], counts["_Non-classees"], len(counts)) == (12, 4, 2, 18)
    # A collection named with a comma stays whole (Better BibTeX joins names with "," unescaped)
    assert from_bibtex["Intrinsic Information"] == from_json["Intrinsic Information"] == \
        "Indication (relation d', en lien avec Dretske)"
    assert "Indication (relation d', en lien avec Dretske)" in offered
    assert sorted(offered) == sorted(offered_json) and None not in from_json.values()


MENDELEY = {
    "Secondary bitmap indexes with vertical and horizontal partitioning": "bitmaps",
    "Near-optimal algorithms for shared filter evaluation in data stream systems": "work sharing",
    "Histogram-Aware Sorting for Enhanced Word-Aligned Compression in Bitmap Indexes": "bitmaps",
    "Indexing million of packets per second using GPUs": "bitmaps",
    "Reusing invariants": "work sharing",
    "Exploitation of Pre-sortedness for Sorting in Query Processing: The TempTris-Algorithm for UB-Trees": "sortedness",
    "The Revolution In Database System Architecture": "Classics",
    "Continuously adaptive continuous queries over streams": "work sharing",
    "Shark: SQL and Rich Analytics at Scale": "zonemaps",
    "On the Multiple-query Optimization Problem": "work sharing",
    "The Netezza Data Appliance Architecture: A Platform for High Performance Data Warehousing and Analytics":
        "zonemaps",  # tagged "Zonemaps": one topic with "zonemaps"
    "The RDF-3X engine for scalable management of RDF data": None,  # author keywords, no tag
}


def test_mendeley_tags_are_the_readers_folders(tmp_path: Path, run: Invoke, config_path: Path):
    """Mendeley Desktop exports its tags in `mendeley-tags` (and again, among the authors'
    keywords, in `keywords`); its folders are not exported. The tags are the topics, and pasted
    into the config they hold their stars."""
    starred, offered = _import(run, "mendeley-desktop-tags-excerpt.bib", "collections")
    assert starred == MENDELEY
    assert sorted(offered) == ["Classics", "bitmaps", "sortedness", "work sharing", "zonemaps"]
    result = run("import-library", "--offline", "--topics-from", "groups", str(LIBRARY / "mendeley-desktop-tags-excerpt.bib"))
    config_path.write_text(config_path.read_text(encoding="utf-8") + result.stdout, encoding="utf-8")
    listed = run("stars", "--topic", "bitmaps", "--json").stdout.splitlines()
    assert sorted(json.loads(line)["title"] for line in listed) == sorted(t for t, n in MENDELEY.items() if n == "bitmaps")


def test_mendeley_keywords_add_the_authors_keywords(run: Invoke):
    starred, _ = _import(run, "mendeley-desktop-tags-excerpt.bib", "keywords")
    assert {t: n for t, n in starred.items() if MENDELEY[t] is not None} == {
        t: n for t, n in MENDELEY.items() if n is not None}  # every tag is also a keyword, and the commoner one
    assert starred["The RDF-3X engine for scalable management of RDF data"] == "indexing"


def test_zotero_csv_manual_tags_differing_in_case_are_one_topic(run: Invoke):
    """A Zotero CSV export (deepfake-detection papers) whose manual tags spell one keyword as
    "Deepfake detection" and "deepfake detection"."""
    starred, offered = _import(run, "zotero-manual-tags-excerpt.csv", "collections")
    assert Counter(starred.values()) == {"Deepfake detection": 8, "deep learning": 3, "Multimedia forensics": 2,
                                         "DeepFake": 1, "3DCNN": 1, None: 1}
    assert starred["LightFakeDetect: A Lightweight Model for Deepfake Detection in Videos That Focuses on Facial "
                   "Regions"] == "Deepfake detection"  # tagged "deep learning; deepfake detection; ..."
    assert offered[0] == "Deepfake detection" and "deepfake detection" not in offered


def test_a_broken_better_bibtex_json_is_refused_in_one_line_and_keeps_the_stars(tmp_path: Path, run: Invoke):
    run("init")
    run("import-library", "--offline", str(LIBRARY / "jabref-2.10-groupstree.bib"))
    broken = tmp_path / "library.json"
    broken.write_bytes((LIBRARY / "better-bibtex-philosophy.json").read_bytes()[:3000])
    failed = run("import-library", "--offline", str(broken), code=1)
    assert failed.stderr.startswith(f"Error: {broken}:") and "not valid JSON" in failed.stderr
    assert len(failed.stderr.splitlines()) == 1
    no_items = tmp_path / "other.json"
    no_items.write_text('{"collections": {}, "config": {"label": "BetterBibTeX JSON"}}', encoding="utf-8")
    refused = run("import-library", "--offline", str(no_items), code=1)
    assert refused.stderr == f'Error: {no_items}: not a Better BibTeX JSON export: no "items" list\n'
    assert len(run("stars", "--json").stdout.splitlines()) == 3
