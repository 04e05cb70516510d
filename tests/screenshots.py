"""`make screenshots`: the fixed digest (tests/fixed_digest.py) in headless Chromium at 390 px
and 1200 px wide, light and dark, as whole-page PNGs for a person to look at; the web view
with clicked papers marked too, and the message as digest.eml (for `spamassassin -t`). Usage: python tests/screenshots.py FOLDER"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from fixed_digest import fixed_digest, fixed_message

import browser

WIDTHS = (390, 1200)
SCHEMES = ("light", "dark")


def main(folder: Path) -> int:
    if browser.chromium() is None:
        sys.stderr.write(f"Error: {browser.SKIP_REASON} (make browser installs them)\n")
        return 1
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        mailed = fixed_digest(work / "email")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "digest.eml").write_bytes(fixed_message(mailed))
        sys.stdout.write(f"{folder / 'digest.eml'}\n")
        pages = {"email": mailed.html, "web": fixed_digest(work / "web", web=True, clicked=_clicks()).html}
        driver = browser.start(work / "profile")
        try:
            for name, html in pages.items():
                page = work / f"{name}.html"
                page.write_text(html, encoding="utf-8")
                for width in WIDTHS:
                    for scheme in SCHEMES:
                        browser.show(driver, page.as_uri(), width, scheme)
                        target = folder / f"{name}-{width}px-{scheme}.png"
                        browser.save_whole_page(driver, width, target)
                        sys.stdout.write(f"{target}\n")
        finally:
            driver.quit()
    return 0


def _clicks() -> dict[str, frozenset[str]]:
    """What the web view marks: the reader asked for more of the first paper and opened it,
    and asked for less of an arXiv paper."""
    return {"lab-notes-17": frozenset({"more", "open"}), "1805.08875": frozenset({"less"})}


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("preview/screenshots")))
