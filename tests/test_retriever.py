"""Fusion and retrieval, checked against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from rag.retriever import rrf


def brute_rrf(rankings, weights, k):
    scores = {}
    for ranking, w in zip(rankings, weights):
        for rank, doc in enumerate(ranking, 1):
            scores[doc] = scores.get(doc, 0.0) + w / (k + rank)
    return scores


@pytest.mark.parametrize("seed", range(20))
def test_rrf_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    rankings = [rng.permutation(50)[: rng.integers(0, 30)] for _ in range(rng.integers(1, 4))]
    weights = rng.uniform(0.1, 2.0, len(rankings)).tolist()
    k = float(rng.uniform(1, 100))
    ids, scores = rrf(rankings, weights, k)
    expected = brute_rrf(rankings, weights, k)
    assert set(ids.tolist()) == set(expected)
    assert np.allclose(scores, [expected[i] for i in ids.tolist()])
    assert np.all(np.diff(scores) <= 1e-12)  # best first


def test_rrf_empty_and_ties():
    ids, scores = rrf([np.array([], dtype=int), np.array([], dtype=int)])
    assert ids.size == scores.size == 0
    ids, _ = rrf([np.array([7, 8]), np.array([8, 7])], k=60)
    assert ids.tolist() == [7, 8]  # equal scores keep first appearance


def test_dense_mode_is_exact_cosine_top_k(service):
    snap = service.snapshot
    q = "nucleus sampling probability mass"
    hits = service.search(q, k=5, mode="dense")
    qv = service.embedder.embed([q])[0]
    cos = snap.vectors @ qv
    brute = np.sort(cos)[::-1][:5]
    assert np.allclose([h.score for h in hits], brute, atol=1e-5)  # ties may come in any order
    assert np.allclose([h.dense for h in hits], brute, atol=1e-5)
    assert hits[0].chunk.id == snap.chunks[int(np.argmax(cos))].id
    assert all(h.sources == ("dense",) for h in hits)


def test_bm25_mode_finds_exact_terms_and_ignores_unknown_words(service):
    hits = service.search("PPO reward model", k=3, mode="bm25")
    assert hits[0].chunk.note == "alignment/rlhf.md" and hits[0].bm25 > 0
    assert service.search("zzzqqq xyzzy", k=3, mode="bm25") == []


def test_hybrid_hits_carry_scores_and_sources(service):
    hits = service.search("Who named foundation models, and when?", k=4)
    assert hits[0].chunk.note == "foundations/crfm.md"
    assert "bm25" in hits[0].sources and "dense" in hits[0].sources
    assert all(-1.0 <= h.dense <= 1.0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
