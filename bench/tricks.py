"""What each hand-written replacement of library code saves, in the workload of the target
that would pay for the library call, measured in the same run:

- the MIME writer (`message.build_message`) against the email package, per message of the
  digest run (target: 200 emails/s, so 10,000 messages within 50 s);
- link signing (`LinkSigner.sign_link`) against itsdangerous' `URLSafeTimedSerializer.dumps`,
  63 links a digest, in the same budget;
- the JSON lines of `recommend --json` (`Recommendation.as_json_line`) against
  `json.dumps(as_json())`, 40,000 lines in the whole-command benchmark (target: 500x the
  per-user SVM, about 1,600 s here, so within about 3.2 s);
- term counting (`term_counts.fit_counts`) against scikit-learn's CountVectorizer, per paper
  of the ingest target (>= 5,000 papers/s, so 100,000 papers within 20 s), stems and bigrams
  as the TF-IDF model counts them, in one process both;
- row normalisation (`unit_rows`) against `sklearn.preprocessing.normalize`: what importing
  scikit-learn adds to a command that ranks (once a process), in the whole-command budget.

A replacement is kept when the library call would cost more than KEEP_FROM of its target's
budget; the figures go to bench/RESULTS.md and docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import json
import subprocess  # nosec B404  # times our own interpreter importing a library
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from recommender.base.config import SmtpConfig, UserConfig
from recommender.base.domain import Explanation, Paper, Recommendation, SharedTerm
from recommender.base.link_signing import LinkSigner, LinkToken
from recommender.digest import message
from recommender.digest.render import RenderedDigest
from recommender.model import term_counts, tfidf

KEEP_FROM = 0.05  # of the target's time budget
DIGEST_MESSAGES, DIGEST_BUDGET_S = 10_000, 50.0
LINKS_PER_DIGEST = 63
JSON_LINES, JSON_BUDGET_S = 40_000, 3.2
INGEST_PAPERS, INGEST_BUDGET_S = 100_000, 20.0
COUNTED_PAPERS = 3_000  # measured on this many, scaled per paper


def per_call(work: Callable[[], object], seconds: float = 1.0) -> float:
    """Seconds per call: the best of three rounds of about ``seconds`` / 3 each."""
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < 0.05:
        work()
        calls += 1
    rounds = max(1, int(calls * seconds / 3 / 0.05))
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        for _ in range(rounds):
            work()
        best = min(best, (time.perf_counter() - began) / rounds)
    return best


def a_digest() -> RenderedDigest:
    """A digest of ten entries the size of our templates' (about 20 kB of HTML)."""
    entry = ("<tr>\n  <td class=\"entry\">\n    <a href=\"https://r.example/l/" + "t" * 90 + "\">Sparse retrieval of "
             "scientific documents at scale — a study</a>\n    <div class=\"authors\">A. Author, B. Author et al."
             "</div>\n    <p>" + "We introduce a method for learning sparse representations. " * 5 + "</p>\n"
             "  </td>\n</tr>\n")
    html = "<html><head><style>td{padding:4px}</style></head><body><table>\n" + entry * 10 + "</table></body></html>\n"
    text = ("1. Sparse retrieval of scientific documents at scale\n   A. Author, B. Author et al.\n"
            "   We introduce a method for learning sparse representations.\n   more: https://r.example/l/" + "t" * 90
            + "\n\n") * 10
    return RenderedDigest("Your papers · 10 new", html, text)


def some_abstracts(count: int) -> tuple[list[str], list[str]]:
    """``count`` abstracts and titles from seeds/ (repeated with a numbered word, so each is its own text)."""
    from pathlib import Path

    from recommender.sources import parse

    papers = [e for path in sorted((Path(__file__).parent.parent / "seeds").glob("*.txt"))
              for e in parse(path.read_bytes(), str(path)).entries]
    picked = [papers[i % len(papers)] for i in range(count)]
    return [f"{p.abstract} variant{i}" for i, p in enumerate(picked)], [p.title for p in picked]


def import_seconds(statement: str) -> float:
    """Wall time of a fresh interpreter running ``statement``: the best of three."""
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)  # nosec B603  # our own interpreter
        best = min(best, time.perf_counter() - began)
    return best


def main() -> int:
    rows = []
    smtp, user = SmtpConfig(sender="Papers <papers@example.org>"), UserConfig(email="ada@example.org", name="Ada")
    args = (smtp, user, a_digest(), "<digest.1.2.abc@example.org>", "https://r.example/unsubscribe/" + "t" * 90,
            "unsubscribe@example.org", datetime(2026, 12, 5, 7, 30, tzinfo=UTC))
    ours = per_call(lambda: message.build_message(*args))
    library = per_call(lambda: message._build_with_email_package(*args))
    rows.append(("MIME message (digest run)", ours, library, DIGEST_MESSAGES, DIGEST_BUDGET_S))

    signer = LinkSigner("s" * 40)
    serializer = signer._serializer
    token = LinkToken("more", 123456, 7890123, 4)
    ours = per_call(lambda: signer.sign_link("more", 123456, 7890123, 4)) * LINKS_PER_DIGEST
    library = per_call(lambda: serializer.dumps(token.opaque)) * LINKS_PER_DIGEST
    rows.append((f"link signing, {LINKS_PER_DIGEST} a digest", ours, library, DIGEST_MESSAGES, DIGEST_BUDGET_S))

    paper = Paper(id="2412.01234", title="Sparse retrieval at scale", abstract="We introduce a method. " * 40,
                  authors=("A. Author", "B. Author"), url="https://arxiv.org/abs/2412.01234")
    why = Explanation(personalized=True, nearest=(("2401.00001", "A starred paper", 0.4321),),
                      terms=(SharedTerm("retrieval", 0.12), SharedTerm("sparse", 0.08)))
    pick = Recommendation("ada@example.org", paper, 0.5123456, 1, lambda: why)
    assert pick.as_json_line() == json.dumps(pick.as_json(), ensure_ascii=False)
    ours = per_call(pick.as_json_line)
    library = per_call(lambda: json.dumps(pick.as_json(), ensure_ascii=False))
    rows.append(("recommend --json line", ours, library, JSON_LINES, JSON_BUDGET_S))

    texts, titles = some_abstracts(COUNTED_PAPERS)
    counting = term_counts.Counting(tfidf.TOKEN_PATTERN, tfidf.stop_words(), ngram_max=2, min_df=2, max_df=0.5,
                                    stem=term_counts.english_stemmer())
    ours = per_call(lambda: term_counts.fit_counts(texts, counting, 10**9, titles, 2.0), seconds=3) / len(texts)
    library = per_call(lambda: term_counts._fit_with_scikit_learn(texts, counting, titles, 2.0), seconds=3) / len(texts)
    rows.append(("term counts, per paper (ingest)", ours, library, INGEST_PAPERS, INGEST_BUDGET_S))

    plain = import_seconds("import numpy, scipy.sparse")
    with_sklearn = import_seconds("import numpy, scipy.sparse, sklearn.preprocessing")
    rows.append(("unit rows: importing scikit-learn", plain, with_sklearn, 1, JSON_BUDGET_S))

    print(f"{'replacement':34s} {'ours':>9s} {'library':>9s} {'x':>6s} {'extra':>8s} {'of budget':>10s}  verdict")
    for name, mine, theirs, count, budget in rows:
        extra = (theirs - mine) * count
        share = extra / budget
        verdict = "keep" if share > KEEP_FROM else "use the library"
        print(f"{name:34s} {mine * 1e6:7.1f}us {theirs * 1e6:7.1f}us {theirs / mine:6.1f} {extra:7.2f}s {share:9.1%}  {verdict}")
    print(f"(extra: what the library call adds to the target's workload; kept above {KEEP_FROM:.0%} of its budget)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
