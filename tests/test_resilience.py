"""Crashes, concurrency and watching: the index is always whole, readers never see a mix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rag.app import create_app
from rag.citations import claim_valid, claims
from rag.service import RagService
from rag.store import IndexStore

from .conftest import hash_settings, write_notes

STAGES = ["chunks", "dense", "bm25", "manifest", "renamed", "pointer-written", "switched"]

CRASHING_INDEX = textwrap.dedent(
    """
    import os, signal, sys
    import rag.store
    stage = sys.argv[1]
    def checkpoint(name):
        if name == stage:
            os.kill(os.getpid(), signal.SIGKILL)
    rag.store._checkpoint = checkpoint
    from rag.cli import main
    sys.argv = ["rag", "index"]
    main()
    """
)


def env_for(notes: Path, index: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update({"RAG_EMBEDDER": "hash", "RAG_NOTES_DIR": str(notes), "RAG_INDEX_DIR": str(index)})
    return env


def many_notes(root: Path, n: int, tag: str = "") -> None:
    for i in range(n):
        body = "\n\n".join(
            f"## Part {j}\n\nNote {i} part {j} {tag} discusses tokenizers, sampling and serving in detail."
            for j in range(6)
        )
        (root / f"bulk/n{i:03d}.md").parent.mkdir(parents=True, exist_ok=True)
        (root / f"bulk/n{i:03d}.md").write_text(f"# Bulk note {i}\n\n{body}\n")


def assert_index_whole(settings) -> RagService:
    """The live snapshot loads with every checksum verified and answers with valid citations."""
    svc = RagService(settings)
    snap = svc.snapshot
    assert len(snap.chunks) == snap.manifest.chunks == snap.dense.ntotal > 0
    ans = svc.ask("What does DPO train on?").model_dump()
    for sentence, nums in claims(ans["answer"]):
        cit = next(c for c in ans["citations"] if c["n"] == nums[0])
        assert claim_valid(settings.notes_dir, cit, sentence)
    return svc


@pytest.mark.parametrize("stage", STAGES)
def test_sigkill_at_each_write_stage_leaves_a_loadable_index(notes_dir, tmp_path, stage):
    settings = hash_settings(notes_dir, tmp_path / "index")
    before = RagService(settings).index().snapshot
    (notes_dir / "extra.md").write_text("# Extra\n\nA note added before the crash.\n")
    r = subprocess.run([sys.executable, "-c", CRASHING_INDEX, stage], env=env_for(notes_dir, tmp_path / "index"), capture_output=True, timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr
    live = IndexStore(settings.index_dir).current_id()
    assert live == before if stage != "switched" else live != before
    svc = assert_index_whole(settings)
    assert ("extra.md" in svc.snapshot.manifest.notes) == (stage == "switched")
    report = svc.index()  # the next build completes and cleans up
    assert "extra.md" in svc.snapshot.manifest.notes and report.snapshot == svc.snapshot.id
    assert not list(IndexStore(settings.index_dir).snapshots.glob("*.tmp"))


def test_sigkill_at_random_moments_of_a_big_rebuild(notes_dir, tmp_path):
    settings = hash_settings(notes_dir, tmp_path / "index")
    many_notes(notes_dir, 150)
    RagService(settings).index()
    many_notes(notes_dir, 150, tag="edited")  # every bulk note changes: a long rebuild
    env = env_for(notes_dir, tmp_path / "index")
    for delay in (0.3, 0.8, 1.5, 2.5, 4.0):
        proc = subprocess.Popen([sys.executable, "-m", "rag", "index"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert_index_whole(settings)
    svc = RagService(settings)
    svc.index()
    assert all("edited" in c.text for c in svc.snapshot.chunks if c.note.startswith("bulk/") and "Part" in c.heading)


def test_queries_during_rebuilds_are_complete_and_consistent(notes_dir, tmp_path):
    settings = hash_settings(notes_dir, tmp_path / "index", admin_token="t")
    svc = RagService(settings)
    svc.index()
    app = create_app(svc)
    toggled = notes_dir / "inference/kv-cache.md"
    toggled_text = "# KV cache\n\nThe KV cache stores keys and values of earlier tokens so decoding avoids recomputing them.\n"
    contents = {p.relative_to(notes_dir).as_posix(): p.read_text() for p in notes_dir.rglob("*.md")}
    contents["inference/kv-cache.md"] = toggled_text
    errors: list[str] = []
    stop = threading.Event()
    questions = ["What does DPO train on?", "What does the KV cache store?", "How does nucleus sampling work?", "What are the steps of RLHF?"]

    def reader(i: int) -> None:
        client = TestClient(app)
        n = 0
        while not stop.is_set() and n < 400:
            q = questions[(i + n) % len(questions)]
            r = client.post("/ask", json={"question": q})
            n += 1
            if r.status_code != 200:
                errors.append(f"{r.status_code}: {r.text[:200]}")
                continue
            body = r.json()
            if body["abstained"]:
                continue
            for sentence, nums in claims(body["answer"]):
                cit = next((c for c in body["citations"] if c["n"] == nums[0]), None)
                text = contents.get(cit["note"]) if cit else None
                lines = text.splitlines()[cit["start_line"] - 1 : cit["end_line"]] if text else []
                if not cit or " ".join(sentence.split()) not in " ".join(" ".join(lines).split()):
                    errors.append(f"bad citation for {q!r}: {sentence!r} -> {cit}")

    def rebuilder() -> None:
        client = TestClient(app)
        for i in range(12):
            if i % 2 == 0:
                toggled.write_text(toggled_text)
            else:
                toggled.unlink()
            r = client.post("/index/rebuild", headers={"Authorization": "Bearer t"})
            if r.status_code not in (200, 409):
                errors.append(f"rebuild {r.status_code}: {r.text[:200]}")
        stop.set()

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(3)] + [threading.Thread(target=rebuilder)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors[:5]


def test_a_second_rebuild_while_one_runs_gets_409(notes_dir, tmp_path):
    settings = hash_settings(notes_dir, tmp_path / "index", admin_token="t")
    svc = RagService(settings)
    svc.index()
    many_notes(notes_dir, 200)
    client = TestClient(create_app(svc))
    results: list[int] = []
    first = threading.Thread(target=lambda: results.append(client.post("/index/rebuild", headers={"Authorization": "Bearer t"}).status_code))
    first.start()
    deadline = time.time() + 30
    while not svc.rebuilding and time.time() < deadline:
        time.sleep(0.005)
    assert svc.rebuilding
    second = client.post("/index/rebuild", headers={"Authorization": "Bearer t"})
    assert second.status_code == 409 and "already running" in second.json()["detail"]
    first.join(timeout=120)
    assert results == [200]


def test_watch_mode_picks_up_edits(notes_dir, tmp_path):
    settings = hash_settings(notes_dir, tmp_path / "index", watch=True, watch_debounce_ms=50)
    svc = RagService(settings)
    svc.index()
    with TestClient(create_app(svc)) as client:  # the context runs the app's lifespan: the watcher
        before = client.get("/health").json()["snapshot"]
        time.sleep(0.3)  # let the watcher start
        (notes_dir / "inference/speculative.md").write_text("# Speculative decoding\n\nA draft model proposes tokens that the target model verifies.\n")
        deadline = time.time() + 30
        while time.time() < deadline and client.get("/health").json()["snapshot"] == before:
            time.sleep(0.1)
        health = client.get("/health").json()
        assert health["snapshot"] != before and health["notes"] == 5
        hits = client.get("/search", params={"q": "draft model proposes tokens"}).json()["hits"]
        assert hits[0]["note"] == "inference/speculative.md"
        (notes_dir / "inference/speculative.md").unlink()
        deadline = time.time() + 30
        while time.time() < deadline and client.get("/health").json()["notes"] != 4:
            time.sleep(0.1)
        assert client.get("/health").json()["notes"] == 4
