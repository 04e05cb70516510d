"""The rendered digest: a golden file, and a real browser at phone and desktop widths."""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender import pipeline
from recommender.base.config import load_config
from recommender.base.link_signing import LinkSigner
from recommender.digest import render as digest
from recommender.store import Store

import browser
from conftest import SEEDS, write_config

GOLDEN = Path(__file__).parent / "golden"
ARTIFACTS = Path(__file__).parent / "artifacts"
NOW = datetime(2025, 3, 12, 6, 30, tzinfo=UTC)


def _render(tmp_path: Path) -> digest.RenderedDigest:
    config = load_config(write_config(tmp_path, users="""
    [[users]]
    email = "ada@example.org"
    name = "Ada Lovelace"
    timezone = "Europe/London"
    max_items = 4
    """))
    store = Store.open(config.database.url)
    store.upgrade_schema()
    pipeline.ingest_files(store, SEEDS[:1], batch_date=date(2025, 3, 11))
    tarot = store.search_papers("TAROT")[0]
    store.star(store.user_id("ada@example.org"), [tarot.id])
    user = config.users[0]
    picks = pipeline.recommend(config, store, [user], store.all_batch_ids(), now=NOW)[user.email]
    links = digest.Links(config.feedback.base_url, LinkSigner("golden-secret-0123456789", lambda: NOW), 1, 7)
    store.close()
    return digest.render(digest.context(config, user, picks, links, NOW))


def test_golden_digest(tmp_path: Path):
    rendered = _render(tmp_path)
    for name, content in (("digest.html", rendered.html), ("digest.txt", rendered.text)):
        golden = GOLDEN / name
        if os.environ.get("UPDATE_GOLDEN") == "1":
            golden.write_text(content, encoding="utf-8")
        assert content == golden.read_text(encoding="utf-8"), f"{name} differs; review, then UPDATE_GOLDEN=1 make test"
    assert rendered.subject == "4 new papers for you — 12 Mar"


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
        "snippet_lines": ("x",), "why": 'close to "it"; <script>alert(1)</script>', "why_lines": ("w",),
        "bar_percent": 50, "score_label": "0.50", "score_text_bar": "[#####.....]",
        "open_url": 'http://x/open/a"b', "more_url": "http://x/more/<t>", "less_url": "http://x/less/&t",
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


@pytest.mark.browser
@pytest.mark.skipif(browser.chromium() is None, reason=browser.SKIP_REASON)
@pytest.mark.parametrize("width", [375, 600])
def test_nothing_overflows_in_a_real_browser(tmp_path: Path, width: int):
    page = tmp_path / "digest.html"
    page.write_text(_render(tmp_path).html, encoding="utf-8")
    driver = browser.start(tmp_path / "profile")
    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500})
        driver.get(page.as_uri())
        viewport = driver.execute_script("return window.innerWidth")
        overflow = driver.execute_script("""
            const limit = document.documentElement.clientWidth;
            return Array.from(document.querySelectorAll('body *'))
              .filter(e => e.getBoundingClientRect().right > limit + 0.5)
              .map(e => e.tagName + '.' + e.className).slice(0, 5);
        """)
        assert viewport == width
        assert driver.execute_script("return document.documentElement.scrollWidth") <= width
        assert overflow == []
        container = driver.execute_script("return document.querySelector('.container').getBoundingClientRect().width")
        assert container <= min(600, width)
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / f"digest-{width}px.png"))
    finally:
        driver.quit()
