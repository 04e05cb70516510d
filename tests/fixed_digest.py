"""A fixed digest for the golden files, the browser tests and `make screenshots`: Ada starred
TAROT among the seed papers, then one ingest run brought real arXiv feeds (Atom and RSS 1.0)
and a JSONL paper without an arXiv id, so entries show every field and the fallbacks."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

from recommender import pipeline
from recommender.base.config import SmtpConfig, UserConfig, load_config
from recommender.base.link_signing import LinkSigner
from recommender.digest import render as digest
from recommender.store import Store

from conftest import SEEDS, write_config

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2025, 8, 20, 6, 30, tzinfo=UTC)
FEEDS = (FIXTURES / "arxiv/atom-cs.AI-2025-08-20-excerpt.xml", FIXTURES / "arxiv/rss1-hep-ex-2018-05-23.xml")
LOCAL_PAPER = {"id": "lab-notes-17", "title": "Whitened Optimal Transport for Targeted Data Selection at Scale",
               "abstract": "We extend targeted data selection with optimal transport to corpora of a billion "
                           "examples, with whitened feature distance and selection ratios estimated per domain.",
               "authors": ["Grace Hopper", "Alan Turing"], "published": "2025-08-19"}


def fixed_digest(folder: Path, web: bool = False,
                 clicked: dict[str, frozenset[str]] | None = None) -> digest.RenderedDigest:
    """The digest rendered as mailed (or as the web view shows it, with these clicks marked)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = load_config(write_config(folder, users="""
    [[users]]
    email = "ada@example.org"
    name = "Ada Lovelace"
    timezone = "Europe/London"
    max_items = 6
    """))
    store = Store.open(config.database.url)
    store.upgrade_schema()
    pipeline.ingest_files(store, SEEDS[:1], batch_date=date(2025, 3, 11))
    store.star(store.user_id("ada@example.org"), [store.search_papers("TAROT")[0].id])
    local = folder / "lab-notes.jsonl"
    local.write_text(json.dumps(LOCAL_PAPER) + "\n", encoding="utf-8")
    pipeline.ingest_files(store, [*FEEDS, local], batch_date=date(2025, 8, 20))
    user = config.users[0]
    picks = pipeline.recommend(config, store, [user], store.latest_run_batch_ids(), now=NOW)[user.email]
    store.close()
    links = digest.Links(config.feedback.base_url, LinkSigner("golden-secret-0123456789", lambda: NOW), 1, 7)
    return digest.render(digest.context(config, user, picks, links, NOW, web=web, clicked=clicked))


def fixed_message(rendered: digest.RenderedDigest) -> bytes:
    """The digest as the whole message that would be sent (for a spam checker)."""
    from recommender.digest.message import build_message

    unsubscribe = re.search(r"^Unsubscribe: (\S+)$", rendered.text, re.MULTILINE)
    assert unsubscribe is not None  # nosec B101
    return build_message(SmtpConfig(), UserConfig(email="ada@example.org", name="Ada Lovelace"), rendered,
                         "<digest.7@example.org>", unsubscribe.group(1), "", NOW)
