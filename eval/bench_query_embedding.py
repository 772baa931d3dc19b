"""How fast one query is embedded, several ways, on the packaged all-MiniLM-L6-v2.

    .venv/bin/python eval/bench_query_embedding.py [--queries 200]

Compares sentence-transformers' `encode([q])` with the direct module call that
`SentenceTransformerEmbedder.embed` uses for a single text, each with torch's default
intra-op threads and with one thread, interleaved query by query so that a background
load hits all alike, and the numpy engine (`rag.minilm`, one and two BLAS threads) that
the shipped `embed([q])` uses. Checks that every variant gives encode's vector (max abs diff)
and records the load average, since on 2 cores it decides which variant wins. Queries are
SciFact claims when the offline copy is present, else a few built-in questions.
Writes eval/results/query_embedding.json. Deliberately absent: other runtimes (ONNX,
quantised models), which would change the vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
FALLBACK = ["What is DPO?", "How does nucleus sampling choose tokens?", "Which lab coined the term foundation model?"]


def main() -> None:
    import torch

    from rag.embedder import load_embedder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--beir", type=Path, default=REPO.parent / "shared" / "benchmarks" / "scifact")
    ap.add_argument("--out", type=Path, default=REPO / "eval" / "results" / "query_embedding.json")
    args = ap.parse_args()

    file = args.beir / "queries.jsonl"
    texts = [json.loads(line)["text"] for line in file.open()] if file.is_file() else FALLBACK
    texts = (texts * (args.queries // len(texts) + 1))[: args.queries]
    emb = load_embedder("all-MiniLM-L6-v2")
    model = emb._load()
    default_threads = torch.get_num_threads()

    def encode(q):
        return model.encode([q], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)

    def direct(q):
        with torch.inference_mode():
            out = model(model.preprocess([q]))["sentence_embedding"]
            return torch.nn.functional.normalize(out, p=2, dim=1).numpy()

    def threads(n, fn):
        def run(q):
            torch.set_num_threads(n)
            try:
                return fn(q)
            finally:
                torch.set_num_threads(default_threads)

        return run

    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController()

    def numpy_engine(n):
        def run(q):
            with blas.limit(limits=n, user_api="blas"):
                return emb.embed([q], engine="numpy") if n == 1 else emb._load_numpy().embed([q])

        return run

    variants = {
        f"encode, {default_threads} threads": encode,
        "encode, 1 thread": threads(1, encode),
        f"direct, {default_threads} threads": direct,
        "direct, 1 thread": threads(1, direct),
        "numpy engine, 2 BLAS threads": numpy_engine(2),
        "numpy engine, 1 BLAS thread": numpy_engine(1),
        "shipped: embedder.embed([q])": lambda q: emb.embed([q]),
    }
    reference = np.vstack([encode(q) for q in texts[:50]])
    diff = {}
    for name, fn in variants.items():  # warm-up and the same-vector check
        got = np.vstack([fn(q) for q in texts[:50]])
        diff[name] = float(np.abs(got - reference).max())
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for q in texts:
        for name, fn in variants.items():
            t = time.perf_counter()
            fn(q)
            times[name].append((time.perf_counter() - t) * 1000)
    report = {
        "queries": len(texts),
        "cpus": os.cpu_count(),
        "torch_threads_default": default_threads,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "variants": {
            name: {
                "p50_ms": round(float(np.percentile(t, 50)), 2),
                "p95_ms": round(float(np.percentile(t, 95)), 2),
                "max_abs_diff_vs_encode": diff[name],
            }
            for name, t in times.items()
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"load average {report['loadavg_before']} -> {report['loadavg_after']}")
    for name, v in report["variants"].items():
        print(f"{name:32s} p50 {v['p50_ms']:7.2f} ms  p95 {v['p95_ms']:7.2f} ms  max |diff| {v['max_abs_diff_vs_encode']:.1e}")


if __name__ == "__main__":
    main()
