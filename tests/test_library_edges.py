"""Reference-manager exports at the edges readers meet (origins in tests/fixtures/SOURCES.md):
entries under a repeated citation key, an EndNote entry without a key, UTF-16 and JabRef's
declared encodings, BibTeX's upper-case AND, TeX's logos and font switches, arXiv ids where
DBLP and JabRef put them, and RIS files that use both author tags or only a short title."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recommender.base.domain import ParsedPaper
from recommender.base.errors import InputError
from recommender.sources import detect_library_format, read_library

LIBRARY = Path(__file__).parent / "fixtures" / "library"
LEFTOVER = re.compile(r"[{}\\]|^\".*\"$")  # braces, a backslash, the quotes that enclosed a value


def papers(name: str) -> list[ParsedPaper]:
    return read_library((LIBRARY / name).read_bytes(), name).entries


def test_entries_under_a_repeated_key_are_read_like_every_other_entry():
    found = papers("planning-bibliography-873.bib")
    assert len(found) == 987
    for paper in found:
        for value in (paper.title, paper.published, paper.doi, *paper.authors):
            assert not LEFTOVER.search(value), (paper.line, value)
        assert not any(" and " in a for a in paper.authors if not a.isupper()), (paper.line, paper.authors)
    # "Sandewall:92" is one of the keys the file repeats; its title was quoted, its year braced.
    sandewall = next(p for p in found if p.line == 6024)
    assert (sandewall.title, sandewall.published, sandewall.authors) == ("Features and Fluents", "1992",
                                                                          ("Erik Sandewall",))


def test_dblp_ee_and_a_prefixed_eprint_give_the_arxiv_id():
    by_title = {p.title: p for p in papers("planning-bibliography-873.bib")}
    assert by_title["Synthesizing Robust Plans under Incomplete Domain Models"].arxiv_id == "1104.5069"
    (roslyak,) = papers("jabref-groups-97-roslyak-excerpt.bib")  # Eprint = {arXiv:cond-mat/0703268}
    assert roslyak.arxiv_id == "cond-mat/0703268"


def test_an_endnote_entry_without_a_citation_key_is_imported():
    (paper,) = papers("endnote-no-key.bib")
    assert paper.title == "Alzheimer mechanisms and therapeutic strategies"
    assert paper.authors == ("Y. Huang", "L. Mucke") and paper.abstract


def test_an_upper_case_and_separates_authors_as_in_bibtex():
    (paper,) = papers("bibtexparser-capital-and.bib")
    assert paper.authors == ("R.B. Bird", "R.C. Armstrong", "O. Hassager")


@pytest.mark.parametrize("name, title, doi", [
    ("jabref-utf-16le-bom.bib", "Investigation of the best suture pattern to close a stuffed Christmas turkey",
     "10.1136/vr.d6221"),
    ("jabref-utf-16be-header.bib", "Ü ist ein Umlaut", ""),
])
def test_utf_16_libraries_are_read_by_their_byte_order_mark(name: str, title: str, doi: str):
    data = (LIBRARY / name).read_bytes()
    assert data[:2] in (b"\xff\xfe", b"\xfe\xff")
    (paper,) = read_library(data, name).entries
    assert (paper.title, paper.doi) == (title, doi)
    assert read_library(data, name, "bibtex").entries == [paper]


def test_a_jabref_header_naming_windows_1252_is_honoured():
    data = (LIBRARY / "jabref-windows-1252-header.bib").read_bytes()
    assert data.startswith(b"% Encoding: windows-1252")
    (paper,) = read_library(data, "jabref-windows-1252-header.bib").entries
    assert paper.abstract == "25° C"


def test_a_header_naming_an_unknown_encoding_is_one_line_naming_it():
    data = b"% Encoding: x-no-such-code\n@article{a, title={T}}\n"
    with pytest.raises(InputError, match=r"x\.bib:1: its header names an encoding this reader does not know"):
        read_library(data, "x.bib")


def test_tex_logos_and_font_switches_keep_their_text():
    titles = {p.title for p in papers("bibtexparser-biber-examples.bib")}
    assert {"The TeXbook", "TeX: The Program", "The LaTeX Companion"} <= titles
    assert "The good place ends its Remarkable Second Season With Irrational Hope, Unexpected Gifts, and a Smile" \
        in {p.title for p in papers("plus-in-field-names.bib")}


def test_ris_with_both_author_tags_and_with_only_a_short_title():
    (editorial,) = papers("jabref-ris-test1.ris")
    assert {"Cocke", "Warren Harrison"} <= set(editorial.authors)
    assert detect_library_format((LIBRARY / "rispy-utf-chars.ris").read_bytes(), "r.ris") == "ris"
    (russian,) = papers("rispy-utf-chars.ris")  # ST only: no TI or T1
    assert russian.title.startswith("Состояние рецепторного аппарата эндометрия")
    assert russian.authors[0] == "Yu E. Dobrokhotova"


def test_a_zotero_csv_whose_item_type_column_was_dropped_is_still_recognised():
    name = "zotero-export-columns-dropped.csv"  # Key, Publication Year, Author, Title, ... no Item Type
    data = (LIBRARY / name).read_bytes()
    assert b"Item Type" not in data.split(b"\n", 1)[0]
    assert detect_library_format(data, name) == "csv"
    found = papers(name)
    assert len(found) == 32
    assert found[0].title == "Ecological literacy and beyond: Problem-based learning for future professionals"
    assert found[0].doi == "10.1007/s13280-014-0539-2"
