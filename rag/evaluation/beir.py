"""Run a BEIR-format benchmark (SciFact) through the product's own retriever.

A BEIR folder holds `corpus.jsonl` (`{"_id", "title", "text"}`), `queries.jsonl` (and
optionally `queries_all.jsonl`, which SciFact's offline copy uses for the train queries)
and `qrels/<split>.tsv` (`query-id, corpus-id, score`, with a header). Each document becomes
one `Chunk` (note = doc id, its title, its text, no heading) in an in-memory `Snapshot`, so
the numbers come from the pieces that ship: the configured embedder, the `EmbeddingCache`
(vectors by sha256 of the embedded text, under `eval/.cache/`), a FAISS `IndexFlatIP`, `rag.bm25`
over `rag.text.terms`, and `Retriever.search` with its reciprocal rank fusion. The embedded
text is `title + blank line + text`, which the word-piece tokenizer reads exactly as BEIR's
`title + " " + text`.

Each mode (dense, bm25, hybrid) ranks the top 100 documents of every judged query; metrics
are nDCG@10, Recall@10, Recall@100 and MRR@10 (`rag.evaluation.metrics`, checked against
pytrec_eval), latency is p50/p95 of `Retriever.search` per query after one warm-up, and
the ranking can be written as a TREC run file. Deliberately absent: splitting documents
longer than the model's window (they are truncated, as in BEIR and MTEB), rerankers, and
any download: the folder must already be on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..bm25 import BM25Index
from ..chunker import Chunk, embed_text
from ..embedder import Embedder, load_embedder
from ..errors import ConfigError
from ..settings import Settings
from ..store import EmbeddingCache, Manifest, Snapshot, chunk_embed_texts
from ..text import terms
from .metrics import evaluate

__all__ = [
    "BeirData",
    "load_beir",
    "doc_chunks",
    "embed_chunks",
    "build_snapshot",
    "write_run",
    "run_beir",
    "MODES",
    "PUBLISHED",
]

MODES = ("dense", "bm25", "hybrid")
DEPTH = 100  # documents ranked per query: enough for Recall@100 and a standard run file
EMBED_SLICE = 256  # texts per embed call: big enough to batch well, small enough for a live bar
METRIC_NAMES = ("ndcg@10", "recall@10", "recall@100", "mrr@10")

# Published test-split nDCG@10, and systems measured on this machine with the same packaged
# all-MiniLM-L6-v2 (issue 4); shown next to our numbers in the report.
PUBLISHED = {
    "scifact": [
        ("BM25, Anserini flat (title+text)", 0.6789, "castorini/anserini BEIR regressions"),
        ("BM25, BEIR paper (Elasticsearch)", 0.665, "Thakur et al. 2021, Table 2"),
        ("all-MiniLM-L6-v2 dense", 0.645, "MTEB leaderboard"),
        ("bge-small-en-v1.5 dense", 0.7127, "embeddings-benchmark/results"),
        ("sentence-transformers dense, this machine", 0.645, "issue 4: build 329 s, 15.8 passages/s"),
        ("txtai hybrid, this machine", 0.652, "issue 4: build 592 s, 44 ms/query p50"),
        ("LlamaIndex hybrid (bm25s + dense, RRF), this machine", 0.717, "issue 4: build 346 s, 185 ms/query p50"),
    ]
}


@dataclass
class BeirData:
    name: str  # the folder's name, e.g. "scifact"
    split: str
    corpus: dict[str, tuple[str, str]]  # doc id -> (title, text), in file order
    queries: dict[str, str]  # query id -> text, only the queries judged in this split
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: grade}


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict) or "_id" not in row:
                    raise ValueError('each line must be a JSON object with an "_id"')
            except ValueError as exc:
                raise ConfigError(f"{path}:{lineno} is not a BEIR record ({exc})") from exc
            rows.append(row)
    return rows


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\n").split("\t")
            if not line.strip() or (lineno == 1 and parts[0] == "query-id"):
                continue
            try:
                qid, did, grade = parts
                qrels.setdefault(qid, {})[did] = int(grade)
            except ValueError as exc:
                raise ConfigError(
                    f"{path}:{lineno} is not a qrels line (want query-id<TAB>corpus-id<TAB>score)"
                ) from exc
    return qrels


def load_beir(path: Path, split: str = "test") -> BeirData:
    """Read a BEIR folder; only queries with judgements in `split` are kept."""
    root = Path(path)
    corpus_file, qrels_file = root / "corpus.jsonl", root / "qrels" / f"{split}.tsv"
    query_files = [p for p in (root / "queries.jsonl", root / "queries_all.jsonl") if p.is_file()]
    if not root.is_dir():
        raise ConfigError(f"benchmark folder {root} does not exist")
    missing = [str(p) for p in (corpus_file, qrels_file) if not p.is_file()] + (
        [] if query_files else [str(root / "queries.jsonl")]
    )
    if missing:
        splits = sorted(p.stem for p in (root / "qrels").glob("*.tsv"))
        raise ConfigError(
            f"{root} is not a BEIR folder with a {split!r} split: missing {', '.join(missing)}"
            + (f" (splits present: {', '.join(splits)})" if splits else "")
        )
    corpus = {str(r["_id"]): (str(r.get("title") or ""), str(r.get("text") or "")) for r in _read_jsonl(corpus_file)}
    texts: dict[str, str] = {}
    for file in query_files:
        for r in _read_jsonl(file):
            texts.setdefault(str(r["_id"]), str(r.get("text") or ""))
    qrels = _read_qrels(qrels_file)
    unknown = sorted(q for q in qrels if q not in texts)
    if unknown:
        raise ConfigError(f"{qrels_file} judges queries with no text in {root}: {', '.join(unknown[:5])}")
    queries = {qid: texts[qid] for qid in qrels}
    return BeirData(root.name, split, corpus, queries, qrels)


def doc_chunks(corpus: dict[str, tuple[str, str]]) -> list[Chunk]:
    """One chunk per document, hashed like the chunker hashes a note's chunk."""
    out = []
    for did, (title, text) in corpus.items():
        digest = hashlib.sha256(embed_text(title, "", text).encode()).hexdigest()
        out.append(Chunk(did, did, title, "", 1, text.count("\n") + 1, text, digest))
    return out


ProgressFn = Callable[[int, int], None]  # (texts embedded, texts to embed)


def embed_chunks(
    chunks: Sequence[Chunk],
    embedder: Embedder,
    cache_dir: Path,
    use_cache: bool = True,
    progress: ProgressFn | None = None,
) -> tuple[np.ndarray, int]:
    """Vectors of `chunks` (cached ones read back) and how many went through the model."""
    cache = EmbeddingCache(Path(cache_dir), embedder.name, embedder.dim)
    try:
        found = cache.get_many([c.hash for c in chunks]) if use_cache else {}
        todo = list({c.hash: c for c in chunks if c.hash not in found}.values())
        # Longest first across the whole corpus, as sentence-transformers does within one
        # call: each slice then pads to similar lengths, and the bar moves every slice.
        texts = chunk_embed_texts(todo)
        order = sorted(range(len(todo)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), EMBED_SLICE):
            part = order[start : start + EMBED_SLICE]
            vecs = embedder.embed([texts[i] for i in part])
            fresh = {todo[i].hash: v for i, v in zip(part, vecs)}
            cache.put_many(fresh)  # kept as we go: an interrupted run resumes where it stopped
            found.update(fresh)
            if progress:
                progress(min(start + EMBED_SLICE, len(order)), len(order))
    finally:
        cache.close()
    matrix = np.zeros((len(chunks), embedder.dim), dtype=np.float32)
    for row, c in enumerate(chunks):
        matrix[row] = found[c.hash]
    return matrix, len(todo)


def build_snapshot(
    chunks: list[Chunk],
    vectors: np.ndarray,
    embedder: Embedder,
    tokens: list[list[str]] | None = None,
    k1: float | None = None,
    b: float | None = None,
) -> Snapshot:
    """An in-memory snapshot with the same FAISS and BM25 indexes `IndexStore.write` saves."""
    import faiss

    from .. import store

    tokens = [terms(t) for t in chunk_embed_texts(chunks)] if tokens is None else tokens
    dense = faiss.IndexFlatIP(embedder.dim)
    dense.add(np.ascontiguousarray(vectors, dtype=np.float32))
    bm25 = BM25Index.build(tokens, k1=store.BM25_K1 if k1 is None else k1, b=store.BM25_B if b is None else b)
    manifest = Manifest(
        snapshot="beir",
        embedder=embedder.name,
        dim=embedder.dim,
        chunker={},
        notes={},
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        chunks=len(chunks),
    )
    return Snapshot(manifest, chunks, vectors, dense, bm25)


def write_run(path: Path, run: dict[str, list[tuple[str, float]]], tag: str) -> None:
    """A TREC run file: `qid Q0 docid rank score tag`, ranks 1-based in our order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for qid, docs in run.items():
            for rank, (did, score) in enumerate(docs, 1):
                f.write(f"{qid} Q0 {did} {rank} {score:.9g} {tag}\n")


def _run_path(run_file: Path, mode: str, modes: Sequence[str]) -> Path:
    if len(modes) == 1:
        return run_file
    return run_file.with_name(f"{run_file.stem}.{mode}{run_file.suffix or '.run'}")


def _bar(console) -> ProgressFn | None:
    """A rich progress callback on `console`; None (no bar) without a console."""
    if console is None:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    state: dict = {"task": None}

    def update(done: int, total: int) -> None:
        if state["task"] is None:
            bar.start()
            state["task"] = bar.add_task("embedding documents", total=total)
        bar.update(state["task"], completed=done)
        if done >= total:
            bar.stop()

    return update


def run_beir(
    settings: Settings,
    path: Path,
    split: str = "test",
    run_file: Path | None = None,
    modes: Sequence[str] = MODES,
    console=None,
    *,
    cache_dir: Path = Path("eval/.cache"),
    results_dir: Path | None = Path("eval/results"),
    use_cache: bool = True,
    embedder: Embedder | None = None,
) -> dict:
    """Index a BEIR folder, rank its `split` queries in each mode, score and time them.

    Args:
        run_file: write the top 100 per query here as a TREC run; with several modes each
            gets its own file, `<stem>.<mode><suffix>`.
        results_dir: where `<name>.json` and `<name>.md` go (`<name>_<split>` for other
            splits than test); None writes nothing.
        use_cache: False re-embeds every document (the cold build time).
        embedder: reuse a loaded embedder (else `settings.embedder` is loaded).

    Returns:
        The results dict also written to `<name>.json`.
    """
    from ..retriever import Retriever

    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ConfigError(f"unknown retrieval mode {', '.join(bad) or '(none)'}: use {', '.join(MODES)}")
    data = load_beir(path, split)
    say = console.print if console is not None else (lambda *a, **k: None)
    say(f"{data.name} {split}: {len(data.corpus):,} documents, {len(data.queries):,} judged queries")

    load = {"build_start": os.getloadavg()[0]}  # other processes' CPU use moves every timing here
    t0 = time.perf_counter()
    embedder = embedder or load_embedder(settings.embedder, settings.embed_batch_size)
    # weights load lazily, per engine (rag.embedder): keep both loads out of the build time
    embedder.embed(["warm-up"])  # the query path
    embedder.embed(["warm-up"] * 64)  # the batch path
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    chunks = doc_chunks(data.corpus)
    t_embed = time.perf_counter()
    vectors, embedded = embed_chunks(chunks, embedder, cache_dir, use_cache, _bar(console))
    t_embed = time.perf_counter() - t_embed
    snapshot = build_snapshot(chunks, vectors, embedder)
    build = {
        "seconds": round(time.perf_counter() - t0, 2),
        "embed_seconds": round(t_embed, 2),
        "embedded": embedded,
        "from_cache": len(chunks) - embedded,
        "passages_per_s": round(embedded / t_embed, 1) if embedded else None,
        "model_load_seconds": round(t_load, 2),
    }
    say(
        f"built in {build['seconds']:.1f} s ({embedded:,} embedded"
        + (f", {build['passages_per_s']} passages/s" if embedded else "")
        + f", {build['from_cache']:,} from cache)"
    )

    retriever = Retriever(
        snapshot, embedder, settings.candidates, settings.rrf_k, (settings.dense_weight, settings.bm25_weight)
    )
    qids = list(data.queries)
    load["queries_start"] = os.getloadavg()[0]
    results: dict = {}
    run_files: dict[str, str] = {}
    for mode in modes:
        retriever.search(data.queries[qids[0]], k=DEPTH, mode=mode)  # warm-up: first-call costs aside
        ranking: dict[str, list[tuple[str, float]]] = {}
        latencies = []
        for qid in qids:
            t = time.perf_counter()
            hits = retriever.search(data.queries[qid], k=DEPTH, mode=mode)
            latencies.append((time.perf_counter() - t) * 1000)
            ranking[qid] = [(h.chunk.note, h.score) for h in hits]
        run = {qid: dict(docs) for qid, docs in ranking.items()}
        scores = evaluate(run, data.qrels, METRIC_NAMES)
        lat = np.asarray(latencies)
        results[mode] = {
            **{k: round(v, 4) for k, v in scores.items()},
            "latency_ms": {
                "p50": round(float(np.percentile(lat, 50)), 2),
                "p95": round(float(np.percentile(lat, 95)), 2),
                "mean": round(float(lat.mean()), 2),
            },
        }
        say(
            f"{mode:>6}: nDCG@10 {scores['ndcg@10']:.4f}  R@10 {scores['recall@10']:.4f}  "
            f"R@100 {scores['recall@100']:.4f}  p50 {results[mode]['latency_ms']['p50']:.1f} ms  "
            f"p95 {results[mode]['latency_ms']['p95']:.1f} ms"
        )
        if run_file is not None:
            target = _run_path(Path(run_file), mode, modes)
            write_run(target, ranking, f"rag-{mode}")
            run_files[mode] = str(target)

    load["end"] = os.getloadavg()[0]
    from .. import store

    report = {
        "benchmark": data.name,
        "split": split,
        "documents": len(data.corpus),
        "queries": len(qids),
        "embedder": embedder.name,
        "settings": {
            "candidates": settings.candidates,
            "rrf_k": settings.rrf_k,
            "dense_weight": settings.dense_weight,
            "bm25_weight": settings.bm25_weight,
            "bm25_k1": store.BM25_K1,
            "bm25_b": store.BM25_B,
            "embed_batch_size": settings.embed_batch_size,
        },
        "build": build,
        "modes": results,
        "run_files": run_files,
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_1min": {k: round(v, 2) for k, v in load.items()},
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if results_dir is not None:
        stem = data.name if split == "test" else f"{data.name}_{split}"
        out = Path(results_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
        (out / f"{stem}.md").write_text(_markdown(report))
        say(f"wrote {out / stem}.json and .md")
    return report


def _markdown(r: dict) -> str:
    s, b, lav = r["settings"], r["build"], r["machine"]["loadavg_1min"]
    lines = [
        f"# {r['benchmark']} ({r['split']} split): retrieval with `rag`'s own retriever",
        "",
        f"{r['documents']:,} documents, {r['queries']:,} judged queries, embedder `{r['embedder']}`, "
        f"{r['machine']['cpus']} CPUs, {r['date']}.",
        f"Hybrid = reciprocal rank fusion, k = {s['rrf_k']:g}, {s['candidates']} candidates per retriever, "
        f"weights dense {s['dense_weight']:g} / BM25 {s['bm25_weight']:g}; BM25 k1 = {s['bm25_k1']:g}, "
        f"b = {s['bm25_b']:g}. These constants were tuned on the train split only "
        "(eval/tune_scifact.py, eval/results/scifact_tuning.json), never on test.",
        "",
        "| mode | nDCG@10 | Recall@10 | Recall@100 | MRR@10 | p50 ms/query | p95 ms/query |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, m in r["modes"].items():
        lat = m["latency_ms"]
        lines.append(
            f"| {mode} | {m['ndcg@10']:.4f} | {m['recall@10']:.4f} | {m['recall@100']:.4f} | "
            f"{m['mrr@10']:.4f} | {lat['p50']:.1f} | {lat['p95']:.1f} |"
        )
    speed = f", {b['passages_per_s']} passages/s" if b["embedded"] else ""
    lines += [
        "",
        f"Index build: {b['seconds']:.1f} s for {r['documents']:,} documents ({b['embedded']:,} embedded"
        f"{speed}, {b['from_cache']:,} from the cache; model load {b['model_load_seconds']:.1f} s not included). "
        "Latency is one `Retriever.search(query, k=100)` call, query embedding included, after one warm-up.",
        "1-minute load average (other processes on the same {cpus} CPUs): {b0} at the build, {q0} when the "
        "queries started, {e} at the end.".format(
            cpus=r["machine"]["cpus"], b0=lav["build_start"], q0=lav["queries_start"], e=lav["end"]
        ),
    ]
    refs = PUBLISHED.get(r["benchmark"])
    if refs and r["split"] == "test":
        lines += ["", "For comparison (nDCG@10, test split):", "", "| system | nDCG@10 | source |", "|---|---|---|"]
        lines += [f"| {name} | {score:.3f} | {src} |" for name, score, src in refs]
    return "\n".join(lines) + "\n"
