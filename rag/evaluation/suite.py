"""`rag eval` on the notes suite: retrieval, answers, citations, abstention and latency.

Every question goes through `RagService.ask`, the same path as `POST /ask`. Per case it
records the answer, the ranked notes (from the retrieved hits, before the gate), the
evidence score and timings; the metrics are then computed from those records:

- retrieval (note level, answerable cases): hit@1, hit@5, MRR@10, nDCG@10 and recall@5
  over the gold notes, ranking notes by their best chunk;
- answers (answered, answerable cases): key-fact recall (share of `facts` groups with one
  spelling in the answer) and token F1 against the gold answer;
- citations: validity (every marked sentence stands in the cited lines; for LLM writers,
  every cited passage stands in its lines) and precision (share pointing into a gold note);
- abstention: correct on unanswerable cases, wrong on answerable ones;
- latency per stage, p50 and p95.

The abstention threshold is calibrated on the `calibration` split (cases whose id number
is odd, about half the suite) and reported on the `held-out` split (even ids) as well as on
the whole suite. `--check` compares with `eval/baseline.json`. Deliberately absent: an
LLM judge (nothing to call offline).
"""

from __future__ import annotations

import json
import math
import re
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from ..citations import claim_valid, claims, marker_valid
from ..service import RagService
from ..text import normalize_ws
from .metrics import evaluate

__all__ = ["load_suite", "run_suite", "summarise", "calibrate", "check_baseline", "TOLERANCES"]

# How far a metric may fall below the baseline before `rag eval --check` fails. Retrieval
# and answer metrics move by one case in ~220 (0.005) when anything changes; latency is
# noisy on a shared 2-core machine, so it is only guarded against doubling.
TOLERANCES = {
    "retrieval.hit@1": 0.02,
    "retrieval.hit@5": 0.02,
    "retrieval.mrr@10": 0.02,
    "retrieval.ndcg@10": 0.02,
    "retrieval.recall@5": 0.02,
    "answers.key_fact_recall": 0.02,
    "answers.token_f1": 0.02,
    "citations.validity": 0.0,
    "citations.precision": 0.03,
    "abstention.unanswerable_abstained": 0.03,
    "abstention.answerable_answered": 0.03,
}


def load_suite(path: Path) -> list[dict]:
    rows = []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{i}: not JSON ({exc.msg})") from None
    return rows


def split_of(case_id: str) -> str:
    """'calibration' for odd id numbers, 'held-out' for even ones (stable, documented)."""
    digits = re.findall(r"\d+", case_id)
    return "calibration" if digits and int(digits[-1]) % 2 else "held-out"


_TOKEN = re.compile(r"[a-z0-9]+")


def token_f1(prediction: str, gold: str) -> float:
    p, g = _TOKEN.findall(prediction.lower()), _TOKEN.findall(gold.lower())
    if not p or not g:
        return float(p == g)
    common = sum(min(p.count(t), g.count(t)) for t in set(p) & set(g))
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def fact_recall(answer: str, facts: list[list[str]]) -> float:
    if not facts:
        return 1.0
    text = normalize_ws(answer).lower()
    return sum(any(normalize_ws(s).lower() in text for s in group) for group in facts) / len(facts)


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    idx = (len(ordered) - 1) * q
    lo, hi = math.floor(idx), math.ceil(idx)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (idx - lo)


def run_suite(service: RagService, cases: list[dict], generator: str | None = None, k: int = 10, progress=None) -> list[dict]:
    """Ask every case; one record per case with what the metrics need."""
    records = []
    notes_dir = service.settings.notes_dir
    llm = (generator or service.settings.generator) != "extractive"
    for i, case in enumerate(cases):
        t0 = time.perf_counter()
        answer, hits = service.ask_with_hits(case["question"], k=k, generator=generator)
        wall = (time.perf_counter() - t0) * 1000
        ranked = list(dict.fromkeys(h.chunk.note for h in hits))
        body = answer.model_dump()
        valid = []
        if not answer.abstained:
            if llm:
                valid = [marker_valid(notes_dir, c) for c in body["citations"]]
            else:
                by_n = {c["n"]: c for c in body["citations"]}
                valid = [
                    n in by_n and claim_valid(notes_dir, by_n[n], sentence)
                    for sentence, nums in claims(answer.answer)
                    for n in nums
                ]
        gold = set(case["notes"])
        records.append(
            {
                "id": case["id"],
                "kind": case["kind"],
                "split": split_of(case["id"]),
                "question": case["question"],
                "gold_answer": case["answer"],
                "gold_notes": case["notes"],
                "answer": answer.answer,
                "abstained": answer.abstained,
                "evidence": answer.evidence,
                "ranked_notes": ranked[:10],
                "cited_notes": [c.note for c in answer.citations] if not answer.abstained else [],
                "citations_valid": valid,
                "citations_in_gold": [c.note in gold for c in answer.citations] if not answer.abstained and gold else [],
                "fact_recall": fact_recall(answer.answer, case["facts"]) if case["facts"] and not answer.abstained else (0.0 if case["facts"] else None),
                "token_f1": token_f1(answer.answer, case["answer"]) if case["kind"] != "unanswerable" and not answer.abstained else None,
                "grounded": answer.grounded,
                "fallback": answer.fallback,
                "warnings": list(answer.warnings),  # why an LLM answer fell back, markers removed...
                "timings_ms": {**answer.timings_ms, "wall": round(wall, 2)},
            }
        )
        if progress:
            progress(i + 1, len(cases))
    return records


def summarise(records: list[dict], threshold: float | None = None) -> dict:
    """Metrics over records; with `threshold`, abstention is re-decided from the evidence."""
    def abstained(r: dict) -> bool:
        return r["abstained"] if threshold is None else (r["evidence"] is None or r["evidence"] < threshold)

    answerable = [r for r in records if r["kind"] != "unanswerable"]
    unanswerable = [r for r in records if r["kind"] == "unanswerable"]
    runs = {r["id"]: {n: 1.0 / (i + 1) for i, n in enumerate(r["ranked_notes"])} for r in answerable}
    qrels = {r["id"]: {n: 1 for n in r["gold_notes"]} for r in answerable}
    answered = [r for r in answerable if not r["abstained"]]
    valid = [v for r in records if not r["abstained"] for v in r["citations_valid"]]
    in_gold = [v for r in answered for v in r["citations_in_gold"]]
    stages = {}
    for stage in ("retrieve", "generate", "total"):
        vals = [r["timings_ms"].get(stage, 0.0) for r in records]
        stages[stage] = {"p50": round(_percentile(vals, 0.5), 2), "p95": round(_percentile(vals, 0.95), 2)}
    mean = lambda xs: round(statistics.fmean(xs), 4) if xs else 0.0  # noqa: E731
    return {
        "cases": len(records),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "retrieval": {
            name: round(value, 4)
            for name, value in evaluate(runs, qrels, ("hit@1", "hit@5", "mrr@10", "ndcg@10", "recall@5")).items()
        },
        "answers": {
            "key_fact_recall": mean([r["fact_recall"] for r in answered if r["fact_recall"] is not None]),
            "token_f1": mean([r["token_f1"] for r in answered if r["token_f1"] is not None]),
            "answered": len(answered),
        },
        "citations": {
            "validity": mean([float(v) for v in valid]) if valid else 1.0,
            "precision": mean([float(v) for v in in_gold]),
            "checked": len(valid),
        },
        "abstention": {
            "unanswerable_abstained": mean([float(abstained(r)) for r in unanswerable]),
            "answerable_abstained": mean([float(abstained(r)) for r in answerable]),
            "answerable_answered": mean([float(not abstained(r)) for r in answerable]),
        },
        "latency_ms": stages,
    }


def calibrate(records: list[dict], grid: Sequence[float] | None = None) -> dict:
    """The threshold that minimises the sum of both abstention error rates on the calibration split.

    Ties go to the lower threshold (answering is the default). Returns the threshold and
    both error rates on the calibration split, the held-out split and the whole suite.
    """
    grid = grid or [round(0.2 + 0.005 * i, 3) for i in range(121)]  # 0.20 .. 0.80
    calib = [r for r in records if r["split"] == "calibration"]

    def errors(rs: list[dict], t: float) -> tuple[float, float]:
        una = [r for r in rs if r["kind"] == "unanswerable"]
        ans = [r for r in rs if r["kind"] != "unanswerable"]
        miss = sum((r["evidence"] or 0) >= t for r in una) / max(len(una), 1)  # answered when it should abstain
        wrong = sum((r["evidence"] or 0) < t for r in ans) / max(len(ans), 1)  # abstained when it could answer
        return miss, wrong

    best = min(grid, key=lambda t: (sum(errors(calib, t)), t))
    out = {"threshold": best, "grid": [grid[0], grid[-1], grid[1] - grid[0]]}
    for name, rs in (("calibration", calib), ("held-out", [r for r in records if r["split"] == "held-out"]), ("all", records)):
        miss, wrong = errors(rs, best)
        out[name] = {"unanswerable_answered": round(miss, 4), "answerable_abstained": round(wrong, 4), "cases": len(rs)}
    return out


def flatten(summary: dict) -> dict[str, float]:
    out = {}
    for group, values in summary.items():
        if isinstance(values, dict):
            for key, v in values.items():
                if isinstance(v, (int, float)):
                    out[f"{group}.{key}"] = v
    return out


def check_baseline(summary: dict, baseline: dict) -> list[str]:
    """Regressions against the baseline beyond `TOLERANCES`: one message each."""
    now, base = flatten(summary), flatten(baseline)
    failures = []
    for metric, tol in TOLERANCES.items():
        if metric in base and metric in now and now[metric] < base[metric] - tol:
            failures.append(
                f"{metric} fell from {base[metric]:.4f} to {now[metric]:.4f} "
                f"(by {base[metric] - now[metric]:.4f}; tolerance {tol})"
            )
    for stage in ("retrieve", "total"):
        key = f"latency_ms.{stage}"
        b = baseline.get("latency_ms", {}).get(stage, {}).get("p50")
        n = summary.get("latency_ms", {}).get(stage, {}).get("p50")
        if b and n and n > 2 * b + 5:
            failures.append(f"{key}.p50 rose from {b:.1f} ms to {n:.1f} ms (more than double)")
    return failures
