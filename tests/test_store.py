"""The on-disk snapshot store: round trip, atomic switch, and clear errors on bad indexes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag.errors import IndexCorrupt, IndexMismatch, IndexNotFound
from rag.service import RagService
from rag.store import IndexStore

from .conftest import hash_settings


def test_round_trip_keeps_chunks_vectors_and_manifest(service):
    snap = service.snapshot
    again = IndexStore(service.settings.index_dir).load("hash", 384)
    assert [c.id for c in again.chunks] == [c.id for c in snap.chunks]
    assert np.allclose(again.vectors, snap.vectors)
    assert np.allclose(np.linalg.norm(again.vectors, axis=1), 1.0, atol=1e-5)
    m = again.manifest
    assert m.embedder == "hash" and m.dim == 384 and m.chunks == len(snap.chunks)
    assert set(m.notes) == {"alignment/dpo.md", "alignment/rlhf.md", "inference/sampling.md", "foundations/crfm.md"}
    assert m.chunker["max_tokens"] == 200 and m.built_at


def test_missing_index_says_how_to_build(tmp_path, notes_dir):
    svc = RagService(hash_settings(notes_dir, tmp_path / "none"))
    with pytest.raises(IndexNotFound, match="rag index"):
        svc.snapshot


def test_other_embedder_is_a_clear_mismatch(service):
    with pytest.raises(IndexMismatch, match=r"built with embedder 'hash'.*rag index --full"):
        IndexStore(service.settings.index_dir).load("all-MiniLM-L6-v2", 384)


def test_other_format_is_a_clear_mismatch(service):
    store = IndexStore(service.settings.index_dir)
    path = store.snapshots / store.current_id() / "manifest.json"
    data = json.loads(path.read_text())
    data["format"] = 999
    path.write_text(json.dumps(data))
    with pytest.raises(IndexMismatch, match="format 999"):
        store.load("hash", 384)


@pytest.mark.parametrize("victim", ["dense.faiss", "chunks.sqlite", "bm25.npz", "bm25_terms.json"])
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_files_are_detected_and_full_rebuild_repairs(service, victim, damage):
    store = IndexStore(service.settings.index_dir)
    path = store.snapshots / store.current_id() / victim
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match="rag index --full"):
        store.load("hash", 384)
    fresh = RagService(service.settings)
    report = fresh.index(full=True)
    assert report.rebuilt and fresh.snapshot.manifest.chunks == report.chunks_total > 0
    assert fresh.ask("What does DPO train on?").citations


def test_garbage_manifest_and_dangling_pointer(service):
    store = IndexStore(service.settings.index_dir)
    (store.snapshots / store.current_id() / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorrupt):
        store.load("hash", 384)
    (store.root / "CURRENT").write_text("no-such-snapshot\n")
    with pytest.raises(IndexCorrupt, match="missing"):
        store.load("hash", 384)


def test_leftovers_of_crashed_builds_are_collected(service):
    store = IndexStore(service.settings.index_dir)
    junk = store.snapshots / "20000101T000000-dead00.tmp"
    junk.mkdir()
    (junk / "dense.faiss").write_bytes(b"partial")
    (service.settings.notes_dir / "new.md").write_text("# New\n\nA new note about tokenizers.\n")
    service.index()
    assert not junk.exists()
    assert len([p for p in store.snapshots.iterdir()]) <= 2  # live + previous
