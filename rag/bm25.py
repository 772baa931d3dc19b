"""BM25 over chunks, kept as raw term counts so that an edit rebuilds it in milliseconds.

The index is a sparse matrix of term counts (rows: chunks, columns: terms) and the term
list. Scores are Lucene's BM25, the variant bm25s and Anserini use:

    score(q, d) = sum over query terms t of  idf(t) * tf / (tf + k1 * (1 - b + b * |d| / avgdl))
    idf(t)      = ln(1 + (N - df + 0.5) / (df + 0.5))

computed when the index is loaded (one vectorised pass over the counts), not stored, so
the saved files depend only on the chunks' terms. A rebuild after an edit takes the rows
of unchanged chunks from the previous matrix (found by content hash) and counts terms
only for new text: ~70 ms at 13k chunks, where re-indexing everything with bm25s took
~1.5 s (eval/results/incremental.md). Duplicate query terms count once per occurrence,
as in bm25s.

    >>> idx = BM25Index.build([["cat", "sat"], ["dog"], ["cat", "cat"]])
    >>> rows, scores = idx.top(["cat"], 5)
    >>> rows.tolist()
    [2, 0]

Deliberately absent: other BM25 variants and query-time term weighting.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["BM25Index", "K1", "B"]

# Term-frequency saturation and length normalisation. Lucene's defaults kept: on SciFact's
# train split the best grid point (k1 1.5, b 0.4) beat them by 0.002 nDCG@10 alone and not
# at all fused (eval/results/scifact_tuning.json).
K1 = 1.2
B = 0.75
_FILES = ("bm25.npz", "bm25_terms.json")


class BM25Index:
    """Term counts of every chunk plus the weights a query needs (built on construction)."""

    def __init__(self, counts, terms: list[str], k1: float = K1, b: float = B):
        import scipy.sparse as sp

        self.counts = sp.csr_matrix(counts, dtype=np.int32)  # (chunks, terms), raw counts
        self.terms = terms  # column -> term
        self.vocab = {t: i for i, t in enumerate(terms)}
        self.k1, self.b = k1, b
        n = self.counts.shape[0]
        length = np.asarray(self.counts.sum(axis=1)).ravel().astype(np.float64)  # tokens per chunk
        by_term = self.counts.tocsc()
        by_term.sort_indices()
        df = np.diff(by_term.indptr)
        self.df = df  # column -> number of chunks holding the term
        idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
        norm = k1 * (1.0 - b + b * length / (length.mean() if n else 1.0))
        tf = by_term.data.astype(np.float64)
        cols = np.repeat(np.arange(len(terms)), df)
        self._rows = by_term.indices  # CSC layout: the chunks holding term j are rows[ptr[j]:ptr[j+1]]
        self._ptr = by_term.indptr
        self._weights = (idf[cols] * tf / (tf + norm[self._rows])).astype(np.float32)

    @property
    def size(self) -> int:
        return self.counts.shape[0]

    @classmethod
    def build(cls, tokens: Sequence[Sequence[str]], k1: float = K1, b: float = B) -> "BM25Index":
        """An index of the given token lists (one per chunk)."""
        return cls.update(None, [list(t) for t in tokens], k1=k1, b=b)

    @classmethod
    def update(
        cls, previous: "BM25Index | None", rows: Sequence[int | list[str]], k1: float = K1, b: float = B
    ) -> "BM25Index":
        """A new index whose chunk i is `previous` row `rows[i]` (an int) or the tokens `rows[i]`.

        Terms no chunk holds any more are dropped, so the result equals `build` on the same
        chunks up to the order of its columns.
        """
        import scipy.sparse as sp

        vocab = dict(previous.vocab) if previous is not None else {}
        terms = list(previous.terms) if previous is not None else []
        old_rows = [r for r in rows if isinstance(r, (int, np.integer))]
        new_ptr, new_cols, new_vals = [0], [], []
        for r in rows:
            if isinstance(r, (int, np.integer)):
                continue
            for t, c in Counter(r).items():
                j = vocab.get(t)
                if j is None:
                    j = vocab[t] = len(terms)
                    terms.append(t)
                new_cols.append(j)
                new_vals.append(c)
            new_ptr.append(len(new_cols))
        width = len(terms)
        fresh = sp.csr_matrix(
            (np.asarray(new_vals, dtype=np.int32), np.asarray(new_cols, dtype=np.int32), np.asarray(new_ptr)),
            shape=(len(new_ptr) - 1, width),
        )
        parts = [fresh]
        if old_rows:
            taken = previous.counts[np.asarray(old_rows, dtype=np.int64)]
            taken = sp.csr_matrix((taken.data, taken.indices, taken.indptr), shape=(len(old_rows), width))
            parts.insert(0, taken)
        stacked = sp.vstack(parts, format="csr") if len(parts) > 1 else parts[0]
        # stacked holds the old rows first, then the fresh ones: put them in the caller's order
        order = np.empty(len(rows), dtype=np.int64)
        is_old = np.array([isinstance(r, (int, np.integer)) for r in rows], dtype=bool)
        order[is_old] = np.arange(int(is_old.sum()))
        order[~is_old] = int(is_old.sum()) + np.arange(int((~is_old).sum()))
        counts = stacked[order] if len(rows) else stacked
        used = np.bincount(counts.indices, minlength=width) > 0
        if not used.all():  # drop terms that left with deleted or edited chunks
            remap = np.cumsum(used) - 1
            counts = sp.csr_matrix(
                (counts.data, remap[counts.indices].astype(np.int32), counts.indptr), shape=(counts.shape[0], int(used.sum()))
            )
            terms = [t for t, u in zip(terms, used) if u]
        return cls(counts, terms, k1=k1, b=b)

    def scores(self, query: Sequence[str]) -> np.ndarray:
        """BM25 score of every chunk for the query terms (unknown terms score nothing)."""
        out = np.zeros(self.size, dtype=np.float32)
        for t in query:
            j = self.vocab.get(t)
            if j is not None:
                lo, hi = self._ptr[j], self._ptr[j + 1]
                out[self._rows[lo:hi]] += self._weights[lo:hi]
        return out

    def top(self, query: Sequence[str], c: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and scores of the best `c` chunks with a positive score, best first."""
        if self.size == 0 or not any(t in self.vocab for t in query):
            return np.zeros(0, np.int64), np.zeros(0)
        scores = self.scores(query)
        c = min(c, len(scores))
        top = np.argpartition(-scores, c - 1)[:c]
        top = top[np.lexsort((top, -scores[top]))]  # by score, ties by row: deterministic
        top = top[scores[top] > 0]
        return top.astype(np.int64), scores[top].astype(np.float64)

    def doc_freq(self) -> dict[str, int]:
        """Term -> number of chunks holding it."""
        return dict(zip(self.terms, self.df.tolist()))

    # -- files -----------------------------------------------------------------------------

    def save(self, folder: Path) -> list[str]:
        """Write the counts and the terms into `folder`; returns the file names."""
        folder = Path(folder)
        c = self.counts
        with (folder / _FILES[0]).open("wb") as f:
            np.savez(f, indptr=c.indptr.astype(np.int64), indices=c.indices.astype(np.int32), counts=c.data.astype(np.int32),
                     shape=np.asarray(c.shape, dtype=np.int64))
        (folder / _FILES[1]).write_text(json.dumps(self.terms, ensure_ascii=False))
        return list(_FILES)

    @classmethod
    def load(cls, folder: Path, k1: float = K1, b: float = B) -> "BM25Index":
        import scipy.sparse as sp

        folder = Path(folder)
        with np.load(folder / _FILES[0], allow_pickle=False) as z:
            shape = tuple(int(x) for x in z["shape"])
            counts = sp.csr_matrix((z["counts"], z["indices"], z["indptr"]), shape=shape)
        terms = json.loads((folder / _FILES[1]).read_text(encoding="utf-8"))
        if not isinstance(terms, list) or len(terms) != shape[1]:
            raise ValueError(f"{_FILES[1]} lists {len(terms)} terms, the counts have {shape[1]} columns")
        return cls(counts, terms, k1=k1, b=b)
