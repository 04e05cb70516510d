"""The `feed` reader on tables of contents captured from more publishers' and services' real
feeds (origins in tests/fixtures/SOURCES.md): Wiley, PubMed, Oxford Academic, Taylor & Francis,
Cambridge Core, the Microbiology Society, an OJS journal (Phytotaxa), Pensoft, IngentaConnect
and ScienceDirect.
Each is checked for what a reader needs: titles, abstracts where the feed has them (without the
citation lines, headings and ids publishers wrap them in), authors as people's names, DOIs, and
items the feed marks as covers, news or corrections left out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recommender.base.domain import ParsedBatch, ReadHints
from recommender.sources import detect_format, parse

FIXTURES = Path(__file__).parent / "fixtures" / "sources"
# a tag, an entity, CDATA's end, a line break, a byte-order mark
LEFTOVER = re.compile(r"</?[A-Za-z][^>]*>|&[#A-Za-z0-9]+;|\]\]>|\n|\ufeff")
# what is not one person's name: an address, "et al.", a number, a list, a lone word
NOT_A_NAME = re.compile(r"@|\bet al\b|\d|[;,]|^\S+$|\band\b")
MONONYMS = {"Sushma"}  # an author known by one name, a dc:creator of her own in the Mycotaxon feed

# file, items kept, of them with an abstract, whether each has a DOI, (DOI, title, authors) of the first
PUBLISHERS = [
    ("wiley-angewandte-rss1-2014-10-19-excerpt.rdf", 22, 22, True,
     ("10.1002/anie.201408693", "Iron(III) Located in the Dinuclear Metallo-β-Lactamase IMP-1 by Pseudocontact Shifts",
      ("Thomas J. Carruthers", "Paul D. Carr", "Choy-Theng Loh", "Colin J. Jackson", "Gottfried Otting"))),
    ("pubmed-search-rss2-2021-12-21.xml", 15, 15, True,
     ("10.1016/j.parint.2021.102531", "Description of Gyrodactylus banmae n. sp. (Monogenea, Gyrodactylidae) "
      "parasitic on zebrafish, Danio rerio",
      ("Xiao Jin", "Wenxiang Li", "Yingyin Cheng", "Ming Li", "Shangong Wu", "Hong Zou", "Guitang Wang"))),
    ("oup-zoolinnean-rss2-2021-12-21.xml", 14, 14, True,
     ("10.1093/zoolinnean/zlab078", "Macroecology of Southern Ocean benthic Ostracoda (Crustacea) from the "
      "continental margin and abyss", ("S. Brandão", "H. Saeedi", "A. Brandt"))),
    ("tandf-zoology-middle-east-rss1-2021-12-21.rdf", 13, 0, True,  # the feed carries no abstracts
     ("10.1080/09397140.2021.1992835", "Taxonomic status of Dahl’s Jird, Meriones dahli, as inferred from "
      "cytochrome b and IRBP gene sequences (Mammalia: Rodentia)", ("Şafak Bulut", "Gül Olgun Karacan"))),
    ("cambridge-canadian-entomologist-rss1-2021-12-14.rdf", 15, 13, True,  # two are the covers
     ("10.4039/tce.2021.38", "Detection of food in immature and adult stages of water scavenger beetle, "
      "Hydrophilus acuminatus (Coleoptera: Hydrophilidae)", ("Toshio Inoda",))),
    ("microbiology-society-ijsem-rss2-2021-12-21-excerpt.xml", 12, 9, True,  # two corrigenda, one notice
     ("10.1099/ijsem.0.005019", "Mycolicibacterium baixiangningiae sp. nov. and Mycolicibacterium mengxianglii "
      "sp. nov., two new rapidly growing mycobacterial species",
      ("Yanpeng Cheng", "Wenjing Lei", "Xiaoxia Wang", "Zhi Tian", "Haican Liu", "Jing Yang", "Shan Lu",
       "Xin-He Lai", "Ji Pu", "Ying Huang", "Sihui Zhang", "Caixin Yang", "Xingxing Lian", "Yibo Bai",
       "Kanglin Wan", "Suping Wang", "Jianguo Xu"))),
    ("ojs-phytotaxa-rss1-2021-12-21.rdf", 6, 4, True,  # two say "N/A"
     ("10.11646/phytotaxa.528.4.1", "Seed Micromorphology of Eleven Species of Pleione (Orchidaceae)",
      ("ZHONGXUAN WANG", "HAO ZHANG", "SI QIN", "LE YOU", "JUNWEN ZHAI", "ZHUANG ZHOU", "SHIPIN CHEN",
       "PHILLIP CRIBB", "FIONA PAGE", "SHASHA WU"))),
    ("pensoft-zookeys-rss091-2021-12-21-excerpt.xml", 10, 9, True,  # one has an empty "Abstract:"
     ("10.3897/zookeys.1078.47616", "Checklist and keys to Deltocephalinae leafhoppers (Hemiptera, Cicadellidae) "
      "from Pakistan", ("Hassan Naveed", "Bismillah Shah", "Bilal Saeed Khan", "Chengquan Cao", "Mick Webb",
                        "Yalin Zhang"))),
    ("ingenta-mycotaxon-rss1-2021-11-23.rdf", 18, 0, False,  # neither abstracts nor DOIs in the feed
     ("", "Vanakripa chinensis sp. nov. from China and notes on the genus",
      ("Kai Zhang", "Weihua Guo", "De-Wei Li", "Rafael F. Castañeda-Ruiz"))),
    ("sciencedirect-mpe-rss2-2021-12-21-excerpt.xml", 12, 0, False,  # neither abstracts nor DOIs in the feed
     ("", "Propagating clade and model uncertainty to confidence intervals of divergence times and branch lengths",
      ("David R. Bickel",))),
]


def _read(name: str, hints: ReadHints | None = None) -> ParsedBatch:
    return parse((FIXTURES / name).read_bytes(), name, hints=hints)


@pytest.mark.parametrize("name, kept, with_abstract, dois, first", PUBLISHERS)
def test_each_publishers_feed_gives_clean_papers(name: str, kept: int, with_abstract: int, dois: bool,
                                                 first: tuple):
    assert detect_format((FIXTURES / name).read_bytes(), name) == "feed"
    batch = _read(name)
    assert len(batch.entries) == kept
    paper = batch.entries[0]
    assert (paper.doi, paper.title, paper.authors) == first
    assert sum(len(e.abstract) > 150 for e in batch.entries) == with_abstract
    assert sum(e.abstract == "" for e in batch.entries) == kept - with_abstract  # no stub left for the rest
    for entry in batch.entries:
        assert entry.title and entry.url.startswith("http")
        assert bool(entry.doi) == dois and (not entry.doi or entry.doi.startswith("10."))
        for field in (entry.title, entry.abstract, *entry.authors):
            assert not LEFTOVER.search(field), (name, field[:80])
        for author in entry.authors:
            assert author in MONONYMS or not NOT_A_NAME.search(author), (name, author)


def test_wiley_drops_covers_news_and_profiles_and_keeps_reviews():
    name = "wiley-angewandte-rss1-2014-10-19-excerpt.rdf"
    kept = {e.doi for e in _read(name).entries}
    everything = {e.doi: e for e in _read(name, ReadHints(exclude_types=())).entries}
    assert len(everything) == 29
    assert {everything[d].title.split(":")[0] for d in everything.keys() - kept} == {
        "Membrane-Spanning DNA Nanopores with Cytotoxic Effect",  # its section is "Cover Picture"
        "New Members of the Deutsche Akademie der Naturforscher Leopoldina / Teacher of the Year at SCIENCE Award "
        "for Stephan P. A. Sauer / Scientist of the Year Prize, University of Frankfurt for Harald Schwalbe / "
        "Lorenz Oken Medal for Hans-Jbrgen Quadbeck-Seeger / Normann Medal for Uwe T. Bornscheuer / And also in "
        "The News",  # News; the mangled "ü" is the feed's own
        "David Scheschkewitz",  # Author Profile
        "Multicomponent Reactions. Volumes 1 and 2. Science of Synthesis Workbench Edition. Edited by Thomas J. J. "
        "Müller.",  # Book Review
        "Cover Picture", "Frontispiece", "Graphical Abstract"}
    assert {"10.1002/anie.201408672", "10.1002/anie.201404848"} <= kept  # a Highlight and a Minireview stay
    first = everything["10.1002/anie.201408693"]
    assert first.abstract.startswith("Heterodinuclear metalloenzymes are")  # the "Abstract" heading is gone
    assert first.abstract.endswith("IMP-1 could be identified and characterized.")


def test_pubmed_abstracts_lose_the_citation_line_and_the_ids():
    by_doi = {e.doi: e for e in _read("pubmed-search-rss2-2021-12-21.xml").entries}
    first = by_doi["10.1016/j.parint.2021.102531"]
    assert first.abstract.startswith("A new species of Gyrodactylus was described")  # not "Parasitol Int. 2021 ..."
    assert first.abstract.endswith("which we named Gyrodactylus banmae.")  # not "PMID:34929406 | DOI:..."
    assert by_doi["10.1111/jam.15413"].abstract.startswith("AIMS: The control of Xanthomonas")
    with_pmc = by_doi["10.1098/rsos.211237"]  # "eCollection 2021 Dec." before, "| PMC:PMC8672069 |" after
    assert with_pmc.abstract.startswith("Heterodonty is a hallmark")
    assert with_pmc.abstract.endswith("by late Carboniferous times.")


def test_surname_first_names_are_turned_round():
    oup = _read("oup-zoolinnean-rss2-2021-12-21.xml").entries  # <author>Chen C, Zhou Y, Watanabe H</author>
    assert oup[1].authors == ("C. Chen", "Y. Zhou", "H. Watanabe")
    cambridge = {e.doi: e for e in _read("cambridge-canadian-entomologist-rss1-2021-12-14.rdf").entries}
    assert cambridge["10.4039/tce.2021.39"].authors == (  # one dc:creator each: "Sant’Ana, Josué"
        "Josué Sant’Ana", "Roberta Tognon", "Patrícia D.S. Pires", "Patrícia L.F. Gregório")
    assert cambridge["10.4039/tce.2021.32"].authors[:2] == ("Mayara R. de Araujo", "David dos S. Martins")


def test_what_a_feed_puts_where_the_abstract_would_be_is_not_an_abstract():
    tandf = _read("tandf-zoology-middle-east-rss1-2021-12-21.rdf").entries  # "Volume 67, Issue 4, ... Page 283-289 ."
    assert {e.abstract for e in tandf} == {""}
    phytotaxa = {e.doi: e.abstract for e in _read("ojs-phytotaxa-rss1-2021-12-21.rdf").entries}
    assert phytotaxa["10.11646/phytotaxa.528.4.5"] == ""  # the feed says "N/A"


def test_labelled_summaries_give_authors_doi_and_abstract():
    zookeys = _read("pensoft-zookeys-rss091-2021-12-21-excerpt.xml")
    first = zookeys.entries[0]
    assert first.title.startswith("Checklist")  # the feed starts every title with a byte-order mark
    assert first.abstract.startswith("Keys to all levels of the subfamily Deltocephalinae")
    assert first.abstract.endswith("Macrosteles indrina (Pruthi, 1930), syn. nov.")  # no "HTML XML PDF" links
    everything = _read("pensoft-zookeys-rss091-2021-12-21-excerpt.xml", ReadHints(exclude_types=()))
    assert sorted(e.title.split(":")[0] for e in everything.entries if e not in zookeys.entries) == [
        "Corrigenda", "Diagnosing diagnoses – can we improve our taxonomy?"]  # categories Corrigenda, Commentary
    sciencedirect = _read("sciencedirect-mpe-rss2-2021-12-21-excerpt.xml").entries
    assert sciencedirect[5].authors[:3] == ("M. Uhrová", "O. Mikula", "N.C Bennett")
    assert all(e.abstract == "" for e in sciencedirect)  # "Publication date: ... Source: ..." is not one


def test_ingenta_front_matter_is_dropped_as_marked():
    everything = _read("ingenta-mycotaxon-rss1-2021-11-23.rdf", ReadHints(exclude_types=())).entries
    assert len(everything) == 19
    assert everything[0].title == "Volume 136-3: Contents, Corrigenda, Nomenclatural Updates, Peers, Editorial"
    assert everything[0] not in _read("ingenta-mycotaxon-rss1-2021-11-23.rdf").entries  # prism:section Front Matter


def test_unmarked_front_matter_and_corrections_go_by_the_title_filter():
    ijsem = _read("microbiology-society-ijsem-rss2-2021-12-21-excerpt.xml",
                  ReadHints(exclude_titles=(r"^corrigendum\b",))).entries
    assert len(ijsem) == 10 and not any(e.title.startswith("Corrigendum") for e in ijsem)
    cambridge = _read("cambridge-canadian-entomologist-rss1-2021-12-14.rdf",
                      ReadHints(exclude_titles=(r"\bcover and (front|back) matter$",))).entries
    assert len(cambridge) == 13 and all(e.authors and e.abstract for e in cambridge)
    sciencedirect = _read("sciencedirect-mpe-rss2-2021-12-21-excerpt.xml",
                          ReadHints(exclude_titles=("^editorial board$",))).entries
    assert len(sciencedirect) == 11 and all(e.authors for e in sciencedirect)


def test_the_forms_are_recognised_only_where_they_are_whole():
    """What looks like a wrapper or a turned-round name but is text stays as it is."""
    item = ("<item><title>T</title><description>Abstract reasoning is hard. 2021 was a year.</description>"
            "<dc:creator>John Smith III</dc:creator><dc:creator>SI QIN</dc:creator><dc:creator>Kim JH</dc:creator>"
            "</item>")
    data = ('<?xml version="1.0"?><rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
            f"<title>x</title>{item}</channel></rss>").encode()
    paper = parse(data, "forms.xml", "feed").entries[0]
    assert paper.abstract == "Abstract reasoning is hard. 2021 was a year."
    assert paper.authors == ("John Smith III", "SI QIN", "J. H. Kim")
