"""Shared fixtures: a clean environment, a tmp folder of real notes, services over real indexes.

Most tests use the deterministic hashing embedder (`RAG_EMBEDDER=hash`) with the real
chunker, store, FAISS index, BM25, retriever and app. Tests marked `model` use the real
packaged all-MiniLM-L6-v2 over the shipped notes/ (built once per session).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rag.service import RagService
from rag.settings import Settings, get_settings

REPO = Path(__file__).resolve().parent.parent

NOTES = {
    "alignment/dpo.md": """---
title: Direct Preference Optimization
tags: [alignment]
---
# Direct Preference Optimization

DPO trains a model directly on preference pairs, with no separate reward model.
It was published by Rafailov and colleagues in 2023.

## Loss

The loss compares log-probability ratios of the chosen and rejected answers against a
frozen reference model. A temperature beta controls how far the policy may drift.

## Related

- [RLHF](rlhf.md)
""",
    "alignment/rlhf.md": """# RLHF

Reinforcement learning from human feedback fits a reward model to human rankings, then
optimises the policy against it with PPO.

## Steps

1. Collect comparisons from human labellers.
2. Train a reward model on the comparisons.
3. Optimise the policy with PPO under a KL penalty.
""",
    "inference/sampling.md": """---
title: Sampling
---
# Sampling

Temperature rescales the logits before softmax: low values make output more deterministic.

## Top-p

Nucleus sampling keeps the smallest set of tokens whose probability mass exceeds p.

```python
# not a heading: a comment inside a code fence
probs = softmax(logits / temperature)
```
""",
    "foundations/crfm.md": "Foundation models were named by the Stanford CRFM in 2021.\n\nThey are adapted by prompting or fine-tuning.\n",
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    """No RAG_* variable or .env leaks into a test; settings are re-read each time."""
    for key in list(os.environ):
        if key.startswith("RAG_"):
            monkeypatch.delenv(key)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def write_notes(root: Path, notes: dict[str, str] = NOTES) -> Path:
    for rel, text in notes.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def notes_dir(tmp_path) -> Path:
    return write_notes(tmp_path / "notes")


def hash_settings(notes: Path, index: Path, **kw) -> Settings:
    """Settings for the fast hashing embedder (its cosines are lower than a real model's)."""
    kw.setdefault("abstain_threshold", 0.2)
    return Settings(notes_dir=notes, index_dir=index, embedder="hash", _env_file=None, **kw)


@pytest.fixture
def service(notes_dir, tmp_path) -> RagService:
    svc = RagService(hash_settings(notes_dir, tmp_path / "index"))
    svc.index()
    return svc


@pytest.fixture(scope="session")
def real_service(tmp_path_factory) -> RagService:
    """The shipped notes indexed with the real packaged model (once per session)."""
    root = tmp_path_factory.mktemp("real")
    notes = root / "notes"
    shutil.copytree(REPO / "notes", notes)
    svc = RagService(Settings(notes_dir=notes, index_dir=root / "index", _env_file=None))
    svc.index()
    return svc
