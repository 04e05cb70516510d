"""The TF-IDF model over every stored paper, fitted once per corpus version and cached.

Title and abstract are counted over one vocabulary and added with the title weighted
higher; then sublinear tf and idf (scikit-learn), rows L2-normalised. The fitted model and
the paper matrix are pickled into the database, so ``recommend`` refits only when
the corpus (or a ranking setting that changes the features) changed.
"""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer, TfidfTransformer
from sklearn.preprocessing import normalize

from recommender.config import RankingConfig
from recommender.store import Store
from recommender.text import for_ranking

log = logging.getLogger(__name__)

# Boilerplate of abstracts: frequent everywhere, telling about nothing.
ACADEMIC_STOP_WORDS = frozenset("""
paper propose proposed proposes present presents presented approach approaches method methods
result results show shows shown novel new based using use used study studies work works
demonstrate demonstrates significant significantly existing state art outperforms achieve
achieves address introduce introduces extensive experiments code available github com https http
""".split())
STOP_WORDS = sorted(ENGLISH_STOP_WORDS | ACADEMIC_STOP_WORDS)
TOKEN_PATTERN = r"(?u)\b[^\W\d_][^\W_]+\b"
SMALL_CORPUS = 100  # below this many papers, keep every term (document-frequency cut-offs misfire)
MODEL_FORMAT = 1


def settings_key(ranking: RankingConfig) -> str:
    """Fingerprint of the settings that change the features (a change forces a refit)."""
    text = f"{MODEL_FORMAT}|{ranking.title_weight}|{ranking.ngram_max}|{ranking.min_df}|{ranking.max_df}|{ranking.sublinear_tf}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


@dataclass
class TextModel:
    counter: CountVectorizer
    transformer: TfidfTransformer
    title_weight: float
    paper_ids: list[str]
    matrix: sp.csr_matrix
    version: int
    index: dict[str, int] = field(default_factory=dict)
    terms: np.ndarray = field(default_factory=lambda: np.array([]))
    term_index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {pid: i for i, pid in enumerate(self.paper_ids)}
        self.terms = self.counter.get_feature_names_out()
        self.term_index = {t: i for i, t in enumerate(self.terms)}

    def vectors(self, titles: list[str], abstracts: list[str]) -> sp.csr_matrix:
        """L2-normalised TF-IDF rows for texts not necessarily in the corpus."""
        counts = self.title_weight * self.counter.transform([for_ranking(t) for t in titles]) \
            + self.counter.transform([for_ranking(a) for a in abstracts])
        return normalize(self.transformer.transform(counts)).tocsr()

    def rows(self, paper_ids: list[str]) -> sp.csr_matrix:
        return self.matrix[[self.index[p] for p in paper_ids]]


def fit(paper_ids: list[str], titles: list[str], abstracts: list[str], ranking: RankingConfig,
        version: int) -> TextModel:
    small = len(paper_ids) < SMALL_CORPUS
    counter = CountVectorizer(
        stop_words=STOP_WORDS, token_pattern=TOKEN_PATTERN, lowercase=True,
        ngram_range=(1, ranking.ngram_max), min_df=1 if small else ranking.min_df,
        max_df=1.0 if small else ranking.max_df, dtype=np.float64,
    )
    clean_titles = [for_ranking(t) for t in titles]
    clean_abstracts = [for_ranking(a) for a in abstracts]
    try:  # one pass over the full texts; titles (short) are counted again for their extra weight
        combined = counter.fit_transform([f"{t} {a}" for t, a in zip(clean_titles, clean_abstracts, strict=True)])
    except ValueError:  # empty vocabulary: no paper has a usable word yet
        counter = CountVectorizer(token_pattern=r"(?u)\b\w+\b", dtype=np.float64)
        counter.fit(["empty"])
        combined = sp.csr_matrix((len(clean_titles), len(counter.vocabulary_)))
    counts = combined + (ranking.title_weight - 1) * counter.transform(clean_titles)
    transformer = TfidfTransformer(sublinear_tf=ranking.sublinear_tf)
    transformer.fit(counts if counts.shape[0] else counter.transform(["empty"]))
    if counts.shape[0]:
        matrix = normalize(transformer.transform(counts)).tocsr()
    else:
        matrix = sp.csr_matrix((0, len(counter.vocabulary_)))
    return TextModel(counter, transformer, ranking.title_weight, paper_ids, matrix, version)


def load_or_fit(store: Store, ranking: RankingConfig) -> TextModel:
    """The cached model for the current corpus, fitting (and caching) it when missing."""
    version = store.corpus_version()
    key = f"{version}:{settings_key(ranking)}"
    payload = store.load_model("tfidf", key)
    if payload is not None:
        model = pickle.loads(payload)  # noqa: S301 - our own payload, written by save below
        if isinstance(model, TextModel):
            return model
    ids, titles, abstracts = store.paper_texts()
    log.info("fitting TF-IDF model on %d papers (corpus version %d)", len(ids), version)
    model = fit(ids, titles, abstracts, ranking, version)
    buffer = io.BytesIO()
    pickle.dump(model, buffer, protocol=pickle.HIGHEST_PROTOCOL)
    store.save_model("tfidf", key, buffer.getvalue())
    return model
