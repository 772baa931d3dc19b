"""Ranking metrics as pure functions, with the definitions trec_eval (and so BEIR) uses.

A run maps each query id to `{doc id: score}`; qrels map each query id to `{doc id: grade}`.
A run is ranked the way trec_eval ranks it: by score, highest first, ties broken by doc id
in descending string order. A document is relevant when its grade is at least 1.

    ndcg@k    sum of grade / log2(rank + 1) over the top k, over the same sum for the ideal
              ordering of the judged grades (linear gain, as trec_eval's ndcg_cut)
    recall@k  relevant documents in the top k / relevant documents judged
    mrr@k     1 / rank of the first relevant document in the top k, else 0
    hit@k     1 if any relevant document is in the top k, else 0

`per_query` functions return `{qid: value}` for every query that has a relevant document;
a query missing from the run scores 0 there (trec_eval's `-c`). `evaluate` averages them.
tests/test_metrics.py checks all four against pytrec_eval. Deliberately absent: graded
gain variants (2^grade - 1), MAP and judged-only metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

__all__ = ["ranked", "ndcg_at_k", "recall_at_k", "mrr_at_k", "hit_at_k", "evaluate", "METRICS"]

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]


def ranked(scores: Mapping[str, float]) -> list[str]:
    """Doc ids in trec_eval order.

    >>> ranked({"a": 1.0, "b": 2.0, "c": 1.0})
    ['b', 'c', 'a']
    """
    # trec_eval sorts by score desc, then by docno desc (strcmp order on the bytes)
    by_id = sorted(scores, key=lambda d: d.encode(), reverse=True)
    return sorted(by_id, key=lambda d: -scores[d])


def _judged(qrels: Qrels) -> Iterable[tuple[str, dict[str, int]]]:
    for qid, grades in qrels.items():
        rel = {d: g for d, g in grades.items() if g >= 1}
        if rel:
            yield qid, rel


def ndcg_at_k(run: Run, qrels: Qrels, k: int) -> dict[str, float]:
    out = {}
    for qid, rel in _judged(qrels):
        top = ranked(run.get(qid, {}))[:k]
        dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(top))
        ideal = sorted(rel.values(), reverse=True)[:k]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        out[qid] = dcg / idcg
    return out


def recall_at_k(run: Run, qrels: Qrels, k: int) -> dict[str, float]:
    out = {}
    for qid, rel in _judged(qrels):
        top = ranked(run.get(qid, {}))[:k]
        out[qid] = sum(1 for d in top if d in rel) / len(rel)
    return out


def mrr_at_k(run: Run, qrels: Qrels, k: int) -> dict[str, float]:
    out = {}
    for qid, rel in _judged(qrels):
        top = ranked(run.get(qid, {}))[:k]
        out[qid] = next((1.0 / (i + 1) for i, d in enumerate(top) if d in rel), 0.0)
    return out


def hit_at_k(run: Run, qrels: Qrels, k: int) -> dict[str, float]:
    out = {}
    for qid, rel in _judged(qrels):
        top = ranked(run.get(qid, {}))[:k]
        out[qid] = 1.0 if any(d in rel for d in top) else 0.0
    return out


METRICS: dict[str, Callable[[Run, Qrels, int], dict[str, float]]] = {
    "ndcg": ndcg_at_k,
    "recall": recall_at_k,
    "mrr": mrr_at_k,
    "hit": hit_at_k,
}


def evaluate(run: Run, qrels: Qrels, names: Iterable[str] = ("ndcg@10", "recall@10", "recall@100")) -> dict[str, float]:
    """Mean of each named metric ("ndcg@10", "recall@100", "mrr@10", "hit@5") over the judged queries.

    >>> evaluate({"q": {"d1": 0.9, "d2": 0.5}}, {"q": {"d2": 1}}, ["mrr@10", "hit@1"])
    {'mrr@10': 0.5, 'hit@1': 0.0}
    """
    out = {}
    for name in names:
        metric, _, cut = name.partition("@")
        if metric not in METRICS or not cut.isdigit() or int(cut) < 1:
            raise ValueError(f"unknown metric {name!r}: use one of {sorted(METRICS)} followed by @k, e.g. ndcg@10")
        values = METRICS[metric](run, qrels, int(cut))
        out[name] = sum(values.values()) / len(values) if values else 0.0
    return out
