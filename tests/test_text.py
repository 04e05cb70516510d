from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.base.text import arxiv_id, for_ranking, one_line, snippet, title_hash_id, title_key


def test_one_line_folds_control_characters_and_drops_terminal_sequences():
    assert one_line(" a\r\nb\tc\x00d\x1b  e ") == "a b c d e"
    assert one_line("Title\x1b]0;pwned\x07 here \x1b[2Jnow\x9b31m") == "Title here now"


def test_title_key_folds_case_accents_and_punctuation():
    assert title_key("Über-Fast  TRANSPORT: a study!") == title_key("uber fast transport a study")
    assert title_hash_id("A Title") == title_hash_id("a   title.")


def test_arxiv_ids():
    assert arxiv_id("https://arxiv.org/abs/2412.00420v2") == "2412.00420"
    assert arxiv_id("arXiv:1706.03762") == "1706.03762"
    assert arxiv_id("hep-th/9901001v1") == "hep-th/9901001"
    assert arxiv_id("no id here 12.3") == ""


def test_latex_residue_is_removed_for_ranking_only():
    cleaned = for_ranking(r"Acdot S_1^{-alpha} and DNAS~wu2018mixed with \mathcal{O}(n)")
    assert "S_1" not in cleaned and "wu2018mixed" not in cleaned and "mathcal" not in cleaned
    assert "Acdot" in cleaned


def test_snippet_cuts_at_a_word_boundary():
    text = "alpha beta gamma delta epsilon"
    assert snippet(text, 14) == "alpha beta…"
    assert snippet(text, 100) == text


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["a", "B", " ", "  ", "\t", "\r\n", "\x00", "\x1b", "\x7f", "\x85", "\u2028", "é", "\xa0",
                                 "\u3000", "."]), max_size=20).map("".join) | st.text(max_size=30))
def test_one_line_is_the_same_with_or_without_its_shortcut(text: str):
    import re

    from recommender.base.text import _ESCAPE_SEQUENCE

    without_sequences = _ESCAPE_SEQUENCE.sub("", text)  # a terminal escape sequence goes whole
    assert one_line(text) == re.sub(r"\s+", " ", re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+", " ",
                                                        without_sequences)).strip()
