"""The rendered digest: a golden file, and a real browser at phone and desktop widths."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from fixed_digest import NOW, fixed_digest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.base.config import load_config
from recommender.base.domain import Explanation, Paper, Recommendation
from recommender.base.link_signing import LinkSigner
from recommender.digest import render as digest

import browser
from conftest import write_config

GOLDEN = Path(__file__).parent / "golden"
ARTIFACTS = Path(__file__).parent / "artifacts"


def _render(tmp_path: Path) -> digest.RenderedDigest:
    return fixed_digest(tmp_path)


def test_golden_digest(tmp_path: Path):
    rendered = _render(tmp_path)
    for name, content in (("digest.html", rendered.html), ("digest.txt", rendered.text)):
        golden = GOLDEN / name
        if os.environ.get("UPDATE_GOLDEN") == "1":
            golden.write_text(content, encoding="utf-8")
        assert content == golden.read_text(encoding="utf-8"), f"{name} differs; review, then UPDATE_GOLDEN=1 make test"
    assert rendered.subject == "6 new papers for you — 20 Aug"


def test_the_bar_and_its_label_show_the_match_not_the_raw_score(tmp_path: Path):
    """A reader's own classifier scores every paper below zero: the bar once divided by the
    negative top score (every bar full) and printed it ("[##########] -0.05")."""
    config = load_config(write_config(tmp_path))
    why = Explanation(personalized=True, nearest=(("s1", "A starred paper", 0.4),))
    picks = [Recommendation("ada@example.org", Paper(f"p{n}", f"Paper {n}", "An abstract."), score, n + 1,
                            lambda: why, match=match)
             for n, (score, match) in enumerate([(-0.05, 100), (-0.08, 73), (-0.12, 20)])]
    links = digest.Links(config.feedback.base_url, LinkSigner("golden-secret-0123456789", lambda: NOW), 1, 7)
    rendered = digest.render(digest.context(config, config.users[0], picks, links, NOW))
    assert [line.strip() for line in rendered.text.splitlines() if "Match:" in line] == [
        "Match: [##########] 100%", "Match: [#######...] 73%", "Match: [##........] 20%"]
    assert "-0.0" not in rendered.text and "-0.0" not in rendered.html
    assert re.findall(r"bar-fill[^>]*width: (\d+)%", rendered.html) == ["100", "73", "20"]
    assert rendered.html.count("% match</td>") == 3


def test_a_digest_goes_out_as_7bit_lines_that_mean_the_same_html(tmp_path: Path):
    import email
    import email.policy
    import html

    from recommender.base.config import SmtpConfig, UserConfig
    from recommender.digest import message as delivery_message

    rendered = _render(tmp_path)
    assert not rendered.html.isascii()  # the seeds have names and dashes beyond ASCII
    # The template's longest line (three action links) leaves room under 998 octets for longer
    # links and a long "why" on its own line: one line over it sends the whole part
    # quoted-printable, three times the lines, a third slower to deliver (measured).
    assert max(map(len, rendered.html.split("\n"))) <= 700
    raw = delivery_message.build_message(SmtpConfig(), UserConfig(email="ada@example.org"), rendered, "<d.1@example.org>",
                                 "https://r.example/u/t", "", NOW)
    message = email.message_from_bytes(raw, policy=email.policy.default)
    part = message.get_body(("html",))
    assert part["Content-Transfer-Encoding"] == "7bit" and part.as_bytes().isascii()
    assert raw.count(b"\r\n") < 400  # a quoted-printable part would be ~10x the lines
    sent = part.get_content().replace("\r\n", "\n")  # (a 7bit part reads back with its CRLFs)
    # Lines joined by spaces: the same document, whitespace aside, in a fraction of the lines.
    assert sent.isascii() and html.unescape(sent).split() == html.unescape(rendered.html).split()
    assert sent.count("\n") * 3 < rendered.html.count("\n") and max(map(len, sent.split("\n"))) <= 998
    assert "<pre" not in rendered.html and "<textarea" not in rendered.html
    plain = message.get_body(("plain",))
    assert plain["Content-Transfer-Encoding"] == "8bit"  # UTF-8 as it is, in its own lines
    assert plain.get_content().replace("\r\n", "\n").rstrip("\n") == rendered.text.rstrip("\n")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("ab <>/=\"."), max_size=120), min_size=1, max_size=30),
       st.booleans(), st.integers(10, 200))
def test_packed_lines_keep_every_word_and_only_join_lines(lines: list[str], newline_at_end: bool, width: int):
    from recommender.digest.message import packed_lines

    document = "\n".join(lines) + ("\n" if newline_at_end else "")
    packed = packed_lines(document, width)
    unindented = [line.strip(" ") for line in document.rstrip("\n").split("\n")]
    assert packed.split() == document.split()
    # The final newline stays as it was; a blank last line packed on a line of its own ends in
    # a line break of its own too.
    body = packed[:-1] if document.endswith("\n") else packed
    assert packed.endswith("\n") >= document.endswith("\n") and (not body.endswith("\n") or unindented[-1] == "")
    assert body.replace("\n", " ") == " ".join(unindented)  # breaks became spaces, indents went
    original = {len(line) for line in unindented}
    assert all(len(line) <= width or len(line) in original for line in packed.rstrip("\n").split("\n"))


def test_css_inlined_into_the_template_once_gives_the_html_of_inlining_each_message(tmp_path: Path):
    """The digest template is inlined when loaded, not per message; the mail must read the same
    as the message inlined after rendering (entities aside), hostile titles included."""
    import html as html_module

    import css_inline
    from jinja2 import Environment, FunctionLoader, StrictUndefined, select_autoescape

    from recommender.base.resources import templates_dir

    rendered = _render(tmp_path)
    config = load_config(tmp_path / "config.toml")
    hostile = digest.context(config, config.users[0], [], digest.Links("http://x", LinkSigner("s" * 20), 1, 1), NOW)
    with_entries = dict(hostile, personalized=True, entries=[{
        "rank": 1, "title": '<b>"bold" & \'quoted\'</b> ‮rtl', "authors": "A & B <a@b>", "snippet": "x < y > z &amp;",
        "paper_label": "<id>&", "category": "cs.<LG>", "date_label": "1 <Jan>", "pdf_url": 'http://x/pdf/"1"',
        "snippet_lines": ("x",), "why": 'close to "it"; <script>alert(1)</script>', "why_lines": ("w",),
        "match": 50, "bar_percent": 50, "match_label": "50% <match>", "match_text_bar": "[#####.....]",
        "open_url": 'http://x/open/a"b', "more_url": "http://x/more/<t>", "less_url": "http://x/less/&t",
        "clicked": "more <like> this",
    }])
    with_entries["sections"] = [{"heading": '<i>"topic"</i> & more', "entries": with_entries["entries"]}]
    plain = Environment(loader=FunctionLoader(lambda name: templates_dir().joinpath(name).read_text(encoding="utf-8")),
                        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=True))
    inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
    previous = inliner.inline(plain.get_template("digest.html.j2").render(with_entries))
    now = digest.render(with_entries).html
    assert html_module.unescape(now) == html_module.unescape(previous)
    assert "<script>" not in now and '"bold"' not in now.split("<body")[1]  # still escaped
    assert rendered.html.count('style="') > 40


def test_html_is_mail_client_ready(tmp_path: Path):
    html = _render(tmp_path).html
    assert "<script" not in html.lower() and "<link" not in html.lower() and "@import" not in html
    assert re.search(r'class="container"[^>]*style="[^"]*max-width: 600px', html)  # inlined
    assert "@media (prefers-color-scheme: dark)" in html and "@media only screen and (max-width: 480px)" in html
    assert "http" not in html.split("<body")[0].replace("http-equiv", "")  # no external fonts or styles


# What every entry shows (CSS selectors), and the fields an entry shows when its paper has them.
ENTRY_FIELDS = (".title a", ".authors", ".paper-id", ".match", ".why", ".button.more", ".button.less")
OPTIONAL_FIELDS = (".category", ".date", ".pdf")
_MEASURE = """
    const limit = document.documentElement.clientWidth;
    const seen = e => { const r = e.getBoundingClientRect(), s = getComputedStyle(e);
      return r.width > 0 && r.height > 0 && r.left >= -0.5 && r.right <= limit + 0.5 && s.visibility === 'visible'
        && s.display !== 'none' && parseFloat(s.opacity) > 0 && s.color !== s.backgroundColor; };
    return {
      entries: Array.from(document.querySelectorAll('.entry')).map(entry => Object.fromEntries(
        arguments[0].map(sel => [sel, Array.from(entry.querySelectorAll(sel)).filter(seen).length]))),
      buttons: Array.from(document.querySelectorAll('.button')).map(b => b.getBoundingClientRect().height),
      overflow: Array.from(document.querySelectorAll('body *'))
        .filter(e => e.getBoundingClientRect().right > limit + 0.5).map(e => e.tagName + '.' + e.className).slice(0, 5),
      scrollWidth: document.documentElement.scrollWidth,
      container: getComputedStyle(document.querySelector('.container')).backgroundColor,
      button: getComputedStyle(document.querySelector('.button')).color,
    };
"""


@pytest.mark.browser
@pytest.mark.skipif(browser.chromium() is None, reason=browser.SKIP_REASON)
@pytest.mark.parametrize(("width", "scheme"), [(390, "light"), (390, "dark"), (1200, "light"), (1200, "dark")])
def test_every_field_shows_and_buttons_fit_a_thumb_in_a_real_browser(tmp_path: Path, width: int, scheme: str):
    html = _render(tmp_path).html
    page = tmp_path / "digest.html"
    page.write_text(html, encoding="utf-8")
    driver = browser.start(tmp_path / "profile")
    try:
        browser.show(driver, page.as_uri(), width, scheme)
        assert driver.execute_script("return window.innerWidth") == width
        seen = driver.execute_script(_MEASURE, [*ENTRY_FIELDS, *OPTIONAL_FIELDS])
        assert len(seen["entries"]) == 6
        for entry in seen["entries"]:
            assert [entry[sel] for sel in ENTRY_FIELDS] == [1] * len(ENTRY_FIELDS), entry
        for sel in OPTIONAL_FIELDS:  # each one the HTML has is visible: 5 arXiv papers, 4 with a date
            assert sum(entry[sel] for entry in seen["entries"]) == html.count(f'class="{sel[1:]}"') >= 4
        assert len(seen["buttons"]) == 12 and min(seen["buttons"]) >= 44
        assert seen["overflow"] == [] and seen["scrollWidth"] <= width
        dark = (seen["container"], seen["button"]) == ("rgb(24, 24, 27)", "rgb(147, 197, 253)")
        assert dark == (scheme == "dark")
        # Mail clients that drop <style> keep the inlined styles: still 44 px tall, still no overflow.
        driver.execute_script("document.querySelectorAll('style').forEach(s => s.remove())")
        bare = driver.execute_script(_MEASURE, list(ENTRY_FIELDS))
        assert min(bare["buttons"]) >= 44 and bare["overflow"] == [] and bare["scrollWidth"] <= width
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / f"digest-{width}px-{scheme}.png"))
    finally:
        driver.quit()


@pytest.mark.parametrize(("published", "shown"), [
    ("2025-08-20T00:00:00-04:00", "20 Aug 2025"),  # rss.arxiv.org's Atom
    ("2024-10-24T13:04:10.000Z", "24 Oct 2024"),  # Hugging Face
    ("Wed, 12 Mar 2025 00:00:00 -0400", "12 Mar 2025"),  # RSS 2.0 pubDate
    ("Mon, 2 Apr 2007 19:18:42 GMT", "2 Apr 2007"),  # the metadata snapshot's first version
    ("2017", "2017"), ("", ""), ("spring 2019", ""), ("2025-13-45", ""),
])
def test_dates_read_as_people_write_them_and_nothing_unreadable(published: str, shown: str):
    assert digest.date_label(published) == shown


def test_matches_are_the_picks_own_clamped_to_0_100():
    from recommender.base.domain import Paper, Recommendation

    def picks(*matches: int) -> list[Recommendation]:
        return [Recommendation("a@b", Paper(str(i), "t", "a"), -0.1, i + 1, match=m) for i, m in enumerate(matches)]

    assert digest.matches(picks(100, 73, 0)) == [100, 73, 0]
    assert digest.matches(picks(120, -5)) == [100, 0] and digest.matches([]) == []

