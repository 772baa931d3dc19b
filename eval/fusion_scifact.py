"""Convex-combination score fusion against the shipped RRF, on BEIR SciFact's TRAIN split only.

    .venv/bin/python eval/fusion_scifact.py [--beir ../shared/benchmarks/scifact]

Reads `qrels/train.tsv` through `load_beir(path, "train")` and nothing of the test split.
Builds the product's pieces (packaged all-MiniLM-L6-v2, cached corpus vectors, FAISS,
`rag.bm25` over `rag.text.terms`), then:

1. sanity check: the shipped RRF (k 3, 60 candidates, weights 1.0 / 1.1) must give
   nDCG@10 0.730 +- 0.002, as in eval/results/scifact_tuning.json; the script stops if not;
2. convex fusion alpha * norm(cosine) + (1 - alpha) * norm(BM25) over the union of each
   retriever's top C (60, 100, 200), with every candidate's cosine and BM25 score (0 when
   no query term matches), for four normalisations: min-max and z-score over the
   candidates, "theoretical" (cosine (s + 1) / 2, BM25 s / max) and "theoretical_dmin"
   (cosine (s - min) / (1 - min), BM25 s / max), alpha 0 to 1 by 0.05;
3. 5-fold cross-validation (sorted numeric query id, fold = position mod 5): each method
   picks its grid point on four folds and is scored on the fifth; RRF over k, BM25 weight
   and candidates. Held-out per-query nDCG@10 of the two are compared pairwise (bootstrap);
4. p50 / p95 of the fusion step alone (numpy, from candidate lists to the top 100).

Metrics are nDCG@10 and Recall@100 of the top 100, ranked as trec_eval ranks a run.
Writes eval/results/scifact_fusion.json; takes a few minutes on one core.
Deliberately absent: any look at test queries or qrels, learned fusion, rerankers, other
BM25 settings or tokenisers (tune_scifact.py covers those), and any change to the product.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from rag.embedder import load_embedder
from rag.evaluation.beir import build_snapshot, doc_chunks, embed_chunks, load_beir
from rag.evaluation.metrics import ndcg_at_k, recall_at_k
from rag.retriever import rrf
from rag.text import terms
from tune_scifact import write_report  # same JSON layout as the tuning report

REPO = Path(__file__).resolve().parent.parent
DEPTH, FOLDS = 100, 5
ALPHAS = tuple(round(0.05 * i, 2) for i in range(21))
CONVEX_C = (60, 100, 200)
RRF_K, RRF_W, RRF_C = (1, 2, 3, 5, 10, 20, 60), (1.0, 1.1, 1.2, 1.5), (60, 100)
SHIPPED = {"candidates": 60, "rrf_k": 3, "bm25_weight": 1.1}


def _minmax(x):
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def _zscore(x):
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def _by_max(x):
    return x / x.max() if x.max() > 0 else np.zeros_like(x)


def _dmin(x):
    return (x - x.min()) / (1.0 - x.min()) if x.min() < 1.0 else np.zeros_like(x)


NORMS = {  # name -> (dense cosine, BM25) normalisers over one query's candidate union
    "minmax": (_minmax, _minmax),
    "zscore": (_zscore, _zscore),
    "theoretical": (lambda x: (x + 1.0) / 2.0, _by_max),
    "theoretical_dmin": (_dmin, _by_max),
}


def convex(drows, brows, qvec, bfull, vectors, c, norm, alpha):
    """The fusion step as it would run per query: candidate union -> top DEPTH rows, scores."""
    cand = np.union1d(drows[:c], brows[:c])
    fd, fb = NORMS[norm]
    s = alpha * fd(vectors[cand] @ qvec) + (1.0 - alpha) * fb(bfull[cand])
    top = np.argsort(-s, kind="stable")[:DEPTH]
    return cand[top], s[top]


def per_query(fused: list[tuple[np.ndarray, np.ndarray]], qids, ids, qrels) -> dict[str, np.ndarray]:
    """Per-query nDCG@10 and Recall@100 (the product's metric code) in `qids` order."""
    run = {q: {ids[r]: float(s) for r, s in zip(rows[:DEPTH], sc[:DEPTH])} for q, (rows, sc) in zip(qids, fused)}
    n, r = ndcg_at_k(run, qrels, 10), recall_at_k(run, qrels, DEPTH)
    return {"ndcg@10": np.array([n[q] for q in qids]), "recall@100": np.array([r[q] for q in qids])}


def means(m: dict[str, np.ndarray], mask=None) -> dict[str, float]:
    return {k: float(v.mean() if mask is None else v[mask].mean()) for k, v in m.items()}


def cross_validate(points: list[dict], folds: np.ndarray) -> dict:
    """Pick the best training-fold point (mean nDCG@10; first in grid order on a tie) per fold."""
    rows, held = [], np.zeros(len(folds))
    for f in range(FOLDS):
        train, test = folds != f, folds == f
        best = max(points, key=lambda p: p["m"]["ndcg@10"][train].mean())
        held[test] = best["m"]["ndcg@10"][test]
        params = {k: v for k, v in best.items() if k != "m"}
        rows.append({"fold": f, **params, "train_ndcg@10": float(best["m"]["ndcg@10"][train].mean()),
                     **{f"heldout_{k}": v for k, v in means(best["m"], test).items()}})
    fold_scores = [r["heldout_ndcg@10"] for r in rows]
    return {"folds": rows, "mean_heldout_ndcg@10": float(np.mean(fold_scores)), "per_query": held}


def latency(fn, n: int) -> dict[str, float]:
    for i in range(min(n, 50)):  # warm-up
        fn(i)
    times = []
    for i in range(n):
        t = time.perf_counter_ns()
        fn(i)
        times.append(time.perf_counter_ns() - t)
    return {"p50_us": float(np.percentile(times, 50)) / 1e3, "p95_us": float(np.percentile(times, 95)) / 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--beir", type=Path, default=REPO.parent / "shared" / "benchmarks" / "scifact")
    ap.add_argument("--cache", type=Path, default=REPO / "eval" / ".cache")
    ap.add_argument("--out", type=Path, default=REPO / "eval" / "results" / "scifact_fusion.json")
    args = ap.parse_args()
    t0 = time.perf_counter()

    data = load_beir(args.beir, "train")  # the train split only, by construction
    assert data.split == "train"
    embedder = load_embedder("all-MiniLM-L6-v2")
    chunks = doc_chunks(data.corpus)
    ids = [c.note for c in chunks]
    vectors, embedded = embed_chunks(chunks, embedder, args.cache, True, None)
    snap = build_snapshot(chunks, vectors, embedder)
    qids = list(data.queries)
    qvecs = np.asarray(embedder.embed([data.queries[q] for q in qids]), dtype=np.float32)
    print(f"{len(chunks)} documents ({embedded} embedded now), {len(qids)} train queries")

    cmax = max(CONVEX_C + RRF_C + (DEPTH,))
    _, rows = snap.dense.search(qvecs, cmax)
    dense = [r[r >= 0].astype(np.int64) for r in rows]
    toks = [terms(data.queries[q]) for q in qids]
    bm25 = [snap.bm25.top(t, cmax)[0] for t in toks]
    bfull = [snap.bm25.scores(t) for t in toks]
    score = lambda fused: per_query(fused, qids, ids, data.qrels)  # noqa: E731

    # 1. Sanity: single retrievers and the shipped RRF.
    report: dict = {"split": "train", "queries": len(qids), "embedder": embedder.name, "documents": len(chunks)}
    report["dense"] = means(score([(d, vectors[d] @ v) for d, v in zip(dense, qvecs)]))
    report["bm25"] = means(score([(b, f[b]) for b, f in zip(bm25, bfull)]))
    shipped = score([rrf([d[:60], b[:60]], (1.0, 1.1), 3.0) for d, b in zip(dense, bm25)])
    report["shipped_rrf"] = {**SHIPPED, **means(shipped)}
    print(f"dense {report['dense']}  bm25 {report['bm25']}  shipped RRF {report['shipped_rrf']}")
    if abs(report["shipped_rrf"]["ndcg@10"] - 0.730) > 0.002:
        raise SystemExit(f"sanity check failed: shipped RRF nDCG@10 {report['shipped_rrf']['ndcg@10']:.4f}, want 0.730")

    # 2. Grids, kept per query for the cross-validation.
    convex_points = []
    for norm, c in itertools.product(NORMS, CONVEX_C):
        fd, fb = NORMS[norm]
        parts = []
        for d, b, v, f in zip(dense, bm25, qvecs, bfull):
            cand = np.union1d(d[:c], b[:c])
            parts.append((cand, fd(vectors[cand] @ v), fb(f[cand])))
        for a in ALPHAS:
            fused = []
            for cand, nd, nb in parts:
                s = a * nd + (1.0 - a) * nb
                top = np.argsort(-s, kind="stable")[:DEPTH]
                fused.append((cand[top], s[top]))
            convex_points.append({"norm": norm, "candidates": c, "alpha": a, "m": score(fused)})
        best = max((p for p in convex_points if p["norm"] == norm and p["candidates"] == c), key=lambda p: p["m"]["ndcg@10"].mean())
        print(f"convex {norm} C={c}: best alpha {best['alpha']} nDCG@10 {best['m']['ndcg@10'].mean():.4f}")
    rrf_points = [
        {"candidates": c, "rrf_k": k, "bm25_weight": w, "m": score([rrf([d[:c], b[:c]], (1.0, w), float(k)) for d, b in zip(dense, bm25)])}
        for c, k, w in itertools.product(RRF_C, RRF_K, RRF_W)
    ]
    # the vectorised grid must equal the per-query fusion function timed below
    p = convex_points[7]
    check = score([convex(d, b, v, f, vectors, p["candidates"], p["norm"], p["alpha"]) for d, b, v, f in zip(dense, bm25, qvecs, bfull)])
    assert np.allclose(check["ndcg@10"], p["m"]["ndcg@10"])

    flat = lambda p: {**{k: v for k, v in p.items() if k != "m"}, **means(p["m"])}  # noqa: E731
    by_ndcg = lambda ps: sorted(ps, key=lambda p: -p["m"]["ndcg@10"].mean())  # noqa: E731
    report["convex_best_per_norm"] = [flat(by_ndcg([p for p in convex_points if p["norm"] == n])[0]) for n in NORMS]
    report["convex_best_per_norm_and_c"] = [
        flat(by_ndcg([p for p in convex_points if (p["norm"], p["candidates"]) == nc])[0]) for nc in itertools.product(NORMS, CONVEX_C)
    ]
    top = by_ndcg(convex_points)[0]
    report["convex_best"] = flat(top)
    report["convex_curve_at_best"] = [
        {"alpha": p["alpha"], **means(p["m"])} for p in convex_points if (p["norm"], p["candidates"]) == (top["norm"], top["candidates"])
    ]
    report["rrf_grid_top10"] = [flat(p) for p in by_ndcg(rrf_points)[:10]]

    # 3. Cross-validation: the same protocol for both methods.
    order = sorted(range(len(qids)), key=lambda i: (int(qids[i]) if qids[i].isdigit() else 0, qids[i]))
    folds = np.empty(len(qids), dtype=int)
    folds[order] = np.arange(len(qids)) % FOLDS
    cv_convex, cv_rrf = cross_validate(convex_points, folds), cross_validate(rrf_points, folds)
    diff = cv_convex.pop("per_query") - cv_rrf.pop("per_query")
    boot = np.random.default_rng(0).choice(diff, size=(10000, len(diff))).mean(axis=1)
    for name, cv in (("cv_convex", cv_convex), ("cv_rrf", cv_rrf)):
        report[name + "_folds"] = cv.pop("folds")
        report[name] = cv
    report["cv_shipped_rrf_fixed"] = [float(shipped["ndcg@10"][folds == f].mean()) for f in range(FOLDS)]
    report["cv_paired"] = {
        "mean_diff_convex_minus_rrf": float(diff.mean()),
        "bootstrap95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
        "queries_convex_better": int((diff > 0).sum()), "worse": int((diff < 0).sum()), "equal": int((diff == 0).sum()),
    }

    # 4. Latency of the fusion step alone, at the best convex point and the shipped RRF.
    c, n, a = top["candidates"], top["norm"], top["alpha"]
    report["latency_convex_best"] = latency(lambda i: convex(dense[i], bm25[i], qvecs[i], bfull[i], vectors, c, n, a), len(qids))
    report["latency_shipped_rrf"] = latency(lambda i: rrf([dense[i][:60], bm25[i][:60]], (1.0, 1.1), 3.0), len(qids))
    report["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_report(args.out, report)
    for key in ("convex_best", "cv_convex", "cv_convex_folds", "cv_rrf", "cv_rrf_folds", "cv_shipped_rrf_fixed", "cv_paired", "latency_convex_best", "latency_shipped_rrf"):
        print(key, report[key])
    print(f"wrote {args.out} in {report['seconds']} s")


if __name__ == "__main__":
    main()
