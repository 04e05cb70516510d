"""Synthetic papers and users with a fixed seed: a Zipf vocabulary, topics that skew word
choice, ~150-token abstracts and ~10-token titles; users star papers of a few topics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VOCABULARY = 30_000
TOPICS = 200


def _words(rng: np.random.Generator) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words, seen = [], set()
    while len(words) < VOCABULARY:
        word = "".join(rng.choice(letters, size=int(rng.integers(4, 11))))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


@dataclass
class Corpus:
    ids: list[str]
    titles: list[str]
    abstracts: list[str]
    topics: np.ndarray  # topic of each paper


def corpus(n: int, seed: int = 7) -> Corpus:
    rng = np.random.default_rng(seed)
    words = np.array(_words(rng))
    base = 1.0 / np.arange(1, VOCABULARY + 1) ** 1.07  # Zipf
    base /= base.sum()
    topic_words = [rng.choice(VOCABULARY, size=300, replace=False) for _ in range(TOPICS)]
    topics = rng.integers(0, TOPICS, size=n)
    titles, abstracts = [], []
    for t in topics:
        length = int(rng.normal(150, 30))
        general = rng.choice(VOCABULARY, size=max(20, int(length * 0.7)), p=base)
        specific = rng.choice(topic_words[t], size=max(5, int(length * 0.3)))
        tokens = np.concatenate([general, specific])
        rng.shuffle(tokens)
        abstracts.append(" ".join(words[tokens]))
        titles.append(" ".join(words[rng.choice(topic_words[t], size=int(rng.integers(6, 13)))]).capitalize())
    return Corpus([f"s{i}" for i in range(n)], titles, abstracts, topics)


def write_jsonl(data: Corpus, path: Path, indices: range | list[int]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for i in indices:
            out.write(json.dumps({"id": data.ids[i], "title": data.titles[i], "abstract": data.abstracts[i]}) + "\n")


def user_libraries(data: Corpus, users: int, old: np.ndarray, seed: int = 11) -> list[list[int]]:
    """Each user stars 10-40 old papers from two or three topics."""
    rng = np.random.default_rng(seed)
    by_topic: dict[int, np.ndarray] = {t: old[data.topics[old] == t] for t in range(TOPICS)}
    libraries = []
    for _ in range(users):
        chosen = rng.choice(TOPICS, size=int(rng.integers(2, 4)), replace=False)
        pool = np.concatenate([by_topic[t] for t in chosen])
        size = min(len(pool), int(rng.integers(10, 41)))
        libraries.append(sorted(rng.choice(pool, size=size, replace=False).tolist()))
    return libraries
