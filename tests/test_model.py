"""The real packaged all-MiniLM-L6-v2, offline, over the shipped notes (marked `model`)."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from rag.app import create_app
from rag.embedder import load_embedder

pytestmark = pytest.mark.model


def test_packaged_model_loads_offline_and_normalises(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    emb = load_embedder("all-MiniLM-L6-v2")
    assert emb.name == "all-MiniLM-L6-v2" and emb.dim == 384 and emb.max_tokens == 256
    v = emb.embed(["direct preference optimisation", "DPO aligns a model on preference pairs", "a recipe for bread"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]
    assert emb.count_tokens("hello world") == 4  # [CLS] hello world [SEP]


@pytest.mark.parametrize(
    "question, note",
    [
        ("Who came up with the label for these big pretrained networks?", "foundations/foundation-models.md"),
        ("How can I align a model on preference pairs without training a reward model?", "alignment/dpo.md"),
        ("Why does generation slow down when the cache of keys and values grows?", "inference/serving.md"),
        ("How do I combine keyword search with vector search results?", "rag/hybrid-search.md"),
        ("What does lowering the randomness knob do to the output?", "inference/sampling.md"),
        ("Which approach trains only small low-rank matrices?", "fine-tuning/methods.md"),
    ],
)
def test_paraphrased_questions_find_their_note(real_service, question, note):
    notes = [h.chunk.note for h in real_service.search(question, k=5)]
    assert note in notes, notes


def test_real_app_answers_and_abstains(real_service):
    c = TestClient(create_app(real_service))
    body = c.post("/ask", json={"question": "Which lab coined the term foundation model?"}).json()
    assert not body["abstained"] and ("2021" in body["answer"] or "CRFM" in body["answer"])
    off = c.post("/ask", json={"question": "How long should I boil an egg?"}).json()
    assert off["abstained"] and off["answer"] == "The notes don't cover this."
    h = c.get("/health").json()
    assert h["embedder"] == "all-MiniLM-L6-v2" and h["notes"] >= 30
