"""The single-query fast path of the real embedder gives the vectors `encode` gives (marked `model`)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from rag.embedder import load_embedder

pytestmark = pytest.mark.model


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


def test_one_text_matches_the_batched_encode_path(emb):
    batched = emb.embed(QUERIES)  # several texts: sentence-transformers' encode
    single = np.vstack([emb.embed([q]) for q in QUERIES])  # one text: the direct path
    assert single.shape == batched.shape == (len(QUERIES), 384) and single.dtype == np.float32
    assert float(np.abs(single - batched).max()) < 1e-5
    assert np.allclose(np.linalg.norm(single, axis=1), 1.0, atol=1e-5)


def test_one_text_leaves_the_thread_setting_as_it_found_it(emb):
    import torch

    before = torch.get_num_threads()
    emb.embed(["a query"])
    assert torch.get_num_threads() == before
    seen = []
    worker = threading.Thread(target=lambda: seen.append((emb.embed(["from a worker"]).shape, torch.get_num_threads())))
    worker.start()
    worker.join()
    assert seen and seen[0][0] == (1, 384)
    assert torch.get_num_threads() == before
