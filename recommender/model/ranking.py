"""Score candidate papers for many users at once and pick each one's top papers. Pure and
deterministic: ties fall back to source order, then paper id.

score = cosine(profile, paper)                       content: TF-IDF terms
      + collaborative_weight * cosine(user, paper)   what readers with these stars saved
      + interest_boost if an `interests` keyword occurs in the paper
Followed authors' papers come first whatever their score. Users are scored in chunks with
sparse/dense matrix products; explanations are computed only for the papers shown.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from recommender.base.domain import Explanation, Paper, Recommendation, SharedTerm
from recommender.model import sparse_loops
from recommender.model.match_scale import matches_among
from recommender.model.profiles import Models, Profiles
from recommender.model.scoring import SPLIT_MIN_USERS, PoolScorer
from recommender.model.tfidf import TextModel, taken_rows
from recommender.model.written_terms import LOOK_UP, Written, WrittenForms, forms_of

TextsById = Callable[[list[str]], dict[str, tuple[str, str]]]  # paper ids -> (title, abstract) of those stored
CHUNK = 512
PARALLEL_CHUNKS = 2
FOLLOWED_BONUS = 1e6  # sorts a followed author's paper first; never shown as a score
COMPILED_SELECTION_FROM = 200_000  # scores from which one compiled pass beats sorting each row
WRITTEN_TRIES = 4  # shared terms read per term shown: the others may be written in neither paper


@dataclass(frozen=True)
class Choice:
    """What one user wants from a ranking run."""

    user: str
    limit: int
    min_score: float | None = None
    exclude: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    why_terms: int = 3
    collaborative_weight: float = 0.0
    interest_boost: float = 0.0
    interests: tuple[str, ...] = ()


def keyword_pattern(words: tuple[str, ...]) -> re.Pattern[str] | None:
    if not words:
        return None
    return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)


def _unpersonalized(paper: Paper, authors: tuple[str, ...]) -> Explanation:
    return Explanation(personalized=False, followed_authors=followed(paper, authors))


def followed(paper: Paper, authors: tuple[str, ...]) -> tuple[str, ...]:
    if not authors:
        return ()
    wanted = {a.casefold() for a in authors}
    return tuple(a for a in paper.authors if a.casefold() in wanted)


class _Matches:
    """Which candidates match a keyword list (exclude, interests), computed once per distinct list."""

    def __init__(self, pool: Sequence[Paper]):
        self.pool = pool
        self.texts: list[str] | None = None  # joined on first use: most runs match no keywords
        self.cache: dict[tuple[str, ...], np.ndarray] = {}

    def __call__(self, words: tuple[str, ...]) -> np.ndarray:
        if words not in self.cache:
            pattern = keyword_pattern(words)
            if self.texts is None:
                self.texts = [f"{p.title} {p.abstract}" for p in self.pool]
            self.cache[words] = np.array([bool(pattern and pattern.search(t)) for t in self.texts], dtype=bool)
        return self.cache[words]


@dataclass(frozen=True)
class Round:
    """One ranking round: the readers' profiles and choices (``skips``: each one's starred and
    sent ids) against a pool of candidates (``position``: id -> column) and its scorer."""

    profiles: Profiles
    scorer: PoolScorer
    skips: Sequence[set[str]]
    choices: Sequence[Choice]
    position: dict[str, int]
    matches: _Matches
    pool: list[Paper]


def top_candidates(round_: Round, start: int, end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                                 np.ndarray]:
    """Users ``start:end`` scored against every candidate at once: returns (picked candidate
    indices, their scores, their collaborative parts, how many picks each row has, their
    matches), best first, ties in source order. Cold-start rows (no profile) get the candidates
    in source order."""
    profiles, scorer, skips, choices = round_.profiles, round_.scorer, round_.skips, round_.choices
    position, matches, pool = round_.position, round_.matches, round_.pool
    n = scorer.size
    users = range(start, end)
    weights = np.array([choices[u].collaborative_weight for u in users], dtype=np.float32)
    readers = profiles.dense[start:end] if profiles.dense is not None else None
    total = scorer.scores(profiles.matrix[start:end], readers, weights)
    by_words: dict[tuple[str, ...], list[int]] = {}
    for offset, u in enumerate(users):
        if choices[u].interests and choices[u].interest_boost:
            by_words.setdefault(choices[u].interests, []).append(offset)
    for words, offsets in by_words.items():
        total[offsets] += choices[start + offsets[0]].interest_boost * matches(words)
    cold = np.array([profiles.empty(u) for u in users], dtype=bool)
    total[cold] = -np.arange(n, dtype=total.dtype)  # source order for users without a profile
    # Picking keys: the total itself unless a row needs papers blocked or followed authors lifted
    # (float64 then: a float32 cannot hold FOLLOWED_BONUS plus a score's digits).
    if any(choices[u].authors for u in users):
        keyed = total.astype(np.float64)
    elif scorer.blank.size or any(skips[u] or choices[u].exclude or choices[u].min_score is not None for u in users):
        keyed = total.copy()
    else:
        keyed = total
    blocked_rows, blocked_cols = [], []
    for offset, u in enumerate(users):
        choice = choices[u]
        for paper_id in skips[u]:
            column = position.get(paper_id)
            if column is not None:
                blocked_rows.append(offset)
                blocked_cols.append(column)
        if choice.exclude:
            keyed[offset, matches(choice.exclude)] = -np.inf
        if choice.min_score is not None and not cold[offset]:
            keyed[offset, total[offset] < choice.min_score] = -np.inf
        if choice.authors:
            bonus = np.array([bool(followed(p, choice.authors)) for p in pool])
            keyed[offset, bonus] = np.where(cold[offset], FOLLOWED_BONUS - np.arange(n)[bonus], FOLLOWED_BONUS
                                            + total[offset, bonus])
    keyed[blocked_rows, blocked_cols] = -np.inf
    keyed[:, scorer.blank] = -np.inf  # (see PoolScorer.blank), followed authors' papers too
    picked = best_columns(keyed, min(n, max(choices[u].limit for u in users)))
    finite = np.isfinite(np.take_along_axis(keyed, picked, axis=1))
    limits = np.array([choices[u].limit for u in users])
    counts = np.minimum(finite.sum(axis=1), limits)
    scores = np.where(cold[:, None], 0.0, np.take_along_axis(total, picked, axis=1))
    match = matches_among(total, scores, blocked_rows, blocked_cols, counts)
    match[cold] = 0
    return picked, scores, scorer.reader_part(readers, weights, picked), counts, match


def best_columns(keyed: np.ndarray, k: int) -> np.ndarray:
    """The columns of each row's ``k`` largest keys, best first, equal keys in column order."""
    fast = sparse_loops.compiled(sparse_loops.top_columns) if keyed.size >= COMPILED_SELECTION_FROM else None
    if fast is None:
        return np.argsort(-keyed, axis=1, kind="stable")[:, :k]
    picked = np.empty((keyed.shape[0], k), dtype=np.int64)
    fast(keyed, k, picked)
    return picked


def picks_by_chunk(round_: Round) -> Iterator[tuple[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                         np.ndarray, np.ndarray]]]:
    """``top_candidates`` of every chunk of users, in order, computed on both cores: one chunk
    per thread, each with single-threaded BLAS (faster than two threads each asking BLAS for
    both cores); the heavy parts (BLAS, the compiled scatter) release the GIL."""
    users = len(round_.choices)
    bounds = [(start, min(start + CHUNK, users)) for start in range(0, users, CHUNK)]

    def pick(chunk: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return top_candidates(round_, *chunk)

    if len(bounds) == 1:
        yield bounds[0], pick(bounds[0])
        return
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max_workers=PARALLEL_CHUNKS) as workers:
        yield from zip(bounds, workers.map(pick, bounds), strict=True)


def rank_many(models: Models, profiles: Profiles, pool: list[Paper], skips: Sequence[set[str]],
              choices: Sequence[Choice], papers: TextsById) -> list[list[Recommendation]]:
    """Each user's top ``choice.limit`` candidates from ``pool`` (in source order), best first.
    ``skips`` holds each user's starred and already-sent ids; ``papers`` looks up the papers
    explanations name (starred and liked ones). The
    profiles' dense part scores against the pool's predicted reader factors (``models.collab``) or,
    without those, its LSA coordinates (``models.space``: readers' own classifiers)."""
    if not pool or not choices:
        return [[] for _ in choices]
    model, collab, space = models.text, models.collab, models.space
    position = {p.id: i for i, p in enumerate(pool)}
    rows = model.rows([p.id for p in pool])
    dense_rows = None
    if collab is not None:
        dense_rows = taken_rows(collab.predicted, np.array([collab.index[p.id] for p in pool], dtype=np.int64))
        if space is not None and profiles.dense is not None and profiles.dense.shape[1] > dense_rows.shape[1]:
            # the readers' own models' part (reader_model), after the reader factors
            dense_rows = np.hstack([dense_rows, taken_rows(space.coordinates, np.array([model.index[p.id] for p in pool],
                                                                                      dtype=np.int64))])
    elif space is not None:
        dense_rows = taken_rows(space.coordinates, np.array([model.index[p.id] for p in pool], dtype=np.int64))
    scorer = PoolScorer(rows, dense_rows if profiles.dense is not None else None,
                        split=len(choices) >= SPLIT_MIN_USERS, profiles=profiles.matrix,
                        shared_columns=collab.predicted.shape[1] if collab is not None else None)
    matches = _Matches(pool)
    known = _RunPapers(papers)
    forms = forms_of(model)
    forms.use(models.written, model)
    results: list[list[Recommendation]] = []
    if not model.matrix.has_sorted_indices:
        model.matrix.sort_indices()  # the explanation kernels merge rows by term index
    round_ = Round(profiles, scorer, skips, choices, position, matches, pool)
    for (start, end), (picked, scores, collaborative, counts, match) in picks_by_chunk(round_):
        explain = _ChunkExplainer(model, round_, known, forms, start, picked, counts)
        if collab is None:
            collaborative = np.zeros_like(collaborative)  # a classifier's LSA part: no other reader's stars
        for offset in range(end - start):
            u = start + offset
            choice = choices[u]
            if profiles.empty(u):
                results.append([Recommendation(choice.user, pool[i], 0.0, n + 1,
                                               functools.partial(_unpersonalized, pool[i], choice.authors))
                                for n, i in enumerate(picked[offset, :counts[offset]])])
                continue
            count = counts[offset]  # the row's numbers as Python floats at once, not one numpy scalar each
            results.append([Recommendation(choice.user, pool[i], score, n + 1,
                                           functools.partial(explain, offset, n, part), match=m)
                            for n, (i, score, part, m) in enumerate(zip(picked[offset, :count].tolist(),
                                                                        scores[offset, :count].tolist(),
                                                                        collaborative[offset, :count].tolist(),
                                                                        match[offset, :count].tolist(),
                                                                        strict=True))])
    return results


class _RunPapers:
    """Papers looked up once per ranking run: the same starred papers are the nearest ones for
    many users, in every chunk."""

    def __init__(self, lookup: TextsById):
        self.lookup = lookup
        self.known: dict[str, tuple[str, str]] = {}
        self.asked: set[str] = set()

    def __call__(self, ids: list[str]) -> dict[str, tuple[str, str]]:
        missing = [i for i in ids if i not in self.asked]
        if missing:
            self.known.update(self.lookup(missing))
            self.asked.update(missing)
        return {i: self.known[i] for i in ids if i in self.known}


class _ChunkExplainer:
    """Explanations for every pick of one chunk of users, computed together the first time
    one is asked for: the starred (or liked) papers nearest to each pick (similarity of every
    (star, pick) pair of a user, one compiled pass), the terms each pick shares with its nearest
    star as both papers write them (see written_terms), and those stars (one query)."""

    KNOWN = 200  # a user's strongest starred papers considered as "nearest"

    def __init__(self, model: TextModel, round_: Round, papers: TextsById,
                 forms: WrittenForms, start: int, picked: np.ndarray, counts: np.ndarray):
        self.model, self.profiles, self.pool, self.papers, self.forms = model, round_.profiles, round_.pool, papers, forms
        self.choices, self.start, self.picked, self.counts = round_.choices, start, picked, counts
        self.ready = False

    def __call__(self, offset: int, n: int, collaborative: float) -> Explanation:
        if not self.ready:
            self._prepare()
        choice = self.choices[self.start + offset]
        paper = self.pool[int(self.picked[offset, n])]
        at = self.pick_start.get(offset)  # (star id, similarity) of the pick's nearest stars
        near = [] if at is None else [(self.known_ids[j], v) for j, v in zip(self.top[at + n], self.top_values[at + n],
                                                                              strict=True) if j >= 0]
        nearest = tuple((pid, self.star_titles.get(pid, pid), sim) for pid, sim in near)
        starred = self.profiles.starred[self.start + offset]
        liked = frozenset(pid for pid, _ in near if pid not in starred)
        terms = self.shared.get((offset, n), [])
        if not terms and not near:
            terms = self._profile_terms(offset, n, choice.why_terms)
        pattern = keyword_pattern(choice.interests)
        matched = tuple(sorted({m.group(0).lower() for m in pattern.finditer(f"{paper.title} {paper.abstract}")})) \
            if pattern else ()
        return Explanation(personalized=True, nearest=nearest, terms=tuple(terms),
                           followed_authors=followed(paper, choice.authors), matched_interests=matched,
                           collaborative=collaborative, liked=liked)

    def _prepare(self) -> None:
        matrix, index = self.model.matrix, self.model.index
        pool_rows = np.array([index[p.id] for p in self.pool], dtype=np.int64)
        users = []  # (offset, known ids, their model rows, pick model rows)
        for offset in range(self.picked.shape[0]):
            u = self.start + offset
            weights = self.profiles.weights[u]
            known = sorted((p for p, w in weights.items() if w > 0 and p in index),
                           key=lambda p: (-weights[p], p))[:self.KNOWN]
            picks = pool_rows[self.picked[offset, :self.counts[offset]]]
            if known and len(picks) and not self.profiles.empty(u):
                users.append((offset, known, np.array([index[p] for p in known], dtype=np.int64), picks))
        sizes = [len(rows) * len(picks) for _, _, rows, picks in users]
        sims, blocks = np.zeros(sum(sizes)), _offsets(sizes)
        star_rows, star_ptr = _joined([rows for _, _, rows, _ in users]), _offsets([len(rows) for _, _, rows, _ in users])
        pick_rows, pick_ptr = _joined([picks for *_, picks in users]), _offsets([len(picks) for *_, picks in users])
        sparse_loops.run(sparse_loops.block_dots, len(sims) * 100, matrix.indptr, matrix.indices, matrix.data, blocks,
                         star_rows, star_ptr, pick_rows, pick_ptr, np.full(matrix.shape[1], -1, dtype=np.int64), sims)
        # The two most similar stars of every pick: highest similarity, then lowest id (a user's
        # stars are distinct ids, so their order among all users' is their order within one).
        self.known_ids = [p for _, known, _, _ in users for p in known]
        id_rank = np.empty(len(self.known_ids), dtype=np.int64)
        id_rank[sorted(range(len(self.known_ids)), key=self.known_ids.__getitem__)] = np.arange(len(self.known_ids))
        top, top_values = np.full((len(pick_rows), 2), -1, dtype=np.int64), np.zeros((len(pick_rows), 2))
        sparse_loops.run(sparse_loops.block_top_two, len(sims) * 4, blocks, star_ptr, pick_ptr, id_rank, sims, top,
                         top_values)
        self.top, self.top_values = top.tolist(), top_values.tolist()  # (plain numbers, read a pick at a time)
        self.pick_start = {offset: at for (offset, *_), at in zip(users, pick_ptr.tolist(), strict=False)}
        explained = np.flatnonzero(top[:, 0] >= 0)  # picks with a nearest star: their shared terms
        owner = np.repeat(np.arange(len(users)), np.diff(pick_ptr))[explained]  # (user offset, pick) of each
        where = [(users[u][0], m - at) for u, m, at in zip(owner.tolist(), explained.tolist(), pick_ptr[owner].tolist(),
                                                            strict=True)]
        pairs_first, pairs_second = star_rows[top[explained, 0]], pick_rows[explained]
        nearest_star = [self.known_ids[j] for j in top[explained, 0].tolist()]
        # More than shown: a term neither paper writes as such (a stem, a bigram over a dropped
        # word) or filler is passed over for the next.
        keep = WRITTEN_TRIES * max(1, max((c.why_terms for c in self.choices[self.start:self.start + self.picked.shape[0]]),
                                          default=0))
        term_slots = np.full((len(where), keep), -1, dtype=np.int64)
        term_values = np.zeros((len(where), keep))
        sparse_loops.run(sparse_loops.pair_top_terms, len(where) * 400, matrix.indptr, matrix.indices, matrix.data,
                         pairs_first, pairs_second, term_slots, term_values)
        wanted = sorted({self.known_ids[j] for j in np.unique(top[top >= 0]).tolist()})
        self.star_texts = self.papers(wanted) if wanted else {}
        self.star_titles = {pid: title for pid, (title, _) in self.star_texts.items()}
        self.shared: dict[tuple[int, int], list[SharedTerm]] = {}  # (user offset, pick) -> shared terms
        slots, values = term_slots.tolist(), term_values.tolist()  # plain ints: fast
        text, paper, shared = self.forms.text, self.forms.paper, self.forms.shared_with
        picks = [self.pool[int(self.picked[offset, n])] for offset, n in where]
        codes, phrases = self.forms.one_forms([p.id for p in picks], term_slots).tolist(), self.forms.phrases
        for m, (offset, n) in enumerate(where):
            limit = self.choices[self.start + offset].why_terms
            pick, star_id = picks[m], nearest_star[m]
            star = self.star_texts.get(star_id)
            if star is None:
                continue
            pick_text: Written | None = None  # read only where the batch's forms do not say
            star_text = paper(star_id, *star)
            shown: dict[str, SharedTerm] = {}
            for t, v, code in zip(slots[m], values[m], codes[m], strict=True):
                if code >= 0:  # the pick writes the term one way: does the star write it so?
                    phrase = phrases[code]
                    written = phrase if star_text.writes(phrase) else None
                elif code == LOOK_UP:
                    pick_text = pick_text or text(pick.id, pick.title, pick.abstract)
                    written = shared(self.model.terms[t], pick_text, star_text, t)  # (the terms split on first use)
                else:
                    written = None
                if written is not None and written not in shown:
                    shown[written] = SharedTerm(written, v)
                    if len(shown) == limit:
                        break
            self.shared[(offset, n)] = list(shown.values())
        self.ready = True

    def _profile_terms(self, offset: int, n: int, limit: int) -> list[SharedTerm]:
        """Without a nearest star: the pick's terms weighted by the profile's weights, as the pick writes them."""
        pick = self.pool[int(self.picked[offset, n])]
        row = self.model.matrix[self.model.index[pick.id]]
        profile = self.profiles.matrix[self.start + offset]
        weights = dict(zip(profile.indices.tolist(), profile.data.tolist(), strict=True))
        values = row.data * np.array([weights.get(c, 0.0) for c in row.indices.tolist()])
        text = self.forms.text(pick.id, pick.title, pick.abstract)
        columns = {self.model.terms[c]: c for c in row.indices.tolist()}  # (a batch paper's forms are by column)
        shown: list[SharedTerm] = []
        for term in top_terms(self.model, row.indices, values, WRITTEN_TRIES * limit):
            written = self.forms.written(term.term, text, columns[term.term])
            if written is not None and all(written != s.term for s in shown):
                shown.append(SharedTerm(written, term.contribution))
        return shown[:limit]


def _offsets(lengths: list[int]) -> np.ndarray:
    """Where each of consecutive blocks of these lengths starts, and the end."""
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays).astype(np.int64) if arrays else np.zeros(0, dtype=np.int64)


def top_terms(model: TextModel, columns: np.ndarray, values: np.ndarray, n: int) -> list[SharedTerm]:
    """The ``n`` columns of largest positive value, as the model's terms (stems, when stemmed)."""
    order = sorted((i for i in range(len(columns)) if values[i] > 0),
                   key=lambda i: (-values[i], str(model.terms[columns[i]])))[:n]
    return [SharedTerm(str(model.terms[columns[i]]), float(values[i])) for i in order]
