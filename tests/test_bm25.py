"""rag.bm25 against a brute-force BM25, and incremental updates against a fresh build."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from rag.bm25 import B, K1, BM25Index

WORDS = [f"w{i}" for i in range(40)]


def brute_force(docs: list[list[str]], query: list[str], k1: float = K1, b: float = B) -> list[float]:
    n = len(docs)
    avgdl = sum(len(d) for d in docs) / n
    out = []
    for d in docs:
        s = 0.0
        for t in query:
            df = sum(1 for x in docs if t in x)
            if df == 0:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            tf = d.count(t)
            s += idf * tf / (tf + k1 * (1 - b + b * len(d) / avgdl))
        out.append(s)
    return out


def random_docs(rng: random.Random, n: int) -> list[list[str]]:
    return [[rng.choice(WORDS) for _ in range(rng.randint(0, 12))] for _ in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_scores_match_brute_force(seed):
    rng = random.Random(seed)
    docs = random_docs(rng, 30)
    index = BM25Index.build(docs)
    for _ in range(10):
        query = [rng.choice(WORDS + ["unknown"]) for _ in range(rng.randint(1, 4))]
        assert np.allclose(index.scores(query), brute_force(docs, query), atol=1e-5)


def test_top_is_ordered_positive_and_ties_break_by_row():
    index = BM25Index.build([["a"], ["b"], ["a"], ["a", "a", "b"], []])
    rows, scores = index.top(["a"], 10)
    assert list(scores) == sorted(scores, reverse=True) and all(s > 0 for s in scores)
    assert set(rows.tolist()) == {0, 2, 3}
    tied = [r for r, s in zip(rows.tolist(), scores.tolist()) if s == scores[-1]]
    assert tied == sorted(tied)
    assert index.top(["nothing"], 10)[0].size == 0
    assert index.top(["a"], 1)[0].size == 1


@pytest.mark.parametrize("seed", range(5))
def test_update_equals_fresh_build(seed):
    """Keep some old rows (reordered), drop others, add new text: same scores as building anew."""
    rng = random.Random(seed)
    old_docs = random_docs(rng, 25)
    old = BM25Index.build(old_docs)
    kept = rng.sample(range(25), 15)
    plan: list[int | list[str]] = [*kept, *random_docs(rng, 6)]
    rng.shuffle(plan)
    docs = [old_docs[r] if isinstance(r, int) else r for r in plan]
    updated = BM25Index.update(old, plan)
    fresh = BM25Index.build(docs)
    assert sorted(updated.terms) == sorted(fresh.terms)  # terms of dropped rows are gone
    assert updated.doc_freq() == fresh.doc_freq()
    for _ in range(10):
        query = [rng.choice(WORDS) for _ in range(3)]
        assert np.allclose(updated.scores(query), fresh.scores(query), atol=1e-6)


def test_empty_index_and_all_new_rows():
    empty = BM25Index.build([])
    assert empty.size == 0 and empty.top(["a"], 5)[0].size == 0
    grown = BM25Index.update(empty, [["a", "b"], ["b"]])
    assert grown.size == 2 and grown.doc_freq() == {"a": 1, "b": 2}
    assert BM25Index.update(grown, []).size == 0


def test_save_and_load_round_trip(tmp_path):
    index = BM25Index.build([["alpha", "beta"], ["beta", "gamma", "gamma"], ["ünïcode"]])
    files = index.save(tmp_path)
    assert sorted(files) == sorted(p.name for p in tmp_path.iterdir())
    loaded = BM25Index.load(tmp_path)
    assert loaded.terms == index.terms
    for q in (["beta"], ["gamma", "alpha"], ["ünïcode"]):
        assert np.array_equal(loaded.scores(q), index.scores(q))


def test_load_refuses_terms_that_do_not_fit_the_counts(tmp_path):
    BM25Index.build([["a", "b"]]).save(tmp_path)
    (tmp_path / "bm25_terms.json").write_text('["a"]')
    with pytest.raises(ValueError, match="columns"):
        BM25Index.load(tmp_path)
