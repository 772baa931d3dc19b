"""Benchmark the service as a user runs it: build, start, warm /ask latency, memory.

    .venv/bin/python eval/bench_service.py [--requests 100] [--out eval/results/service.json]

1. Builds a fresh index of notes/ with the real packaged model (no cache) and reports the
   build time and passages (chunks) per second.
2. Starts `rag serve` as a subprocess on a free loopback port with that index present and
   reports the time until `/health` answers.
3. Sends one warm-up question per case, then `--requests` `POST /ask` requests cycling
   through the suite's questions, one at a time, and reports p50/p95 of the client-side
   latency and of the server's own `timings_ms`.
4. Reads the server's resident memory (VmRSS) from /proc.

Run it on an otherwise idle machine: on 2 cores any other job doubles the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--out", type=Path, default=REPO / "eval/results/service.json")
    args = ap.parse_args()
    rag = str(Path(sys.executable).parent / "rag")
    work = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update({"RAG_NOTES_DIR": str(REPO / "notes"), "RAG_INDEX_DIR": str(work / "index")})
    try:
        t0 = time.perf_counter()
        out = subprocess.run([rag, "index", "--full", "--no-cache", "--json"], env=env, capture_output=True, text=True, check=True)
        build_wall = time.perf_counter() - t0
        report = json.loads(out.stdout)

        port = free_port()
        t0 = time.perf_counter()
        server = subprocess.Popen([rag, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as client:
            while True:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None:
                    raise SystemExit(f"server exited: {server.stderr.read().decode()}")
                time.sleep(0.05)
            start_s = time.perf_counter() - t0
            questions = [json.loads(line)["question"] for line in (REPO / "eval/qa.jsonl").read_text().splitlines() if line.strip()]
            for q in questions[:10]:  # warm-up
                client.post("/ask", json={"question": q})
            wall, server_total, retrieve, abstained = [], [], [], 0
            for i in range(args.requests):
                q = questions[i % len(questions)]
                t = time.perf_counter()
                r = client.post("/ask", json={"question": q})
                wall.append((time.perf_counter() - t) * 1000)
                body = r.json()
                server_total.append(body["timings_ms"]["total"])
                retrieve.append(body["timings_ms"]["retrieve"])
                abstained += body["abstained"]
            rss_kb = next(int(line.split()[1]) for line in Path(f"/proc/{server.pid}/status").read_text().splitlines() if line.startswith("VmRSS"))
        server.terminate()
        server.wait(timeout=10)
        result = {
            "build": {
                "notes": report["notes"],
                "chunks": report["chunks_total"],
                "seconds_in_process": report["seconds"],
                "seconds_wall": round(build_wall, 2),
                "passages_per_second": round(report["chunks_total"] / report["seconds"], 1),
            },
            "server_start_seconds": round(start_s, 2),
            "ask": {
                "requests": args.requests,
                "client_ms": {"p50": round(statistics.median(wall), 1), "p95": round(pct(wall, 0.95), 1)},
                "server_total_ms": {"p50": round(statistics.median(server_total), 1), "p95": round(pct(server_total, 0.95), 1)},
                "retrieve_ms": {"p50": round(statistics.median(retrieve), 1), "p95": round(pct(retrieve, 0.95), 1)},
                "abstained": abstained,
            },
            "server_rss_mb": round(rss_kb / 1024, 1),
            "cpus": os.cpu_count(),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(result, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
