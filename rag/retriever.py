"""Hybrid retrieval: dense (FAISS, cosine) and BM25 candidates fused by reciprocal rank.

Reciprocal rank fusion scores a chunk by sum_r w_r / (k + rank_r), ranks 1-based. It needs
no score calibration between a cosine and an unbounded BM25 score, which is why it is the
default. Cormack, Clarke and Buettcher (SIGIR 2009) proposed k = 60; on BEIR SciFact's
train split (809 queries, eval/results/scifact_tuning.json; the test split was never used
for tuning) a much smaller k did better: with 60 candidates and BM25 weighted 1.1, k = 3
scored nDCG@10 0.730 against 0.714 at k = 60, and every k from 1 to 7 lay within 0.003
of the best. With equal weights, many chunks tie exactly (rank r in one list only) and
fall to the dense list, which cost 0.011 there; weighting BM25 1.1 settles those ties for
the lexical list (ranked first on SciFact). Hence the defaults k = 3, weights 1.0 / 1.1.
Each retriever contributes `candidates` (default 60) so that a chunk ranked low by one
retriever but high by the other still enters the fusion.

Every hit carries its dense cosine (computed even when only BM25 found it: the answerer
uses it as evidence), its BM25 score when BM25 found it, and which retrievers found it.
Deliberately absent: a cross-encoder reranker (no weights ship offline).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .chunker import Chunk
from .embedder import Embedder
from .store import Snapshot
from .text import terms

__all__ = ["Hit", "Retriever", "rrf", "Mode"]

Mode = Literal["hybrid", "dense", "bm25"]


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float  # the fused score the list is sorted by
    dense: float  # cosine between query and chunk
    bm25: float | None  # BM25 score, None when BM25 did not return it
    sources: tuple[str, ...]  # which retrievers returned it: "dense", "bm25"


def rrf(
    rankings: Sequence[np.ndarray], weights: Sequence[float] | None = None, k: float = 60.0
) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal rank fusion of ranked id lists, best first.

    >>> ids, scores = rrf([np.array([3, 1]), np.array([1, 2])], k=1.0)
    >>> ids.tolist(), [round(s, 3) for s in scores]
    ([1, 3, 2], [1.0, 0.5, 0.5])

    Ties keep the order of first appearance across the rankings (stable sort).
    """
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if not rankings or all(len(r) == 0 for r in rankings):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    ids = np.concatenate([np.asarray(r, dtype=np.int64) for r in rankings])
    contrib = np.concatenate(
        [w / (k + np.arange(1, len(r) + 1, dtype=np.float64)) for r, w in zip(rankings, weights)]
    )
    uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    totals = np.bincount(inverse, weights=contrib)
    order = np.lexsort((first, -totals))  # by score desc, then first appearance
    return uniq[order], totals[order]


class Retriever:
    """Searches one snapshot. Cheap to create; holds no state beyond its arguments."""

    def __init__(
        self,
        snapshot: Snapshot,
        embedder: Embedder,
        candidates: int = 60,
        rrf_k: float = 3.0,
        weights: tuple[float, float] = (1.0, 1.1),  # (dense, bm25); see the module docstring
    ):
        self.snapshot = snapshot
        self.embedder = embedder
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.weights = weights

    def search(self, query: str, k: int = 5, mode: Mode = "hybrid") -> list[Hit]:
        snap = self.snapshot
        n = len(snap.chunks)
        if n == 0 or not query.strip():
            return []
        qvec = self.embedder.embed([query])[0]
        c = min(self.candidates, n) if mode == "hybrid" else min(max(k, self.candidates), n)
        dense_rows = np.zeros(0, dtype=np.int64)
        if mode in ("hybrid", "dense"):
            _, rows = snap.dense.search(qvec[None, :].astype(np.float32), c)
            dense_rows = rows[0][rows[0] >= 0]
        bm25_rows, bm25_scores = (
            self.bm25_rank(query, c) if mode in ("hybrid", "bm25") else (np.zeros(0, np.int64), np.zeros(0))
        )
        if mode == "dense":
            ids, fused = dense_rows, snap.vectors[dense_rows] @ qvec
        elif mode == "bm25":
            ids, fused = bm25_rows, bm25_scores
        else:
            ids, fused = rrf([dense_rows, bm25_rows], self.weights, self.rrf_k)
        bm25_of = dict(zip(bm25_rows.tolist(), bm25_scores.tolist()))
        in_dense = set(dense_rows.tolist())
        hits = []
        for row, score in zip(ids[:k].tolist(), np.asarray(fused)[:k].tolist()):
            sources = tuple(s for s, found in (("dense", row in in_dense), ("bm25", row in bm25_of)) if found)
            hits.append(
                Hit(
                    chunk=snap.chunks[row],
                    score=float(score),
                    dense=float(snap.vectors[row] @ qvec),
                    bm25=bm25_of.get(row),
                    sources=sources,
                )
            )
        return hits

    def bm25_rank(self, query: str, c: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and BM25 scores of the top `c` chunks with a positive score."""
        return self.snapshot.bm25.top(terms(query), c)
