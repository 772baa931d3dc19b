"""The notes suite answered by two generators, side by side, from their `rag eval` results.

    .venv/bin/rag eval                     # eval/results/qa.json (extractive)
    .venv/bin/rag eval --generator llama   # eval/results/qa-llama.json
    .venv/bin/python eval/compare_generators.py [--a qa] [--b qa-llama]

Reads the two result files (same suite, same index) and writes
eval/results/generators.md: the summary metrics next to each other, the same by question
kind, and where they disagree on abstention: the gate abstains before any generator runs,
so every abstention the second one adds is the model saying the passages do not hold the
answer. Deliberately absent: running the suite (that is `rag eval`'s job) and any
judgement of answer style.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

ROWS = [  # (label, path into the summary, format)
    ("hit@5 (note level)", ("retrieval", "hit@5"), "{:.3f}"),
    ("key-fact recall", ("answers", "key_fact_recall"), "{:.3f}"),
    ("token F1", ("answers", "token_f1"), "{:.3f}"),
    ("answered (answerable cases)", ("answers", "answered"), "{}"),
    ("citation validity", ("citations", "validity"), "{:.3f}"),
    ("citation precision", ("citations", "precision"), "{:.3f}"),
    ("citations checked", ("citations", "checked"), "{}"),
    ("unanswerable abstained (target >= 0.90)", ("abstention", "unanswerable_abstained"), "{:.3f}"),
    ("answerable abstained (target <= 0.05)", ("abstention", "answerable_abstained"), "{:.3f}"),
    ("generate p50 ms", ("latency_ms", "generate", "p50"), "{:,.0f}"),
    ("total p50 ms", ("latency_ms", "total", "p50"), "{:,.0f}"),
    ("total p95 ms", ("latency_ms", "total", "p95"), "{:,.0f}"),
]


def dig(d: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def cell(value, fmt: str) -> str:
    return "–" if value is None else fmt.format(value)


def render(a: dict, b: dict) -> str:
    na, nb = a["meta"]["generator"], b["meta"]["generator"]
    lines = [
        f"# Generators on the notes suite: `{na}` and `{nb}`", "",
        f"From `{a['meta']['suite']}`: `{na}` run {a['meta']['when']}, `{nb}` run {b['meta']['when']}; "
        f"abstain threshold {a['meta']['threshold']} / {b['meta']['threshold']}. Written by eval/compare_generators.py.", "",
        f"| metric | {na} | {nb} |", "|---|---:|---:|",
    ]
    for label, path, fmt in ROWS:
        lines.append(f"| {label} | {cell(dig(a['summary'], path), fmt)} | {cell(dig(b['summary'], path), fmt)} |")
    recs_b = b["records"]
    fallback = sum(1 for r in recs_b if r.get("fallback"))
    ungrounded = sum(1 for r in recs_b if r.get("grounded") is False)
    lines += ["", f"`{nb}`: {fallback} of {len(recs_b)} answers fell back to the extractive one "
              f"(a failure, or no sentence of the answer supported by its cited passages), {ungrounded} flagged ungrounded."]
    reasons = Counter(w.split(":")[0] for r in recs_b if r.get("fallback") for w in r.get("warnings", []))
    if reasons:
        lines += ["", "Warnings on the answers that fell back:", ""]
        lines += [f"- {n} x {w}" for w, n in reasons.most_common(8)]
    own = [r for r in recs_b if not r.get("fallback") and not r["abstained"] and r["kind"] != "unanswerable"]
    base = {r["id"]: r for r in a["records"]}
    if own:
        mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
        lines += ["", f"On the {len(own)} answerable questions `{nb}` answered itself (no fallback), key-fact recall "
                  f"{mean([r['fact_recall'] or 0 for r in own]):.3f} against `{na}`'s "
                  f"{mean([base[r['id']]['fact_recall'] or 0 for r in own if r['id'] in base]):.3f} on the same questions."]
    lines.append("")

    kinds = sorted(set(a["meta"].get("by_kind", {})) | set(b["meta"].get("by_kind", {})))
    if kinds:
        lines += ["## By question kind", "", f"| kind | key-fact recall {na} | {nb} | abstained {na} | {nb} |", "|---|---:|---:|---:|---:|"]
        for k in kinds:
            sa, sb = a["meta"]["by_kind"].get(k, {}), b["meta"]["by_kind"].get(k, {})
            abst = ("abstention", "unanswerable_abstained") if k == "unanswerable" else ("abstention", "answerable_abstained")
            lines.append(
                f"| {k} | {cell(dig(sa, ('answers', 'key_fact_recall')), '{:.3f}')} | {cell(dig(sb, ('answers', 'key_fact_recall')), '{:.3f}')} "
                f"| {cell(dig(sa, abst), '{:.3f}')} | {cell(dig(sb, abst), '{:.3f}')} |"
            )
        lines.append("")

    by_id = {r["id"]: r for r in a["records"]}
    added = [r for r in recs_b if r["abstained"] and not by_id.get(r["id"], {}).get("abstained", False)]
    right = [r for r in added if r["kind"] == "unanswerable"]
    wrong = [r for r in added if r["kind"] != "unanswerable"]
    lines += [
        "## Abstentions the model added to the gate's", "",
        f"`{nb}` abstained on {len(added)} questions `{na}` answered: {len(right)} unanswerable (right) and "
        f"{len(wrong)} answerable (wrong).", "",
    ]
    for r in right[:10] + wrong[:10]:
        mark = "right" if r["kind"] == "unanswerable" else "wrong"
        lines.append(f"- {mark}: {r['id']} ({r['kind']}) {r['question']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", default="qa", help="first result file stem in eval/results")
    ap.add_argument("--b", default="qa-llama", help="second result file stem in eval/results")
    ap.add_argument("--out", type=Path, default=RESULTS / "generators.md")
    args = ap.parse_args()
    files = [RESULTS / f"{stem}.json" for stem in (args.a, args.b)]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: run `rag eval` (and `rag eval --generator llama`) first")
    a, b = (json.loads(f.read_text()) for f in files)
    args.out.write_text(render(a, b))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
