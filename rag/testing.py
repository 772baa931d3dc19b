"""Deterministic fakes for fast tests: a hashing embedder selectable as `RAG_EMBEDDER=hash`.

`HashingEmbedder` maps each word (lower-cased, crudely stemmed) and each word bigram to a
signed bucket of a 384-dim vector and normalises it. It is a bag-of-words model, so texts
that share words are close; it knows no synonyms. It exists so that tests exercise the
real store, FAISS index, retriever and app in milliseconds; the real model has its own
tests (marked `model`). Nothing here is used by the product unless asked for by name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from .chunker import estimate_tokens

__all__ = ["HashingEmbedder"]

_WORD = re.compile(r"[a-z0-9]+")


class HashingEmbedder:
    name = "hash"
    dim = 384
    max_tokens = 256

    def __init__(self) -> None:
        self.calls = 0  # texts embedded so far: lets tests see what was (not) re-embedded

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = [w[:6] for w in _WORD.findall(text.lower())]
            for feat in words + [f"{a}_{b}" for a, b in zip(words, words[1:])]:
                h = int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
            norm = np.linalg.norm(out[row])
            if norm > 0:
                out[row] /= norm
        return out

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)
