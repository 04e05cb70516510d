"""The TF-IDF model over every stored paper, fitted once per corpus version and cached.

Title and abstract are counted over one vocabulary (scikit-learn's CountVectorizer
semantics, counted by recommender.model.term_counts) and added with the title weighted higher; then sublinear tf and smooth idf, rows L2-normalised.
The fitted vocabulary, idf and paper matrix are stored in the database as plain arrays (a
JSON header and the raw arrays, store/model_files.py; no pickle), so
``recommend`` refits only when the corpus (or a ranking setting that changes the features)
changed, and loading them never imports scikit-learn.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar, cast

import numpy as np
import scipy.sparse as sp

from recommender.base.config import RankingConfig
from recommender.base.text import for_ranking
from recommender.model.term_counts import (
    DEFAULT_TOKEN_PATTERN,
    Counting,
    Stem,
    count_known,
    english_stemmer,
    fit_counts,
)
from recommender.model.unit_rows import scale_to_unit_rows

log = logging.getLogger(__name__)

# Boilerplate of abstracts: frequent everywhere, telling about nothing.
ACADEMIC_STOP_WORDS = frozenset("""
paper propose proposed proposes present presents presented approach approaches method methods
result results show shows shown novel new based using use used study studies work works
demonstrate demonstrates significant significantly existing state art outperforms achieve
achieves address introduce introduces extensive experiments code available github com https http
""".split())
TOKEN_PATTERN = DEFAULT_TOKEN_PATTERN  # scikit-learn's default
SMALL_CORPUS = 100  # below this many papers, keep every term (document-frequency cut-offs misfire)
# 2: plain arrays only (no scikit-learn objects), so loading a model never imports scikit-learn;
# 3: with its stop words (texts are counted without scikit-learn).
# 4: classes moved into recommender.model (stored class names changed); 5: texts counted in --jobs
# parts; 6: stems ([ranking] stem).
MODEL_FORMAT = 6


# scikit-learn's ENGLISH_STOP_WORDS (BSD-3-Clause; from the Glasgow Information Retrieval
# Group's list), copied so that counting texts never imports scikit-learn (a second of start-up);
# a test keeps the copy equal to scikit-learn's.
ENGLISH_STOP_WORDS = frozenset("""
a about above across after afterwards again against all almost alone along already also although
always am among amongst amoungst amount an and another any anyhow anyone anything anyway
anywhere are around as at back be became because become becomes becoming been before beforehand
behind being below beside besides between beyond bill both bottom but by call can cannot cant co
con could couldnt cry de describe detail do done down due during each eg eight either eleven
else elsewhere empty enough etc even ever every everyone everything everywhere except few
fifteen fifty fill find fire first five for former formerly forty found four from front full
further get give go had has hasnt have he hence her here hereafter hereby herein hereupon hers
herself him himself his how however hundred i ie if in inc indeed interest into is it its itself
keep last latter latterly least less ltd made many may me meanwhile might mill mine more
moreover most mostly move much must my myself name namely neither never nevertheless next nine
no nobody none noone nor not nothing now nowhere of off often on once one only onto or other
others otherwise our ours ourselves out over own part per perhaps please put rather re same see
seem seemed seeming seems serious several she should show side since sincere six sixty so some
somehow someone something sometime sometimes somewhere still such system take ten than that the
their them themselves then thence there thereafter thereby therefore therein thereupon these
they thick thin third this those though three through throughout thru thus to together too top
toward towards twelve twenty two un under until up upon us very via was we well were what
whatever when whence whenever where whereafter whereas whereby wherein whereupon wherever
whether which while whither who whoever whole whom whose why will with within without would yet
you your yours yourself yourselves
""".split())


def stop_words() -> frozenset[str]:
    return ENGLISH_STOP_WORDS | ACADEMIC_STOP_WORDS


def settings_key(ranking: RankingConfig) -> str:
    """Fingerprint of the settings that change the features (a change forces a refit)."""
    text = (f"{MODEL_FORMAT}|{ranking.title_weight}|{ranking.ngram_max}|{ranking.min_df}|{ranking.max_df}|"
            f"{ranking.sublinear_tf}|{ranking.stem}")
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


@dataclass
class TextModel:
    """The fitted vocabulary and weights as plain arrays, and the corpus's unit TF-IDF rows.

    Loading one from the cache maps its arrays only (no scikit-learn); the term index
    is built on first use of :meth:`vectors`, which ranking stored papers never needs.
    """

    vocabulary: str  # the terms, sorted, joined by newlines (one string stores and loads fast)
    idf: np.ndarray
    sublinear_tf: bool
    ngram_max: int
    stop_words: frozenset[str]
    title_weight: float
    paper_ids: list[str]
    matrix: sp.csr_matrix
    version: int
    stemmed: bool = False  # terms are stems (``[ranking] stem``)
    shown_vocabulary: str = ""  # with stems: each term as a word (its most frequent form), joined by newlines
    index: dict[str, int] = field(default_factory=dict)
    derived_fields: ClassVar[tuple[str, ...]] = ("index",)  # rebuilt on load, not stored

    def __post_init__(self) -> None:
        self.index = {pid: i for i, pid in enumerate(self.paper_ids)}

    @cached_property
    def terms(self) -> list[str]:
        return self.vocabulary.split("\n") if self.vocabulary else []

    @cached_property
    def shown_terms(self) -> list[str]:
        """The terms as a reader should see them: words, not stems."""
        return self.shown_vocabulary.split("\n") if self.shown_vocabulary else self.terms

    @cached_property
    def stem(self) -> Stem | None:
        return english_stemmer() if self.stemmed else None

    @cached_property
    def term_index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.terms)}

    def vectors(self, titles: list[str], abstracts: list[str]) -> sp.csr_matrix:
        """L2-normalised TF-IDF rows for texts not necessarily in the corpus."""

        def counts(texts: list[str]) -> sp.csr_matrix:
            return count_known([for_ranking(t) for t in texts], self.term_index, TOKEN_PATTERN, self.stop_words,
                               self.ngram_max, self.stem)

        return weigh(self.title_weight * counts(titles) + counts(abstracts), self.idf, self.sublinear_tf)

    def rows(self, paper_ids: list[str]) -> sp.csr_matrix:
        return taken_rows(self.matrix, np.array([self.index[p] for p in paper_ids], dtype=np.int64))


def taken_rows(matrix: sp.csr_matrix | np.ndarray, at: np.ndarray) -> sp.csr_matrix | np.ndarray:
    """Rows ``at`` of a CSR matrix or an array (read only): a view when they are one run of
    consecutive rows, as a batch's papers usually are (stored, and so fitted, together), which
    spares copying 5,000 rows to rank one user; else a copy."""
    if not (len(at) and at[-1] - at[0] == len(at) - 1 and bool((np.diff(at) == 1).all())):
        return matrix[at]
    first, end = int(at[0]), int(at[-1]) + 1
    if not sp.issparse(matrix):
        return matrix[first:end]
    matrix = cast(sp.csr_matrix, matrix)
    start, stop = matrix.indptr[first], matrix.indptr[end]
    view = sp.csr_matrix((end - first, matrix.shape[1]), dtype=matrix.dtype)
    # Set, not passed to the constructor: that copies a slice much smaller than its base array.
    view.indptr, view.indices, view.data = matrix.indptr[first:end + 1] - start, matrix.indices[start:stop], \
        matrix.data[start:stop]
    return view


def weigh(counts: sp.spmatrix, idf: np.ndarray, sublinear_tf: bool, in_place: bool = False) -> sp.csr_matrix:
    """Unit TF-IDF rows from term counts: ``1 + log(tf)`` when sublinear, times idf (as
    scikit-learn's TfidfTransformer computes them). ``in_place`` reuses a float64 CSR
    ``counts`` the caller no longer needs (fitting a large corpus: one matrix, not three)."""
    if in_place and sp.isspmatrix_csr(counts) and counts.dtype == np.float64:
        weighted = counts
    else:
        weighted = sp.csr_matrix(counts, dtype=np.float64, copy=True)
    if sublinear_tf:
        np.log(weighted.data, out=weighted.data)
        weighted.data += 1
    weighted.data *= idf[weighted.indices]
    return scale_to_unit_rows(weighted)


def smooth_idf(counts: sp.csr_matrix) -> np.ndarray:
    """``ln((1 + n) / (1 + df)) + 1`` per term, scikit-learn's default (smooth_idf=True)."""
    document_frequency = np.bincount(counts.indices, minlength=counts.shape[1])
    return np.log((1 + counts.shape[0]) / (1 + document_frequency)) + 1


def fit(paper_ids: list[str], titles: list[str], abstracts: list[str], ranking: RankingConfig,
        version: int) -> TextModel:
    small = len(paper_ids) < SMALL_CORPUS
    stop = stop_words()
    clean_titles = [for_ranking(t) for t in titles]
    clean_abstracts = [for_ranking(a) for a in abstracts]
    surface: dict[str, str] = {}
    try:  # titles and abstracts counted in one pass, with the title's occurrences weighted higher
        counting = Counting(TOKEN_PATTERN, stop, ranking.ngram_max, 1 if small else ranking.min_df,
                            1.0 if small else ranking.max_df, english_stemmer() if ranking.stem else None)
        terms, counts = fit_counts(clean_abstracts, counting, prefixes=clean_titles,
                                   prefix_weight=ranking.title_weight, surface=surface)
    except ValueError:  # empty vocabulary: no paper has a usable word yet
        terms = ["empty"]  # one placeholder term keeps every matrix at least one column wide
        counts = sp.csr_matrix((len(clean_titles), 1))
    idf = smooth_idf(counts)
    shown = "\n".join(" ".join(surface.get(part, part) for part in term.split(" ")) for term in terms) \
        if ranking.stem else ""
    return TextModel("\n".join(terms), idf, ranking.sublinear_tf, ranking.ngram_max, stop, ranking.title_weight,
                     paper_ids, weigh(counts, idf, ranking.sublinear_tf, in_place=True), version, ranking.stem, shown)


def cache_key(corpus_version: int, ranking: RankingConfig) -> str:
    """The key a model fit on this corpus version with these settings is cached under."""
    return f"{corpus_version}:{settings_key(ranking)}"
