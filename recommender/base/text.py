"""Text normalisation: one-line titles, matching keys, arXiv ids, DOIs, and text cleaned for ranking."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES = re.compile(r"\s+")
_ZERO_WIDTH = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
# arXiv identifiers: new style (YYMM.NNNN[N], since 2007) and old style (archive[.SC]/YYMMNNN)
# with one of arXiv's archive names; a version suffix is dropped.
_ARCHIVES = ("acc-phys|adap-org|alg-geom|ao-sci|astro-ph|atom-ph|bayes-an|chao-dyn|chem-ph|cmp-lg|comp-gas"
             "|cond-mat|cs|dg-ga|funct-an|gr-qc|hep-ex|hep-lat|hep-ph|hep-th|math|math-ph|mtrl-th|nlin"
             "|nucl-ex|nucl-th|patt-sol|physics|plasm-ph|q-alg|q-bio|quant-ph|solv-int|supr-con")
_ID = rf"(?:\d{{2}}(?:0[1-9]|1[0-2])\.\d{{4,5}}|(?:{_ARCHIVES})(?:\.[A-Za-z]{{2}})?/\d{{7}})"
_END = r"(?:v\d+)?(?![\w.])"
_ARXIV_FORMS = (
    re.compile(rf"https?://(?:www\.|export\.|rss\.)?arxiv\.org/(?:abs|pdf|html|format)/({_ID})(?:v\d+)?(?!\d)", re.I),
    re.compile(rf"\b10\.48550/arXiv\.({_ID}){_END}", re.I),
    re.compile(rf"(?:\boai:arXiv\.org:|\barXiv\s*:\s*)({_ID}){_END}", re.I),
)
_ARXIV_BARE = re.compile(rf"\s*({_ID}){_END}\s*", re.I)
# LaTeX residue as it appears in scraped abstracts: commands, sub/superscripts, cite keys.
_LATEX_COMMAND = re.compile(r"\\[a-zA-Z]+")
_LATEX_SCRIPT = re.compile(r"[_^]\{?[-\w]*\}?")
_CITE_KEY = re.compile(r"~\s*[a-z]+\d{4}[a-z]+")
_KEY_WORD = re.compile(r"[^\W_]+")
# A DOI anywhere in a text: "10.", a registrant code, "/", a suffix up to a space, quote or
# angle bracket. Cold Spring Harbor's prefixes (bioRxiv, medRxiv) get their version dropped.
_DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"'<>]+)", re.I)
_DOI_TAIL = re.compile(r"(?:[.,;:)\]]|\.full(?:\.pdf)?|\.abstract|\.pdf|\?.*|#.*)+$", re.I)
_CSHL_VERSION = re.compile(r"^(10\.(?:1101|64898)/[\d.]+?)v\d+$")


# Terminal control sequences (ECMA-48): CSI (ESC [ or 0x9b ... final byte), OSC, DCS, SOS, PM
# and APC strings (up to BEL or ST), and two-character escapes.
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[!-/]*[0-~]?")
_ESCAPE_START = re.compile(r"[\x1b\x90\x98\x9b\x9d\x9e\x9f]")
_UNSHOWABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 and C1 controls but tab and newline


def shown(text: str) -> str:
    """Text as we show it (terminal, JSON, email, web page): terminal escape sequences and
    control characters removed, tab and newline kept. Stored text stays as given."""
    if text.isprintable() or not _UNSHOWABLE.search(text):
        return text
    return _UNSHOWABLE.sub("", _ESCAPE_SEQUENCE.sub("", text))


def one_line(text: str) -> str:
    """CR, LF, tabs and control characters become single spaces, terminal escape sequences
    go; ends are trimmed."""
    if text.isascii() and text.isprintable() and "  " not in text:  # nothing to replace (the usual case)
        return text.strip()
    if _ESCAPE_START.search(text):  # a terminal sequence goes whole, not only its ESC
        text = _ESCAPE_SEQUENCE.sub("", text)
    return _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()


def title_key(title: str) -> str:
    """Key for matching the same paper across sources: case, accents, punctuation folded."""
    text = _ZERO_WIDTH.sub("", title)
    if not text.isascii():  # ASCII has no accents to fold (and this runs for every ingested paper)
        text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    return " ".join(_KEY_WORD.findall(text.casefold()))


def title_hash_id(title: str) -> str:
    """Stable id for a paper known only by its title."""
    return "t" + hashlib.sha1(title_key(title).encode("utf-8"), usedforsecurity=False).hexdigest()[:12]


def arxiv_id(text: str) -> str:
    """The arXiv id (version dropped) that ``text`` names, or "": an arxiv.org URL (abs, pdf,
    html), a 10.48550/arXiv. DOI, an ``arXiv:`` or ``oai:arXiv.org:`` prefix anywhere in the
    text, or the whole text being an id. A number that merely looks like one elsewhere (a
    JSTOR URL, a page range) is not an arXiv id."""
    if not text:
        return ""
    for form in _ARXIV_FORMS:
        match = form.search(text)
        if match:
            return match.group(1)
    match = _ARXIV_BARE.fullmatch(text)
    return match.group(1) if match else ""


def doi(text: str) -> str:
    """The DOI that ``text`` names, lower-cased (DOIs ignore case), or "": a bare ``10.x/y``,
    ``doi:10.x/y``, a doi.org URL, or a publisher's URL that carries it (a bioRxiv ``content``
    link); a bioRxiv or medRxiv version suffix (``v2``) and a URL's query are dropped, so every
    version of a preprint names the same paper."""
    if not text or "10." not in text:
        return ""
    match = _DOI.search(text.replace("%2F", "/").replace("%2f", "/"))
    if not match:
        return ""
    found = _DOI_TAIL.sub("", match.group(1)).lower()
    return _CSHL_VERSION.sub(r"\1", found)


def for_ranking(text: str) -> str:
    """Text with LaTeX residue removed, for the vectoriser only (stored text is kept as given).
    Punctuation stays: the tokenizer splits on it as on a space (a test holds it to that)."""
    # Each pass only where its marker occurs: most abstracts have no LaTeX, and ingest cleans
    # every title and abstract.
    if not text.isascii():
        text = _ZERO_WIDTH.sub("", text)
    if "~" in text:
        text = _CITE_KEY.sub(" ", text)
    if "\\" in text:
        text = _LATEX_COMMAND.sub(" ", text)
    if "_" in text or "^" in text:
        text = _LATEX_SCRIPT.sub(" ", text)
    return text


def snippet(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word boundary, with an ellipsis when cut."""
    text = one_line(text)
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:.-")
    return cut + "…"
