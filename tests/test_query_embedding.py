"""The real embedder's two engines give the same vectors (marked `model`).

Few texts (queries, the chunks of one edited note) go through the numpy engine
(`rag.minilm`), batches through torch; both write into the same index and cache, so
they must agree. The torch single-text path is what a model folder the numpy engine
cannot run uses for queries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from rag import minilm
from rag.embedder import SMALL_BATCH, load_embedder

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def emb():
    return load_embedder("all-MiniLM-L6-v2")


QUERIES = [
    "What is DPO?",
    "0-dimensional biomaterials show inductive properties.",
    "NF-κB activation in macrophages requires TGF-β signalling",  # non-ASCII letters
    "word " * 400,  # past the 256-piece window: truncated the same way
    "",
]


def chunk_texts() -> list[str]:
    """Real chunk-sized texts of different lengths (padding inside a numpy batch)."""
    out = []
    for path in sorted((ROOT / "notes").rglob("*.md"))[:4]:
        text = path.read_text()
        out += [text[:200], text[200:1400]]
    return out


def test_numpy_engine_matches_torch(emb):
    texts = QUERIES + chunk_texts()
    torch_vecs = emb.embed(texts, engine="torch")  # sentence-transformers' encode
    numpy_vecs = emb.embed(texts, engine="numpy")
    assert numpy_vecs.shape == torch_vecs.shape == (len(texts), 384) and numpy_vecs.dtype == np.float32
    assert float(np.abs(numpy_vecs - torch_vecs).max()) < 1e-5
    assert np.allclose(np.linalg.norm(numpy_vecs, axis=1), 1.0, atol=1e-5)
    # one at a time equals in a batch (padding changes nothing)
    one_by_one = np.vstack([emb.embed([t], engine="numpy") for t in texts[:6]])
    assert float(np.abs(one_by_one - numpy_vecs[:6]).max()) < 1e-5


def test_auto_picks_numpy_for_few_texts_and_torch_for_batches(emb):
    few = chunk_texts()[:3]
    assert float(np.abs(emb.embed(few) - emb.embed(few, engine="numpy")).max()) == 0.0
    many = (chunk_texts() * 3)[: SMALL_BATCH + 1]
    assert float(np.abs(emb.embed(many) - emb.embed(many, engine="torch")).max()) == 0.0


def test_torch_single_text_path_matches_encode_and_restores_threads(emb):
    import torch

    batched = emb.embed(QUERIES, engine="torch")
    single = np.vstack([emb.embed([q], engine="torch") for q in QUERIES])
    assert float(np.abs(single - batched).max()) < 1e-5
    before = torch.get_num_threads()
    seen = []
    worker = threading.Thread(target=lambda: seen.append((emb.embed(["from a worker"], engine="torch").shape, torch.get_num_threads())))
    worker.start()
    worker.join()
    assert seen and seen[0][0] == (1, 384)
    assert torch.get_num_threads() == before


def test_the_numpy_engine_refuses_what_it_cannot_run_exactly(tmp_path):
    src = Path(load_embedder("all-MiniLM-L6-v2")._path)
    assert minilm.supported(src)
    for name in ("config.json", "modules.json", "model.safetensors"):
        (tmp_path / name).write_bytes((src / name).read_bytes())
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "tokenizer.json").write_bytes((src / "tokenizer.json").read_bytes())
    pooling = json.loads((src / "1_Pooling" / "config.json").read_text())
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({**pooling, "pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}))
    assert not minilm.supported(tmp_path)  # CLS pooling: sentence-transformers only
    assert not minilm.supported(tmp_path / "missing")


def test_reindexing_an_edit_never_imports_torch(tmp_path):
    """The CLI's common case, one edited note, runs on the numpy engine alone."""
    notes = tmp_path / "notes"
    for rel in ("alignment/dpo.md", "rag/hybrid-search.md"):
        (notes / rel).parent.mkdir(parents=True, exist_ok=True)
        (notes / rel).write_text((ROOT / "notes" / rel).read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_NOTES_DIR=str(notes), RAG_INDEX_DIR=str(tmp_path / "index"))
    code = (
        "import json, sys\nfrom rag.service import RagService\nfrom rag.settings import Settings\n"
        "r = RagService(Settings()).index()\n"
        "print(json.dumps({'embedded': r.chunks_embedded, 'torch': 'torch' in sys.modules}))"
    )

    def index() -> dict:
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    first = index()
    assert first["embedded"] > SMALL_BATCH and first["torch"]  # a bulk build uses torch
    dpo = notes / "alignment/dpo.md"
    dpo.write_text(dpo.read_text() + "\nOne closing remark, added by this test.\n")
    second = index()
    assert 1 <= second["embedded"] <= 2 and second["torch"] is False
