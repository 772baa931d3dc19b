"""Writing the notes-suite results: per-question JSON, a markdown report, a terminal table.

Deliberately plain: the markdown report is a few tables a reviewer reads in a diff.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .suite import flatten

__all__ = ["write_results", "print_summary", "markdown_report"]

TARGETS = {
    "retrieval.hit@5": (">=", 0.95),
    "retrieval.mrr@10": (">=", 0.85),
    "citations.validity": (">=", 1.0),
    "abstention.unanswerable_abstained": (">=", 0.90),
    "abstention.answerable_abstained": ("<=", 0.05),
}


def _meets(value: float, op: str, target: float) -> bool:
    return value >= target - 1e-9 if op == ">=" else value <= target + 1e-9


def print_summary(summary: dict, console: Console) -> None:
    table = Table(title=f"notes suite: {summary['cases']} cases ({summary['unanswerable']} unanswerable)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    for metric, value in flatten(summary).items():
        op, target = TARGETS.get(metric, ("", None))
        mark = "" if target is None else (f"{op} {target}" + (" ok" if _meets(value, op, target) else " MISSED"))
        table.add_row(metric, f"{value:.4f}" if isinstance(value, float) else str(value), mark)
    for stage, v in summary["latency_ms"].items():
        table.add_row(f"latency.{stage} (ms)", f"p50 {v['p50']:.1f} / p95 {v['p95']:.1f}", "")
    console.print(table)


def markdown_report(summary: dict, meta: dict, calibration: dict | None) -> str:
    lines = [f"# Notes suite: {meta['suite']}", "", f"Run {meta['when']} with generator `{meta['generator']}`, "
             f"embedder `{meta['embedder']}`, abstain threshold {meta['threshold']}.", ""]
    lines += ["| metric | value | target |", "|---|---:|---|"]
    for metric, value in flatten(summary).items():
        op, target = TARGETS.get(metric, ("", None))
        verdict = "" if target is None else f"{op} {target} {'met' if _meets(value, op, target) else '**missed**'}"
        lines.append(f"| {metric} | {value if isinstance(value, int) else f'{value:.4f}'} | {verdict} |")
    lines += ["", "| stage | p50 ms | p95 ms |", "|---|---:|---:|"]
    for stage, v in summary["latency_ms"].items():
        lines.append(f"| {stage} | {v['p50']:.1f} | {v['p95']:.1f} |")
    if calibration:
        lines += ["", f"## Abstention threshold calibration", "",
                  f"Chosen on the calibration split (odd case ids), minimising the sum of both error rates "
                  f"over thresholds {calibration['grid'][0]}..{calibration['grid'][1]}: **{calibration['threshold']}**.", "",
                  "| split | cases | unanswerable answered | answerable abstained |", "|---|---:|---:|---:|"]
        for split in ("calibration", "held-out", "all"):
            c = calibration[split]
            lines.append(f"| {split} | {c['cases']} | {c['unanswerable_answered']:.4f} | {c['answerable_abstained']:.4f} |")
    by_kind = meta.get("by_kind", {})
    if by_kind:
        lines += ["", "## By kind", "", "| kind | cases | hit@5 | key-fact recall | abstained |", "|---|---:|---:|---:|---:|"]
        for kind, s in sorted(by_kind.items()):
            lines.append(f"| {kind} | {s['cases']} | {s['retrieval']['hit@5']:.3f} | {s['answers']['key_fact_recall']:.3f} | "
                         f"{(s['abstention']['unanswerable_abstained'] if kind == 'unanswerable' else s['abstention']['answerable_abstained']):.3f} |")
    return "\n".join(lines) + "\n"


def write_results(out_dir: Path, name: str, summary: dict, records: list[dict], meta: dict, calibration: dict | None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {"meta": meta, "summary": summary, "calibration": calibration, "records": records}
    (out_dir / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
    (out_dir / f"{name}.md").write_text(markdown_report(summary, meta, calibration))
    return out_dir / f"{name}.json"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
