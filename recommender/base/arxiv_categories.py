"""arXiv's category taxonomy: the codes a ``categories = [...]`` source may name, and the
feed address they make. From https://arxiv.org/category_taxonomy (as of 2026-12); the
aliases arXiv keeps for merged categories (``math.MP`` is ``math-ph``, ``cs.NA`` is
``math.NA``, ``cs.SY`` is ``eess.SY``, ...) are listed under both names, and a whole archive
(``cs``, ``math``, ...) is a category of its own in the feeds."""

from __future__ import annotations

import difflib

FEED_URL = "https://rss.arxiv.org/rss/"  # + codes joined by "+": one feed of all of them

_SUBJECTS = {
    "cs": "AI AR CC CE CG CL CR CV CY DB DC DL DM DS ET FL GL GR GT HC IR IT LG LO MA MM MS NA NE NI OH OS PF PL "
          "RO SC SD SE SI SY",
    "econ": "EM GN TH",
    "eess": "AS IV SP SY",
    "math": "AC AG AP AT CA CO CT CV DG DS FA GM GN GR GT HO IT KT LO MG MP NA NT OA OC PR QA RA RT SG SP ST",
    "astro-ph": "CO EP GA HE IM SR",
    "cond-mat": "dis-nn mes-hall mtrl-sci other quant-gas soft stat-mech str-el supr-con",
    "nlin": "AO CD CG PS SI",
    "physics": "acc-ph ao-ph app-ph atm-clus atom-ph bio-ph chem-ph class-ph comp-ph data-an ed-ph flu-dyn gen-ph "
               "geo-ph hist-ph ins-det med-ph optics plasm-ph pop-ph soc-ph space-ph",
    "q-bio": "BM CB GN MN NC OT PE QM SC TO",
    "q-fin": "CP EC GN MF PM PR RM ST TR",
    "stat": "AP CO ME ML OT TH",
}
_ARCHIVES_WITHOUT_SUBJECTS = ("gr-qc", "hep-ex", "hep-lat", "hep-ph", "hep-th", "math-ph", "nucl-ex", "nucl-th",
                              "quant-ph")

CATEGORIES: frozenset[str] = frozenset(
    [f"{archive}.{subject}" for archive, subjects in _SUBJECTS.items() for subject in subjects.split()]
    + list(_SUBJECTS) + list(_ARCHIVES_WITHOUT_SUBJECTS))


def unknown_category_hint(code: str) -> str:
    """For a code arXiv does not have: the one it most likely means, as "did you mean ...?"."""
    by_case = {c.lower(): c for c in CATEGORIES}
    if code.lower() in by_case:
        return f"did you mean {by_case[code.lower()]!r}? (codes are case-sensitive)"
    close = difflib.get_close_matches(code, sorted(CATEGORIES), n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return "see https://arxiv.org/category_taxonomy for the codes"


def feed_url(codes: tuple[str, ...]) -> str:
    """The announcement feed of these categories together (rss.arxiv.org joins them with "+")."""
    return FEED_URL + "+".join(codes)
