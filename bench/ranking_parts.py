"""Per-reader mixes of the ranking's parts with everyone's stars, on CiteULike DEV readers,
measured outside the ranking code (bench/RESULTS.md, issue #37).

The install is built and fit through the product's path (`quality.build_store`,
`pipeline.refresh`, the profiles as `recommend` builds them, `community = "auto"`, every DEV
reader's stars); then each evaluated reader's three parts are scored against all new papers:
the content part C (the term profile: each reader's term classifier, ``term_ridge``), the
reader factors F and the reader model M (unit weights). The default mix, C + collaborative_weight * (F + M * reader_model_weight /
collaborative_weight), is exactly what ranking computes (the same figures as
`quality.rank_ours`). Each other mix is scored on the first SAMPLE eligible readers and on
the ones after them (a gain has to hold on both). Not part of `make bench`: a tuning tool.

    python bench/ranking_parts.py [--dataset t] [--readers 750] [--gate] [--neighbours] [--popularity] [--own]
        [--hard-negatives [COUNT:EXTRA ...]] [--clustered-negatives [GROUPS:COUNT:EXTRA[:model|:random] ...]]
        [--near-groups N]

``--own`` adds each reader's own SVM (the classifier a reader alone gets, 0.5-1 s a reader;
and fit on a sample of the corpus, tens of milliseconds) to the default mix: how much a
hinge-loss classifier over the whole corpus adds beside the community's parts.

``--hard-negatives`` refits each reader model with the unstarred old papers its dense parts
score highest weighted as extra negatives (a squared-loss stand-in for the SVM's hinge loss,
which counts only papers near the boundary) and puts it in M's place.

``--clustered-negatives`` does the same with the old papers in GROUPS k-means groups (by their
predicted factors beside their dense features; ``:model``: by the dense features alone, ranked
by the first model alone; ``:random``: random starts), each group one row standing for its
papers: what ``reader_model.NearGroups`` does in the product. ``--near-groups`` sets the
install's own ``reader_model_near_groups`` (0: the product's reader models without them).

``--gate`` adds the per-reader validation gate: each reader's stars in FOLDS folds, each fold
ranked among NEGATIVES other old papers by the parts refit without it (C and F from the
other stars, M refit by `reader_model.weights`), and the mix with the best validation
(mean AUC, or the share of held-out stars above the negatives' 95th percentile) chosen for
that reader; F's validation either with the stars' learned factors (as ranking uses them;
those factors saw the held-out star) or with their text-predicted ones.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from citeulike import Dataset, load, tie_keys  # noqa: E402
from quality import SAMPLE, build_store, email  # noqa: E402

from recommender import pipeline  # noqa: E402
from recommender.base.config import PersonalMode, RankingConfig  # noqa: E402
from recommender.model import reader_model  # noqa: E402
from recommender.pipeline import stored_models  # noqa: E402
from recommender.pipeline.stored_models import Models  # noqa: E402

FOLDS, NEGATIVES = 3, 500
DISCOUNTS = 1 / np.log2(np.arange(2, 22))


@dataclass
class Parts:
    content: np.ndarray  # readers x candidates
    factors: np.ndarray
    model: np.ndarray  # the reader models' unit weights' scores (before reader_model_weight)
    relevant: np.ndarray  # readers x candidates, bool
    keys: np.ndarray  # the protocol's tie keys
    stars: np.ndarray  # each reader's old papers
    dense: np.ndarray  # each reader's dense profile row: factors, then the reader model scaled as ranking weighs it


def candidate_rows(data: Dataset, models: Models) -> tuple[np.ndarray, np.ndarray]:
    """Which candidates the text model has a row for (the others, CiteULike-a's empty titles,
    score 0 in every part), and those rows."""
    index = models.text.index
    has = np.array([c in index for c in data.new_ids])
    return has, np.array([index[c] for c, row in zip(data.new_ids, has, strict=True) if row], dtype=np.int64)


def old_rows(models: Models, new: set[str]) -> np.ndarray:
    """The rows of the old papers (every paper not among the candidates ``new``), in order."""
    return np.array(sorted(i for p, i in models.text.index.items() if p not in new))


def unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def like_spread(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``scores`` rescaled per reader (row) to ``reference``'s spread, to be added beside it."""
    return scores * (reference.std(axis=1, keepdims=True) / (scores.std(axis=1, keepdims=True) + 1e-12))


def metrics(scores: np.ndarray, relevant: np.ndarray, keys: np.ndarray) -> tuple[float, float]:
    """Mean R@50 and nDCG@20 of each row's ranking (ties by the protocol's keys)."""
    recall, ndcg = [], []
    for row in range(scores.shape[0]):
        hits = relevant[row, np.lexsort((keys, -scores[row]))[:50]].astype(float)
        count = relevant[row].sum()
        recall.append(hits.sum() / count)
        ndcg.append((hits[:20] * DISCOUNTS).sum() / DISCOUNTS[:min(count, 20)].sum())
    return float(np.mean(recall)), float(np.mean(ndcg))


def fitted(data: Dataset, folder: Path, readers: list[str], ranking: RankingConfig) -> tuple[Models, sp.csr_matrix, Parts]:
    everyone = {u: data.old_of(u) for u in data.libraries}
    store, config, _ = build_store(data, folder, everyone, readers, ranking)
    models = pipeline.refresh(store, config)
    ids = store.sync_users(email(u) for u in readers)
    pairs = [(ids.of(email(u)), config.user(email(u))) for u in readers]
    profiles = stored_models.build_profiles(store, models, pairs, ranking, datetime.now(UTC), persist=False)
    store.close()
    assert models.collab is not None and models.space is not None and profiles.dense is not None
    text, collab, space = models.text, models.collab, models.space
    # every reader's pulls are their imported stars, weight 1
    starred = [[text.index[p] for p in everyone[u] if p in text.index] for u in readers]
    pulls = sp.csr_matrix((np.ones(sum(map(len, starred))), np.concatenate(starred),
                           np.cumsum([0] + [len(s) for s in starred])), shape=(len(readers), text.matrix.shape[0]))
    candidates = data.new_ids
    k = collab.predicted.shape[1]
    has, rows = candidate_rows(data, models)
    present = [c for c, row in zip(candidates, has, strict=True) if row]
    content, factors, model = (np.zeros((len(readers), len(candidates))) for _ in range(3))
    content[:, has] = (profiles.matrix @ text.matrix[rows].T).toarray()
    factors[:, has] = profiles.dense[:, :k] @ collab.predicted[[collab.index[c] for c in present]].T
    model[:, has] = profiles.dense[:, k:] @ space.coordinates[rows].T
    model /= ranking.reader_model_weight / ranking.collaborative_weight
    position = {c: i for i, c in enumerate(candidates)}
    relevant = np.zeros(content.shape, dtype=bool)
    for row, user in enumerate(readers):
        relevant[row, [position[p] for p in data.relevant(user)]] = True
    keys = np.array([tie_keys(candidates)[c] for c in candidates])
    return models, pulls, Parts(content, factors, model, relevant, keys, np.array([len(s) for s in starred]),
                                profiles.dense)


def folds(models: Models, pulls: sp.csr_matrix, new: set[str]) -> list[list[tuple[int, np.ndarray]]]:
    """Each reader's validation folds: (held-out stars, rows C / F learned / F predicted / M
    of the held-out stars and then the negatives)."""
    text, collab, space = models.text, models.collab, models.space
    assert collab is not None and space is not None and space.basis is not None
    old = old_rows(models, new)
    out = []
    for reader in range(pulls.shape[0]):
        rng = np.random.default_rng(reader)
        papers = pulls.indices[pulls.indptr[reader]:pulls.indptr[reader + 1]]
        negatives = np.setdiff1d(rng.choice(old, NEGATIVES + len(papers), replace=False), papers)[:NEGATIVES]
        fold = rng.permutation(len(papers)) % FOLDS
        per = []
        for f in range(FOLDS):
            kept, held = papers[fold != f], papers[fold == f]
            rows = np.concatenate([held, negatives])
            pull = sp.csr_matrix((np.ones(len(kept)), (np.zeros(len(kept), dtype=int), kept)), shape=(1, pulls.shape[1]))
            weights, _ = reader_model.weights(space.coordinates, space.basis, pull)
            per.append((len(held), np.stack([
                text.matrix[rows] @ unit(np.asarray((pull @ text.matrix).todense()).ravel()),
                collab.predicted[rows] @ unit(np.asarray(pull @ collab.combined).ravel()),
                collab.predicted[rows] @ unit(np.asarray(pull @ collab.predicted).ravel()),
                space.coordinates[rows] @ weights[0]])))
        out.append(per)
    return out


def validation(per: list[tuple[int, np.ndarray]], mix: tuple[float, float, float], learned: bool, auc: bool) -> float:
    total = 0.0
    for held, parts in per:
        scores = mix[0] * parts[0] + mix[1] * parts[1 if learned else 2] + mix[2] * parts[3]
        positives, negatives = scores[:held], scores[held:]
        total += float((positives[:, None] > negatives[None]).mean() if auc
                       else (positives > np.quantile(negatives, 0.95)).mean())
    return total


def support_ridge(data: Dataset, models: Models, pulls: sp.csr_matrix, ridge: float, terms: int = 0,
                  diagonal: bool = False, rank: int = 0) -> np.ndarray:
    """Each reader's class-balanced ridge classifier (stars +1, every other old paper -1) over
    the TF-IDF terms their stars hold, solved on the corpus's term Gram matrix; its scores of
    the candidates (readers x candidates)."""
    text = models.text
    old = old_rows(models, data.new)
    rows = text.matrix[old].tocsr()
    gram = (rows.T @ rows).tocsc()
    column_sums = np.asarray(rows.sum(axis=0)).ravel()
    if rank:  # the Gram matrix's off-diagonal part as (V S)(V S)' of a truncated SVD of the corpus
        from sklearn.decomposition import TruncatedSVD

        svd = TruncatedSVD(rank, algorithm="randomized", n_iter=3, random_state=0).fit(rows)
        scaled_terms = svd.components_.T * svd.singular_values_
    has, rows = candidate_rows(data, models)
    candidates = text.matrix[rows].tocsc()
    out = np.zeros((pulls.shape[0], len(data.new_ids)))
    for reader in range(pulls.shape[0]):
        stars = pulls.indices[pulls.indptr[reader]:pulls.indptr[reader + 1]]
        starred = text.matrix[stars]
        support = np.unique(starred.indices)
        if terms and len(support) > terms:  # the centroid's strongest terms
            centroid = np.asarray(starred[:, support].sum(axis=0)).ravel()
            support = np.sort(support[np.argsort(-centroid, kind="stable")[:terms]])
        if len(stars) < 2 or not len(support):
            continue
        w_pos, w_neg = len(old) / (2 * len(stars)), len(old) / (2 * (len(old) - len(stars)))
        own = np.hstack([starred[:, support].toarray(), np.ones((len(stars), 1))])  # (an intercept last)
        corpus = np.zeros((len(support) + 1, len(support) + 1))
        if rank:
            corpus[:-1, :-1] = scaled_terms[support] @ scaled_terms[support].T
            corpus[np.arange(len(support)), np.arange(len(support))] = gram.diagonal()[support]
        else:
            corpus[:-1, :-1] = np.diag(gram.diagonal()[support]) if diagonal else gram[support][:, support].toarray()
        corpus[:-1, -1] = corpus[-1, :-1] = column_sums[support]
        corpus[-1, -1] = len(old)
        penalty = ridge * np.eye(len(support) + 1)
        penalty[-1, -1] = 1e-6
        system = w_neg * corpus + (w_pos - w_neg) * own.T @ own + penalty
        target = -w_neg * np.append(column_sums[support], len(old)) + (w_pos + w_neg) * own.sum(axis=0)
        weights = np.linalg.solve(system, target)
        out[reader, has] = candidates[:, support] @ weights[:-1]
    return out


def neighbours(data: Dataset, models: Models, pulls: sp.csr_matrix) -> dict[str, np.ndarray]:
    """Each candidate's similarity to the reader's nearest starred papers (readers x
    candidates): the largest, and the mean of the three largest, by TF-IDF rows and by the
    unit dense features."""
    text, space = models.text, models.space
    assert space is not None
    has, rows = candidate_rows(data, models)
    candidates, dense = text.matrix[rows].T.tocsc(), unit(space.coordinates[rows]).T
    out = {name: np.zeros((pulls.shape[0], len(data.new_ids))) for name in
           ("nearest star (TF-IDF)", "three nearest (TF-IDF)", "nearest star (dense)", "three nearest (dense)")}
    for reader in range(pulls.shape[0]):
        stars = pulls.indices[pulls.indptr[reader]:pulls.indptr[reader + 1]]
        for kind, sims in (("TF-IDF", (text.matrix[stars] @ candidates).toarray()),
                           ("dense", unit(space.coordinates[stars]) @ dense)):
            top = -np.sort(-sims, axis=0)
            out[f"nearest star ({kind})"][reader, has] = top[0]
            out[f"three nearest ({kind})"][reader, has] = top[:3].mean(axis=0)
    return out


def own_classifiers(data: Dataset, models: Models, pulls: sp.csr_matrix, ranking: RankingConfig, sample: int = 0,
                    svm_c: float = 0.0) -> tuple[np.ndarray, float]:
    """Each reader's own SVM (``own_classifier``, as a reader alone gets it) scored against the
    candidates (readers x candidates), and its seconds a reader; ``sample``: fit on the
    reader's papers and that many other papers drawn at random instead of the whole corpus."""
    from sklearn.svm import LinearSVC

    from recommender.model import own_classifier

    text, space = models.text, models.space
    assert space is not None
    has, rows = candidate_rows(data, models)
    out = np.zeros((pulls.shape[0], len(data.new_ids)))
    if not sample:
        started = time.perf_counter()
        terms, dense, _ = own_classifier.classifier_rows(text, space, pulls, replace(ranking, personal=PersonalMode.ON))
        out[:, has] = (terms @ text.matrix[rows].T).toarray() + dense @ space.coordinates[rows].T
        return out, (time.perf_counter() - started) / pulls.shape[0]
    features = sp.hstack([text.matrix, sp.csr_matrix(space.coordinates.astype(np.float64))], format="csr")
    scored = features[rows].T.tocsc()
    started = time.perf_counter()
    for reader in range(pulls.shape[0]):
        papers = pulls.indices[pulls.indptr[reader]:pulls.indptr[reader + 1]]
        drawn = np.random.default_rng(reader).choice(features.shape[0], sample + len(papers), replace=False)
        others = np.setdiff1d(drawn, papers)[:sample]
        labels = np.r_[np.ones(len(papers)), np.zeros(len(others))]
        svm = LinearSVC(C=svm_c or ranking.personal_c, class_weight="balanced", dual=True, tol=1e-4, max_iter=10_000,
                        random_state=0).fit(features[np.concatenate([papers, others])], labels)
        out[reader, has] = scored.T @ svm.coef_.ravel()
    return out, (time.perf_counter() - started) / pulls.shape[0]


def hard_negative_models(data: Dataset, models: Models, pulls: sp.csr_matrix, parts: Parts, count: int,
                         extra: float) -> tuple[np.ndarray, float]:
    """Each reader's model refit (``reader_model.weights``) with the ``count`` old papers their
    dense parts (F + M, as ranking weighs them) score highest among those they did not star
    weighted ``extra`` as negatives (the papers a hinge loss would count), scored against the
    candidates (readers x candidates, unit weights), and its seconds a reader."""
    text, collab, space = models.text, models.collab, models.space
    assert collab is not None and space is not None and space.basis is not None
    has, rows = candidate_rows(data, models)
    new = np.ones(text.matrix.shape[0], dtype=bool)
    new[old_rows(models, data.new)] = False
    dense = np.hstack([collab.predicted, space.coordinates]).astype(np.float32)  # model order, as the pulls
    started = time.perf_counter()
    papers, weights = [], []
    for reader in range(pulls.shape[0]):
        stars = pulls.indices[pulls.indptr[reader]:pulls.indptr[reader + 1]]
        scores = dense @ parts.dense[reader]
        scores[new] = -np.inf
        scores[stars] = -np.inf
        chosen = np.concatenate([stars, np.argpartition(-scores, count)[:count]])
        order = np.argsort(chosen)
        papers.append(chosen[order])
        weights.append(np.r_[np.ones(len(stars)), np.full(count, -extra)][order])
    pull = sp.csr_matrix((np.concatenate(weights), np.concatenate(papers), np.cumsum([0] + [len(p) for p in papers])),
                         shape=pulls.shape)
    fitted, _ = reader_model.weights(space.coordinates, space.basis, pull)
    out = np.zeros((pulls.shape[0], len(data.new_ids)))
    out[:, has] = fitted @ space.coordinates[rows].T
    return out, (time.perf_counter() - started) / pulls.shape[0]


def clustered_negative_models(data: Dataset, models: Models, pulls: sp.csr_matrix, parts: Parts, clusters: int,
                              count: int, extra: float, by_model: bool | str = False) -> tuple[np.ndarray, float]:
    """As ``hard_negative_models``, with the old papers grouped once into ``clusters`` by their
    dense rows: each reader's ``count`` highest-scored groups join their model as one row each,
    the group's mean features weighted ``extra`` times the group's size (a cost independent of
    the corpus's size)."""
    from sklearn.cluster import MiniBatchKMeans

    collab, space = models.collab, models.space
    assert collab is not None and space is not None and space.basis is not None
    has, rows = candidate_rows(data, models)
    old = old_rows(models, data.new)
    dense = np.hstack([collab.predicted, space.coordinates]).astype(np.float32)
    reader_rows = parts.dense
    if by_model is True:  # groups of the reader model's own features, chosen by its first fit alone
        dense, reader_rows = space.coordinates, parts.dense[:, collab.predicted.shape[1]:]
    init = "random" if by_model == "random" else "k-means++"
    kmeans = MiniBatchKMeans(clusters, init=init, random_state=0, n_init=3, batch_size=4096).fit(dense[old])
    sizes = np.bincount(kmeans.labels_, minlength=clusters).astype(np.float64)
    centres = kmeans.cluster_centers_.astype(np.float32)
    coords = np.zeros((clusters, space.coordinates.shape[1]))
    np.add.at(coords, kmeans.labels_, space.coordinates[old].astype(np.float64))
    coords /= np.maximum(sizes, 1)[:, None]
    inverse = np.linalg.inv(space.basis.system)
    pseudo = np.hstack([coords, np.ones((clusters, 1))])
    pseudo_solved = pseudo @ inverse
    out_w = np.zeros((pulls.shape[0], space.coordinates.shape[1]))
    started = time.perf_counter()
    n_papers = space.basis.solved.shape[0]
    for reader in range(pulls.shape[0]):
        stars = pulls.indices[pulls.indptr[reader]:pulls.indptr[reader + 1]]
        top = np.argpartition(-(centres @ reader_rows[reader]), count)[:count]
        balance = (n_papers - len(stars)) / len(stars)
        rows_r = np.vstack([np.hstack([space.coordinates[stars].astype(np.float64), np.ones((len(stars), 1))]),
                            pseudo[top]])
        solved = np.vstack([space.basis.solved[stars].astype(np.float64), pseudo_solved[top]])
        e = np.r_[np.full(len(stars), balance - 1.0), sizes[top] * (extra - 1.0)]
        c = np.r_[np.full(len(stars), balance + 1.0), -sizes[top] * (extra - 1.0)]
        plain = solved.T @ c - space.basis.offset
        inner = np.eye(len(e)) + e[:, None] * (rows_r @ solved.T)
        w = (plain - solved.T @ np.linalg.solve(inner, e * (rows_r @ plain)))[:-1]
        out_w[reader] = w / (np.linalg.norm(w) or 1.0)
    seconds = (time.perf_counter() - started) / pulls.shape[0]
    out = np.zeros((pulls.shape[0], len(data.new_ids)))
    out[:, has] = out_w @ space.coordinates[rows].T
    return out, seconds


def popularity_mixes(data: Dataset, models: Models, show: Callable[[str, np.ndarray], None], base: np.ndarray) -> None:
    """The defaults plus a prior shared by every reader: how many readers' libraries an old
    paper is in, predicted for each candidate from its text (ridge regression of log(1 +
    readers) on the TF-IDF rows, on the dense features, and the predicted factors' norm)."""
    from sklearn.linear_model import Ridge

    text, collab, space = models.text, models.collab, models.space
    assert collab is not None and space is not None
    counts = np.zeros(text.matrix.shape[0])
    for user in data.libraries:
        counts[[text.index[p] for p in data.old_of(user) if p in text.index]] += 1
    old = old_rows(models, data.new)
    rows = np.array([text.index[c] for c in data.new_ids])
    target = np.log1p(counts[old])
    priors = {}
    for alpha in (1.0, 10.0):
        priors[f"TF-IDF ridge {alpha}"] = Ridge(alpha=alpha).fit(text.matrix[old], target).predict(text.matrix[rows])
    priors["dense ridge 10"] = Ridge(alpha=10.0).fit(space.coordinates[old], target).predict(space.coordinates[rows])
    priors["predicted factors' norm"] = np.linalg.norm(collab.predicted[[collab.index[c] for c in data.new_ids]], axis=1)
    print(f"  readers a paper: mean {counts[old].mean():.2f}, max {counts[old].max():.0f}")
    for name, prior in priors.items():
        z = (prior - prior.mean()) / (prior.std() + 1e-12)
        for weight in (0.005, 0.01, 0.02, 0.04, 0.08):
            show(f"defaults + {weight} x popularity ({name})", base + weight * z[None, :])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="t")
    parser.add_argument("--readers", type=int, default=750, help="eligible DEV readers scored (the sample first)")
    parser.add_argument("--gate", action="store_true", help="also the per-reader validation gate (slow)")
    parser.add_argument("--support-ridge", type=float, nargs="*", default=None, metavar="RIDGE",
                        help="also each reader's ridge classifier over the terms of their stars (these ridges)")
    parser.add_argument("--support-terms", type=int, default=0,
                        help="the support ridge over each reader's K strongest centroid terms only (0: all their terms)")
    parser.add_argument("--support-diagonal", action="store_true",
                        help="the support ridge with the corpus's term Gram matrix cut to its diagonal (a cheap solve)")
    parser.add_argument("--support-rank", type=int, default=0,
                        help="the support ridge with the Gram matrix's off-diagonal part from a rank-K SVD of the corpus")
    parser.add_argument("--neighbours", action="store_true",
                        help="also each candidate's similarity to the reader's nearest stars (item kNN)")
    parser.add_argument("--own", action="store_true",
                        help="also each reader's own SVM beside the parts, fit on the whole corpus and on samples (slow)")
    parser.add_argument("--hard-negatives", nargs="*", default=None, metavar="COUNT:EXTRA",
                        help="also each reader model refit with its COUNT highest-scored unstarred papers weighted EXTRA")
    parser.add_argument("--clustered-negatives", nargs="*", default=None, metavar="CLUSTERS:COUNT:EXTRA",
                        help="also each reader model refit with its COUNT highest-scored groups of old papers")
    parser.add_argument("--near-groups", type=int, default=RankingConfig().reader_model_near_groups,
                        help="[ranking] reader_model_near_groups of the install (0: reader models without near groups)")
    parser.add_argument("--popularity", action="store_true",
                        help="also a popularity prior: each candidate's reader count predicted from its text")
    args = parser.parse_args()
    data = load(args.dataset)
    ranking = replace(RankingConfig(), community="auto", reader_model_near_groups=args.near_groups)
    readers = data.eligible[:args.readers]
    with tempfile.TemporaryDirectory() as folder:
        models, pulls, parts = fitted(data, Path(folder), readers, ranking)
    c, f, m = parts.content, parts.factors, parts.model
    wf, wm = ranking.collaborative_weight, ranking.reader_model_weight
    base = c + wf * f + wm * m  # the product's mix

    def show(label: str, scores: np.ndarray) -> None:
        first = metrics(scores[:SAMPLE], parts.relevant[:SAMPLE], parts.keys)
        after = metrics(scores[SAMPLE:], parts.relevant[SAMPLE:], parts.keys)
        print(f"{label:58s} sample {first[0]:.4f} / {first[1]:.4f}   next {len(readers) - SAMPLE}: "
              f"{after[0]:.4f} / {after[1]:.4f}", flush=True)

    def zscored(x: np.ndarray) -> np.ndarray:
        return (x - x.mean(axis=1, keepdims=True)) / (x.std(axis=1, keepdims=True) + 1e-9)

    print(f"CiteULike-{args.dataset}, everyone's stars, R@50 / nDCG@20")
    show(f"defaults: C + {wf} F + {wm} M", base)
    for label, scores in (("C alone", c), ("F alone", f), ("M alone", m)):
        show(label, scores)
    for mix in ((1, 1, 1), (0.7, 1, 1), (1, 1, 1.5)):
        show(f"each part z-scored per reader, weights {mix}", mix[0] * zscored(c) + mix[1] * zscored(f) + mix[2] * zscored(m))
    few = (parts.stars < 15)[:, None]
    show("fewer than 15 stars: C + 2.1 F + 3.0 M", np.where(few, c + 2.1 * f + 3.0 * m, base))
    show("15-29 stars: 1.5 C + 0.7 F + 1.5 M", np.where(((parts.stars >= 15) & (parts.stars < 30))[:, None],
                                                        1.5 * c + 0.7 * f + 1.5 * m, base))
    assert models.collab is not None
    learned, predicted = pulls @ models.collab.combined, pulls @ models.collab.predicted
    candidates = np.zeros((len(data.new_ids), models.collab.predicted.shape[1]))
    has, _ = candidate_rows(data, models)
    candidates[has] = models.collab.predicted[[models.collab.index[p] for p, row in zip(data.new_ids, has, strict=True)
                                               if row]]
    for alpha in (0.75, 0.5):
        mixed = unit(alpha * learned + (1 - alpha) * predicted) @ candidates.T
        show(f"reader factors from {alpha} learned + {1 - alpha:.2f} predicted", c + wf * mixed + wm * m)
    if args.neighbours:
        for name, near in neighbours(data, models, pulls).items():
            scaled = like_spread(near, c)
            show(f"{name} alone", near)
            for weight in (0.25, 0.5, 1.0):
                show(f"defaults + {weight} x {name} (C's spread)", base + weight * scaled)
    if args.own:
        for sample, svm_c in ((0, 0.0), (500, 0.1), (2000, 0.1)):
            own, seconds = own_classifiers(data, models, pulls, ranking, sample, svm_c)
            fit_on = f"{sample} other papers, C {svm_c}" if sample else "the whole corpus"
            name = f"own SVM, {fit_on} ({1000 * seconds:.1f} ms a reader)"
            show(f"{name} alone", own)
            scaled = like_spread(own, c)
            for weight in (1.0, 2.0):
                show(f"defaults + {weight} x it (C's spread)", base + weight * scaled)
    if args.hard_negatives is not None:
        for spec in args.hard_negatives or ["300:2", "300:5", "300:10"]:
            count, extra = spec.split(":")
            hard, seconds = hard_negative_models(data, models, pulls, parts, int(count), float(extra))
            scaled = like_spread(hard, m)
            for weight in (1.0, 1.5, 2.0):
                show(f"M refit with {count} hard negatives x{extra}, weight {weight} x {wm} ({1000 * seconds:.1f} ms)",
                     c + wf * f + weight * wm * scaled)
    for spec in args.clustered_negatives or []:
        clusters, count, extra, *how = spec.split(":")
        hard, seconds = clustered_negative_models(data, models, pulls, parts, int(clusters), int(count), float(extra),
                                                  True if how == ["model"] else (how[0] if how else False))
        scaled = like_spread(hard, m)
        for weight in (1.0, 1.5, 2.0):
            show(f"M with {count} of {clusters} groups x{extra}, weight {weight} x {wm} ({1000 * seconds:.2f} ms)",
                 c + wf * f + weight * wm * scaled)
    if args.popularity:
        popularity_mixes(data, models, show, base)
    if args.support_ridge is not None:
        for ridge in args.support_ridge or [1.0]:
            support = support_ridge(data, models, pulls, ridge, args.support_terms, args.support_diagonal,
                                    args.support_rank)
            scaled = like_spread(support, c)
            show(f"support ridge {ridge} ({args.support_terms or 'all'} terms) alone", support)
            for weight in (0.5, 1.0, 2.0):
                show(f"defaults + {weight} x support ridge {ridge} (C's spread)", base + weight * scaled)
            show(f"support ridge {ridge} instead of C", scaled + wf * f + wm * m)
    if args.gate:
        validated = folds(models, pulls, data.new)
        sets = {"F : M": [(1, wf, wm), (1, wf / 2, wm), (1, 1.5 * wf, wm), (1, wf, wm / 2), (1, wf, 2 * wm)],
                "C scale": [(1, wf, wm), (0.5, wf, wm), (2, wf, wm)]}
        for name, mixes in sets.items():
            for learned_f in (True, False):
                for auc in (True, False):
                    chosen = np.array([int(np.argmax([validation(per, mix, learned_f, auc) + (1e-9 if i == 0 else 0)
                                                      for i, mix in enumerate(mixes)])) for per in validated])
                    weights = np.array(mixes, dtype=float)[chosen]
                    show(f"gate {name}, F {'learned' if learned_f else 'predicted'}, {'AUC' if auc else 'top 5%'} "
                         f"{np.bincount(chosen, minlength=len(mixes)).tolist()}",
                         weights[:, :1] * c + weights[:, 1:2] * f + weights[:, 2:] * m)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
