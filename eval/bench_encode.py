"""Is `rag`'s build as fast as plain sentence-transformers encoding? Side by side, same moment.

    .venv/bin/python eval/bench_encode.py [--docs 1024]

Embeds the first `--docs` SciFact documents three ways on the packaged all-MiniLM-L6-v2:
plain `SentenceTransformer.encode(["title text", ...], batch_size=32)` as BEIR and MTEB
run it; the path `rag eval --beir` takes (texts sorted longest first, `Embedder.embed` on
slices of `EMBED_SLICE`); and the same texts in one `encode` call. Prints passages per
second for each; the three run back to back so that the machine's load hits them alike.
Deliberately absent: writing results (the numbers go in the README and closing notes).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from rag.embedder import load_embedder
from rag.evaluation.beir import EMBED_SLICE, doc_chunks, load_beir
from rag.store import chunk_embed_texts

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--beir", type=Path, default=REPO.parent / "shared" / "benchmarks" / "scifact")
    ap.add_argument("--docs", type=int, default=1024)
    args = ap.parse_args()
    chunks = doc_chunks(load_beir(args.beir, "test").corpus)[: args.docs]
    texts = chunk_embed_texts(chunks)
    plain = [f"{c.title} {c.text}" for c in chunks]
    emb = load_embedder("all-MiniLM-L6-v2")
    model = emb._load()
    emb.embed(["warm up"] * 64)
    print(f"load average before: {os.getloadavg()}")

    def rate(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return len(chunks) / (time.perf_counter() - t0)

    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    runs = {
        "plain encode (title text)": lambda: model.encode(plain, batch_size=32, show_progress_bar=False),
        f"rag's path (sorted, slices of {EMBED_SLICE})": lambda: [
            emb.embed([texts[i] for i in order[s : s + EMBED_SLICE]]) for s in range(0, len(order), EMBED_SLICE)
        ],
        "rag's texts, one encode call": lambda: model.encode(texts, batch_size=32, show_progress_bar=False),
    }
    for name, fn in runs.items():
        print(f"{name:40s} {rate(fn):6.1f} passages/s")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
