"""The CiteULike evaluation data and protocol (../shared/data/citeulike/README.md):
20% of papers held out as "new", profiles from each user's old papers, candidates are all new
papers; recall@20, recall@50 and nDCG@20 averaged over eligible DEV users."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "citeulike"
DATASETS = {"a": DATA, "t": DATA / "citeulike-t"}


@dataclass
class Dataset:
    name: str
    ids: list[str]  # sorted by integer value
    titles: list[str]
    abstracts: list[str]
    new: set[str]
    libraries: dict[str, list[str]]  # every DEV user's library
    eligible: list[str]  # users with >= 10 old papers and >= 1 new

    @property
    def new_ids(self) -> list[str]:
        return [i for i in self.ids if i in self.new]

    def old_of(self, user: str) -> list[str]:
        return [p for p in self.libraries[user] if p not in self.new]

    def relevant(self, user: str) -> set[str]:
        return {p for p in self.libraries[user] if p in self.new}


def load(name: str) -> Dataset:
    folder = DATASETS[name]
    papers = [json.loads(line) for line in (folder / "papers.jsonl").open(encoding="utf-8")]
    papers.sort(key=lambda p: int(p["id"]))
    new = set((folder / "new_papers.txt").read_text().split())
    libraries = {}
    for line in (folder / "libraries.jsonl").open(encoding="utf-8"):
        record = json.loads(line)
        libraries[record["user"]] = record["papers"]
    eligible = [u for u, papers_ in libraries.items()
                if sum(p not in new for p in papers_) >= 10 and any(p in new for p in papers_)]
    eligible.sort(key=int)
    return Dataset(name, [p["id"] for p in papers], [p["title"] for p in papers], [p["abstract"] for p in papers],
                   new, libraries, eligible)


def tie_keys(candidates: list[str]) -> dict[str, float]:
    """One fixed random key per candidate (seed 0), for breaking score ties."""
    keys = np.random.default_rng(0).random(len(candidates))
    return dict(zip(candidates, keys, strict=True))


@dataclass
class Metrics:
    r20: list[float]
    r50: list[float]
    ndcg: list[float]

    @staticmethod
    def empty() -> Metrics:
        return Metrics([], [], [])

    def add(self, ranked: list[str], relevant: set[str]) -> None:
        hits = np.array([p in relevant for p in ranked[:50]], dtype=float)
        discounts = 1 / np.log2(np.arange(2, 22))
        self.r20.append(hits[:20].sum() / len(relevant))
        self.r50.append(hits.sum() / len(relevant))
        ideal = discounts[:min(len(relevant), 20)].sum()
        self.ndcg.append(float((hits[:20] * discounts[:len(hits[:20])]).sum() / ideal))

    def head(self, count: int) -> Metrics:
        """The first ``count`` readers' figures (groups are ranked in the sample's order)."""
        return Metrics(self.r20[:count], self.r50[:count], self.ndcg[:count])

    def extend(self, other: Metrics) -> None:
        self.r20 += other.r20
        self.r50 += other.r50
        self.ndcg += other.ndcg

    def summary(self) -> dict[str, float]:
        n = len(self.r50)
        return {
            "users": n,
            "R@20": float(np.mean(self.r20)), "R@50": float(np.mean(self.r50)), "nDCG@20": float(np.mean(self.ndcg)),
            "se_R@50": float(np.std(self.r50) / np.sqrt(n)), "se_nDCG@20": float(np.std(self.ndcg) / np.sqrt(n)),
        }


def top_ids(scores: np.ndarray, candidates: list[str], keys: np.ndarray, k: int = 50) -> list[str]:
    order = np.lexsort((keys, -scores))[:k]
    return [candidates[i] for i in order]
