"""A BERT sentence encoder in plain numpy, for the packaged all-MiniLM-L6-v2 without torch.

`rag index` after a one-note edit embeds one or two chunks, and a query is one short text;
importing torch and sentence-transformers to do that costs seconds, while the arithmetic
costs milliseconds. This module runs the same network (BERT: embeddings, 6 post-norm
encoder layers with 12-head attention and erf GELU, then mean pooling over real tokens and
L2 normalisation, as the model folder's `modules.json` prescribes) straight from
`model.safetensors` with numpy matrix products; the tokenizer is the folder's own
`tokenizer.json`. Vectors agree with sentence-transformers' to within 1e-6 (tests check
1e-5), so both engines may write into the same index and cache.

Weights are read once with safetensors (query, key and value fused, matrices stored
transposed); loading takes a fraction of a second. Deliberately absent: other
architectures (RoBERTa, relative positions, CLS pooling), dropout and anything for
training; `supported` refuses a folder this cannot run exactly, and the embedder then uses
sentence-transformers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["MiniLM", "supported"]


def supported(folder: Path) -> bool:
    """True when `folder` holds a model this encoder reproduces exactly."""
    try:
        cfg = json.loads((folder / "config.json").read_text())
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
        modules = [m.get("type", "") for m in json.loads((folder / "modules.json").read_text())]
    except (OSError, ValueError):
        return False
    return (
        cfg.get("model_type") == "bert"
        and cfg.get("hidden_act") == "gelu"
        and cfg.get("position_embedding_type", "absolute") == "absolute"
        and pooling.get("pooling_mode_mean_tokens") is True
        and not any(pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens"))
        and [m.rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
        and (folder / "model.safetensors").is_file()
        and (folder / "tokenizer.json").is_file()
    )


class MiniLM:
    """Encodes texts with a BERT sentence model held as numpy arrays."""

    def __init__(self, folder: Path, max_tokens: int):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = Path(folder)
        cfg = json.loads((folder / "config.json").read_text())
        self.heads = int(cfg["num_attention_heads"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        w = load_file(str(folder / "model.safetensors"))
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in w else ""

        def get(name: str) -> np.ndarray:
            return np.ascontiguousarray(w[prefix + name], dtype=np.float32)

        self.word = get("embeddings.word_embeddings.weight")
        self.position = get("embeddings.position_embeddings.weight")
        self.token_type = get("embeddings.token_type_embeddings.weight")[0]  # one segment only
        self.emb_norm = (get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"))
        self.layers = []
        for i in range(int(cfg["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            qkv_w = np.concatenate([get(p + f"attention.self.{n}.weight") for n in ("query", "key", "value")])
            qkv_b = np.concatenate([get(p + f"attention.self.{n}.bias") for n in ("query", "key", "value")])
            self.layers.append(
                {
                    "qkv": (np.ascontiguousarray(qkv_w.T), qkv_b),  # stored transposed: x @ W
                    "out": (np.ascontiguousarray(get(p + "attention.output.dense.weight").T), get(p + "attention.output.dense.bias")),
                    "norm1": (get(p + "attention.output.LayerNorm.weight"), get(p + "attention.output.LayerNorm.bias")),
                    "up": (np.ascontiguousarray(get(p + "intermediate.dense.weight").T), get(p + "intermediate.dense.bias")),
                    "down": (np.ascontiguousarray(get(p + "output.dense.weight").T), get(p + "output.dense.bias")),
                    "norm2": (get(p + "output.LayerNorm.weight"), get(p + "output.LayerNorm.bias")),
                }
            )
        self.dim = self.word.shape[1]
        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tok.no_padding()  # the shipped file pads to a fixed length; batches pad to their longest
        tok.enable_truncation(min(max_tokens, self.position.shape[0]))
        self._tokenizer = tok

    def embed(self, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised. Texts of similar length share a batch."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encs = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encs[i].ids))
        for s in range(0, len(order), batch_size):
            rows = order[s : s + batch_size]
            length = max(len(encs[i].ids) for i in rows)
            ids = np.zeros((len(rows), length), dtype=np.int64)
            mask = np.zeros((len(rows), length), dtype=np.float32)
            for r, i in enumerate(rows):
                n = len(encs[i].ids)
                ids[r, :n] = encs[i].ids
                mask[r, :n] = 1.0
            out[rows] = self._forward(ids, mask)
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        b, t = ids.shape
        x = self.word[ids] + self.position[:t] + self.token_type
        x = self._norm(x, *self.emb_norm)
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]  # padding gets no attention
        h, d = self.heads, self.dim // self.heads
        scale = np.float32(1.0 / np.sqrt(d))
        for L in self.layers:
            qkv = x @ L["qkv"][0] + L["qkv"][1]  # (b, t, 3*dim)
            q, k, v = (qkv[..., i * self.dim : (i + 1) * self.dim].reshape(b, t, h, d).transpose(0, 2, 1, 3) for i in range(3))
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias  # (b, h, t, t)
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(b, t, self.dim)
            x = self._norm(x + ctx @ L["out"][0] + L["out"][1], *L["norm1"])
            up = x @ L["up"][0] + L["up"][1]
            up = 0.5 * up * (1.0 + _erf(up * np.float32(1.0 / np.sqrt(2.0))))
            x = self._norm(x + up @ L["down"][0] + L["down"][1], *L["norm2"])
        pooled = (x * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32)

    def _norm(self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(var + np.float32(self.eps)) * weight + bias


def _erf(x: np.ndarray) -> np.ndarray:
    """erf, elementwise, to ~1e-7 (Abramowitz and Stegun 7.1.26), in float32.

    BERT's "gelu" is the exact x/2 (1 + erf(x / sqrt 2)); numpy has no erf, and importing
    scipy for it would cost a fresh process a fifth of a second. The error is below float32
    rounding of the activations it feeds.
    """
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + np.float32(0.3275911) * a)
    poly = t * (np.float32(0.254829592) + t * (np.float32(-0.284496736) + t * (np.float32(1.421413741) + t * (np.float32(-1.453152027) + t * np.float32(1.061405429)))))
    return sign * (1.0 - poly * np.exp(-a * a))
