"""The `rag` command as a user runs it: real subprocesses, JSON out, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def rag(args, notes, index, stdin=None, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update({"RAG_EMBEDDER": "hash", "RAG_NOTES_DIR": str(notes), "RAG_INDEX_DIR": str(index), "RAG_ABSTAIN_THRESHOLD": "0.2"})
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "rag", *args], input=stdin, capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture
def built(notes_dir, tmp_path):
    index = tmp_path / "index"
    r = rag(["index", "--json"], notes_dir, index)
    assert r.returncode == 0, r.stderr
    return notes_dir, index, json.loads(r.stdout)


def test_index_json_report(built):
    _, _, report = built
    for key in ("notes", "chunks_total", "chunks_embedded", "chunks_reused", "added", "changed", "removed", "renamed", "seconds", "warnings"):
        assert key in report
    assert report["notes"] == 4 and len(report["added"]) == 4 and report["chunks_embedded"] == report["chunks_total"]


def test_index_human_report_and_up_to_date(built):
    notes, index, _ = built
    r = rag(["index"], notes, index)
    assert r.returncode == 0 and "up to date" in r.stderr


def test_ask_json_and_text(built):
    notes, index, _ = built
    r = rag(["ask", "What does DPO train on?", "--json"], notes, index)
    body = json.loads(r.stdout)
    assert body["citations"][0]["note"] == "alignment/dpo.md" and not body["abstained"]
    r = rag(["ask", "What does DPO train on?"], notes, index)
    assert "[1]" in r.stdout and "alignment/dpo.md:" in r.stdout


def test_ask_batch_from_stdin(built):
    notes, index, _ = built
    r = rag(["ask", "-", "--json"], notes, index, stdin="What does DPO train on?\n\nWhat is nucleus sampling?\n" + "x" * 3000 + "\n")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 3
    assert rows[0]["citations"][0]["note"] == "alignment/dpo.md"
    assert rows[1]["citations"][0]["note"] == "inference/sampling.md"
    assert rows[2]["error_type"] == "BadQuestion" and "limit" in rows[2]["error"]


def test_search_json(built):
    notes, index, _ = built
    r = rag(["search", "PPO reward model", "-k", "2", "--json"], notes, index)
    body = json.loads(r.stdout)
    assert len(body["hits"]) == 2 and body["hits"][0]["note"] == "alignment/rlhf.md"


@pytest.mark.parametrize(
    "args, env, code, message",
    [
        (["ask", "What is DPO?"], {"RAG_INDEX_DIR": "/nonexistent/index"}, 3, "run `rag index`"),
        (["index"], {"RAG_NOTES_DIR": "/nonexistent/notes"}, 2, "does not exist"),
        (["ask", "   "], {}, 2, "empty"),
        (["ask", "What is DPO?", "--generator", "nope"], {}, 2, "valid generators"),
        (["ask", "What is DPO?"], {"RAG_EMBEDDER": "/tmp"}, 2, "not a sentence-transformers model folder"),
    ],
)
def test_errors_are_one_line_with_exit_codes(built, args, env, code, message):
    notes, index, _ = built
    r = rag(args, notes, index, env_extra=env)
    assert r.returncode == code, (r.stdout, r.stderr)
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_index_built_with_another_embedder_says_how_to_fix(built):
    notes, index, _ = built
    r = rag(["ask", "What is DPO?"], notes, index, env_extra={"RAG_EMBEDDER": "all-MiniLM-L6-v2"})
    assert r.returncode == 3 and "rag index --full" in r.stderr and "Traceback" not in r.stderr


def test_help_lists_the_commands():
    r = subprocess.run([sys.executable, "-m", "rag", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for cmd in ("index", "search", "ask", "serve"):
        assert cmd in r.stdout
