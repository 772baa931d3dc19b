"""Incremental indexing: only what changed is embedded; nothing stale is left behind."""

from __future__ import annotations

import os

import numpy as np

import pytest

from rag.service import RagService
from rag.testing import HashingEmbedder
from rag.text import terms

from .conftest import hash_settings


@pytest.fixture
def counted(notes_dir, tmp_path):
    """A service whose fake embedder counts the texts it embeds."""
    emb = HashingEmbedder()
    svc = RagService(hash_settings(notes_dir, tmp_path / "index"), embedder=emb)
    first = svc.index()
    assert first.chunks_embedded == first.chunks_total > 0
    emb.calls = 0
    return svc, emb


def notes_in_index(svc):
    return {c.note for c in svc.snapshot.chunks}


def test_nothing_changed_keeps_the_snapshot(counted):
    svc, emb = counted
    before = svc.snapshot.id
    r = svc.index()
    assert not r.rebuilt and r.snapshot == before and emb.calls == 0
    assert (r.added, r.changed, r.removed, r.renamed) == ([], [], [], [])


def test_editing_one_section_embeds_only_its_chunks(counted):
    svc, emb = counted
    path = svc.settings.notes_dir / "alignment/dpo.md"
    path.write_text(path.read_text().replace("A temperature beta", "A coefficient beta"))
    r = svc.index()
    assert r.changed == ["alignment/dpo.md"] and r.added == r.removed == []
    assert r.chunks_embedded == 1 == emb.calls
    assert r.chunks_reused == r.chunks_total - 1
    texts = " ".join(c.text for c in svc.snapshot.chunks)
    assert "coefficient beta" in texts and "temperature beta" not in texts


def test_revert_embeds_nothing(counted):
    svc, emb = counted
    path = svc.settings.notes_dir / "alignment/dpo.md"
    original = path.read_text()
    path.write_text(original + "\n## Extra\n\nA new section.\n")
    assert svc.index().chunks_embedded == 1
    emb.calls = 0
    path.write_text(original)
    r = svc.index()
    assert r.changed == ["alignment/dpo.md"] and r.chunks_embedded == 0 == emb.calls
    assert "A new section." not in " ".join(c.text for c in svc.snapshot.chunks)


def test_add_and_delete(counted):
    svc, emb = counted
    root = svc.settings.notes_dir
    (root / "new/topic.md").parent.mkdir()
    (root / "new/topic.md").write_text("# Topic\n\nKV caches keep keys and values.\n")
    r = svc.index()
    assert r.added == ["new/topic.md"] and r.chunks_embedded == 1
    (root / "alignment/rlhf.md").unlink()
    r = svc.index()
    assert r.removed == ["alignment/rlhf.md"] and r.chunks_embedded == 0
    assert "alignment/rlhf.md" not in notes_in_index(svc)
    hits = svc.search("reward model PPO comparisons from human labellers", k=10)
    assert all(h.chunk.note != "alignment/rlhf.md" for h in hits)


def test_rename_is_reported_and_embeds_nothing_new_for_same_context(counted):
    svc, emb = counted
    root = svc.settings.notes_dir
    os.rename(root / "inference/sampling.md", root / "inference/decoding.md")
    r = svc.index()
    assert r.renamed == [{"from": "inference/sampling.md", "to": "inference/decoding.md"}]
    assert r.added == [] and r.removed == []
    # the title comes from front matter, so the embedded texts are identical: all from cache
    assert r.chunks_embedded == 0 == emb.calls
    assert "inference/decoding.md" in notes_in_index(svc)
    assert "inference/sampling.md" not in notes_in_index(svc)


def test_moving_a_section_within_a_note_embeds_nothing(counted):
    svc, emb = counted
    path = svc.settings.notes_dir / "alignment/dpo.md"
    text = path.read_text()
    intro, rest = text.split("## Loss")
    loss, related = rest.split("## Related")
    path.write_text(intro + "## Related" + related.rstrip("\n") + "\n\n## Loss" + loss)
    r = svc.index()
    assert r.changed == ["alignment/dpo.md"]
    assert r.chunks_embedded == 0 == emb.calls
    headings = [c.heading for c in svc.snapshot.chunks if c.note == "alignment/dpo.md"]
    assert headings.index("Related") < headings.index("Loss")


@pytest.mark.parametrize(
    "name, payload, reason",
    [
        ("binary.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR", "binary"),
        ("latin1.md", "# Café\n\nrésumé".encode("latin-1"), "not UTF-8"),
    ],
)
def test_bad_files_are_skipped_with_a_warning(counted, name, payload, reason):
    svc, _ = counted
    (svc.settings.notes_dir / name).write_bytes(payload)
    r = svc.index()
    assert any(name in w and reason in w for w in r.warnings)
    assert name not in notes_in_index(svc) and len(notes_in_index(svc)) == 4
    assert svc.health()["warnings"] == r.warnings


def test_a_note_that_becomes_unreadable_is_skipped(counted):
    svc, _ = counted
    path = svc.settings.notes_dir / "alignment/dpo.md"
    path.unlink()
    path.symlink_to(svc.settings.notes_dir / "gone.md")  # unreadable even for root
    r = svc.index()
    assert any("dpo.md" in w and "unreadable" in w for w in r.warnings)
    assert r.removed == ["alignment/dpo.md"] and len(notes_in_index(svc)) == 3
    if os.geteuid() != 0:  # permissions only bind non-root users
        other = svc.settings.notes_dir / "alignment/rlhf.md"
        other.chmod(0)
        try:
            r = svc.index()
        finally:
            other.chmod(0o644)
        assert any("rlhf.md" in w and "unreadable" in w for w in r.warnings)


def test_empty_notes_and_other_files_are_fine(counted):
    svc, _ = counted
    root = svc.settings.notes_dir
    (root / "empty.md").write_text("")
    (root / "image.png").write_bytes(b"\x89PNG\x00")
    (root / ".obsidian").mkdir()
    (root / ".obsidian/workspace.md").write_text("# hidden\n\ntext\n")
    r = svc.index()
    assert r.added == ["empty.md"] and r.warnings == []
    assert r.notes == 5


def test_full_rebuild_uses_the_cache_unless_told_not_to(counted):
    svc, emb = counted
    r = svc.index(full=True)
    assert r.rebuilt and r.chunks_embedded == 0 == emb.calls
    r = svc.index(full=True, use_cache=False)
    assert r.chunks_embedded == r.chunks_total == emb.calls


def test_missing_notes_folder_is_a_clear_error(tmp_path):
    from rag.errors import NotesNotFound

    svc = RagService(hash_settings(tmp_path / "nope", tmp_path / "index"))
    with pytest.raises(NotesNotFound, match="RAG_NOTES_DIR"):
        svc.index()


def test_incremental_snapshot_equals_a_full_rebuild_and_its_files(counted):
    """After edits, deletes and a rename, the in-memory snapshot an update hands over, the
    files it wrote and a --full rebuild all search alike (BM25 rows are copied, not recounted)."""
    svc, _ = counted
    root = svc.settings.notes_dir
    dpo = root / "alignment/dpo.md"
    dpo.write_text(dpo.read_text().replace("A temperature beta", "A zorbulent coefficient beta"))
    (root / "alignment/rlhf.md").rename(root / "alignment/feedback.md")
    victim = sorted(p for p in root.rglob("*.md") if p.name not in ("dpo.md", "feedback.md"))[0]
    victim.unlink()
    svc.index()
    handed_over = svc.snapshot
    from_disk = svc.store.load(svc.embedder.name, svc.embedder.dim)
    svc.index(full=True)
    rebuilt = svc.snapshot
    assert [c.hash for c in handed_over.chunks] == [c.hash for c in rebuilt.chunks]
    assert handed_over.df == from_disk.df == rebuilt.df
    assert terms("zorbulent")[0] in handed_over.df  # terms of removed text are gone: df equal above
    for q in ("zorbulent coefficient", "reward model PPO", "preference pairs", "tokens"):
        scores = [s.bm25.scores(terms(q)) for s in (handed_over, from_disk, rebuilt)]
        assert np.allclose(scores[0], scores[1]) and np.allclose(scores[0], scores[2])
        assert [h.chunk.id for h in svc.retriever(handed_over).search(q, k=5)] == [
            h.chunk.id for h in svc.retriever(rebuilt).search(q, k=5)
        ]
