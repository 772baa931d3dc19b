"""The public API is `rag.__all__`: changing it must be deliberate."""

import subprocess
import sys

import rag


def test_public_api_is_stable():
    assert sorted(rag.__all__) == [
        "Answer",
        "Chunk",
        "ChunkerConfig",
        "Citation",
        "Hit",
        "RagError",
        "RagService",
        "Settings",
        "chunk_note",
        "get_settings",
    ]
    for name in rag.__all__:
        assert getattr(rag, name) is not None


def test_import_does_no_heavy_work():
    code = "import sys, rag, rag.app, rag.cli; print(' '.join(m for m in ('torch', 'sentence_transformers', 'faiss', 'scipy', 'safetensors') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
