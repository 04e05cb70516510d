"""Feeds at the edges readers meet (origins in tests/fixtures/SOURCES.md): a feed of arXiv
papers made by someone else's script, feeds in encodings other than UTF-8, a download cut
off mid-item, a file that is XML but no feed, and plain-text abstracts with a "~"."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recommender.base.errors import InputError
from recommender.base.latex import readable
from recommender.sources import detect_format, parse

FIXTURES = Path(__file__).parent / "fixtures"
SOURCES = FIXTURES / "sources"
MARKUP = re.compile(r"</?[A-Za-z][^>]*>|&[#A-Za-z0-9]+;")


def test_a_feed_of_arxiv_papers_made_elsewhere_is_read_as_a_feed_with_its_html_removed():
    name = "arxiv-to-rss-jwst-rss2-2026-08-22-excerpt.xml"
    data = (SOURCES / name).read_bytes()
    assert detect_format(data, name) == "feed"  # arxiv.org links in its items, but its channel is not arXiv's
    batch = parse(data, name)
    assert len(batch.entries) == 3
    first = batch.entries[0]
    assert first.arxiv_id == "2608.20339"
    # The feed's <author> names the first author; the summary's first paragraph lists all eleven.
    assert first.authors[:2] == ("Tiger Yu-Yang Hsiao", "Danielle A. Berg") and len(first.authors) == 11
    assert first.abstract.startswith("JWST has enabled the discovery of dozens of extremely metal-poor galaxies")
    assert "5% Z" in first.abstract  # &amp;percnt; decoded, not "5 percnt;"
    for entry in batch.entries:
        assert not MARKUP.search(entry.abstract)  # "(<~6km/s)" is the abstract's own text
        assert not any(label in entry.abstract for label in ("Published:", "Updated:", "Comments:", "PDF:"))
        assert entry.authors[0] not in entry.abstract


def test_arxivs_own_feeds_still_go_to_the_arxiv_reader():
    for name in ("atom-cs.AI-2025-08-20-excerpt.xml", "rss1-hep-ex-2018-05-23.xml", "api-2016-search.xml"):
        assert detect_format((FIXTURES / "arxiv" / name).read_bytes(), name) == "arxiv"


@pytest.mark.parametrize("name", ["feedparser-euc-kr-item.xml", "feedparser-utf-16le-bom.xml"])
def test_a_feed_that_declares_another_encoding_is_recognised(name: str):
    data = (SOURCES / name).read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert detect_format(data, name) == "feed"
    parse(data, name)  # read by its own declaration: no refusal (its one item has no title)


def test_a_feed_in_an_undeclared_encoding_is_read_alike_whatever_the_format():
    # XML says UTF-8; a byte that is not is read as windows-1252, as feed readers read old
    # publishers' "smart quotes" (this one is KOI8-R: its title comes out as Latin letters)
    name = "feedparser-koi8r-undeclared.xml"
    data = (SOURCES / name).read_bytes()
    assert detect_format(data, name) == "feed"
    auto, feed = parse(data, name), parse(data, name, "feed")
    assert auto == feed and len(auto.entries) == 1 and auto.entries[0].title


@pytest.mark.parametrize("cut", [100_000, 150_001])
def test_a_feed_cut_off_mid_item_is_refused_not_stored_in_part(cut: int):
    name = "wiley-taxon-rss2-2021-12-21.xml"
    whole = (SOURCES / name).read_bytes()
    assert len(parse(whole, name).entries) == 64
    data = whole[:cut]
    lines = data.count(b"\n") + 1
    for fmt in ("auto", "feed"):
        with pytest.raises(InputError, match=rf":{lines}: the feed ends before its last item closes"):
            parse(data, name, fmt)


def test_an_arxiv_answer_cut_off_mid_entry_names_the_cut():
    name = "api-2016-search.xml"
    data = (FIXTURES / "arxiv" / name).read_bytes()
    cut = data[:data.index(b"</summary>")]
    with pytest.raises(InputError, match=r"the feed ends before its last entry closes"):
        parse(cut, name)


def test_a_journal_feed_read_as_arxiv_is_refused_in_one_line():
    name = "wiley-taxon-rss2-2021-12-21.xml"
    with pytest.raises(InputError, match=r"not an arXiv feed: none of its 66 entries names an arXiv id"):
        parse((SOURCES / name).read_bytes(), name, "arxiv")


def test_xml_that_is_no_feed_is_named_by_what_it_is():
    name = "pubmed-efetch.xml"
    with pytest.raises(InputError, match=r"not an RSS or Atom feed \(the document is <PubmedArticleSet>\)"):
        parse((SOURCES / name).read_bytes(), name)


def test_wileys_summary_heading_is_not_part_of_the_abstract():
    name = "wiley-taxon-rss2-2021-12-21.xml"
    batch = parse((SOURCES / name).read_bytes(), name)
    report = next(e for e in batch.entries if e.doi == "10.1002/tax.12625")
    assert report.abstract.startswith("Decisions of the General Committee")


def test_a_tilde_in_plain_text_stays_and_a_latex_tie_is_a_space():
    name = "daily_papers-2026-06-12.json"
    batch = parse((FIXTURES / "hf" / name).read_bytes(), name)
    abstracts = {e.arxiv_id: e.abstract for e in batch.entries}
    assert "ToolBench (~47k tools)" in abstracts["2606.12451"]
    assert "collapse by ~50-64 percentage points" in abstracts["2606.12451"]
    assert "selecting (i) the physics model" in abstracts["2606.08039"]  # "(i)~the": a tie
    assert readable(r"Fig.~3 and $\alpha$~decay, see http://host/~user, about ~1.1 dex") \
        == "Fig. 3 and α decay, see http://host/~user, about ~1.1 dex"


def test_a_scholar_alerts_link_to_its_source_is_not_part_of_the_abstract():
    name = "google-scholar-alert-atom-2021-11-07.xml"
    batch = parse((SOURCES / name).read_bytes(), name)
    assert len(batch.entries) == 10
    for entry in batch.entries:
        assert entry.abstract and not entry.abstract.rstrip().endswith((".com", ".org", ".net"))
        assert not MARKUP.search(entry.abstract)
    frog = next(e for e in batch.entries if e.title.startswith("Our unknown neighbor"))
    assert frog.doi == "10.1371/journal.pone.0258454"  # from the link to the publisher


def test_cnkis_author_list_before_its_line_break_gives_the_authors():
    name = "cnki-asian-herpetological-research-rss2-2021-12-21.xml"
    batch = parse((SOURCES / name).read_bytes(), name)
    assert len(batch.entries) == 20 and all(e.authors and e.abstract for e in batch.entries)
    first = batch.entries[0]
    assert first.authors[:2] == ("Guocheng SHU", "Ping LIU") and first.authors[-1] == "Feng XIE"
    assert first.abstract.startswith("Biodiversity is declining globally")
    assert not any(";" in e.abstract[:40] for e in batch.entries)


def test_what_precedes_an_abstract_heading_is_not_the_abstract():
    name = "schweizerbart-nova-hedwigia-rss2-2021-12-21.xml"  # thumbnail, title, authors, citation, <h2>Abstract</h2>
    batch = parse((SOURCES / name).read_bytes(), name)
    assert len(batch.entries) == 10
    first = batch.entries[0]
    assert first.abstract.startswith("Genus Alisphaera including 9 species")
    for entry in batch.entries:
        assert "Nova Hedwigia" not in entry.abstract[:200] and not entry.abstract.startswith(entry.title)
