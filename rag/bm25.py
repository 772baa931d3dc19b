"""BM25 over chunks, kept as raw term counts so that an edit rebuilds it in milliseconds.

The index is a sparse matrix of term counts (rows: chunks, columns: terms) and the term
list. Scores are Lucene's BM25, the variant bm25s and Anserini use:

    score(q, d) = sum over query terms t of  idf(t) * tf / (tf + k1 * (1 - b + b * |d| / avgdl))
    idf(t)      = ln(1 + (N - df + 0.5) / (df + 0.5))

computed on the first query (one vectorised pass over the counts), not stored, so the
saved files depend only on the chunks' terms. A rebuild after an edit takes the rows of
unchanged chunks from the previous matrix (found by content hash) and counts terms only
for new text: ~20 ms at 13k chunks, where re-indexing everything with bm25s took ~1.5 s
(eval/results/incremental.md). Duplicate query terms count once per occurrence, as in
bm25s.

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
    """Term counts of every chunk plus the weights a query needs (built on construction).

    Counts are held as compressed sparse rows in plain numpy arrays (scipy is not needed,
    and importing it would cost a fresh `rag index` a quarter of a second):
    row i's terms are `indices[indptr[i]:indptr[i + 1]]`, their counts the same slice of `counts`.
    """

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, counts: np.ndarray, terms: list[str], k1: float = K1, b: float = B):
        self.indptr = np.asarray(indptr, dtype=np.int64)  # (chunks + 1,)
        self.indices = np.asarray(indices, dtype=np.int32)  # (non-zeros,) term columns
        self.counts = np.asarray(counts, dtype=np.int32)  # (non-zeros,) term frequency in the chunk
        self.terms = terms  # column -> term
        self.vocab = {t: i for i, t in enumerate(terms)}
        self.k1, self.b = k1, b
        self.df = np.bincount(self.indices, minlength=len(terms))  # column -> chunks holding the term
        self._by_term = None  # (rows, ptr, weights): built on the first query, see _query_view

    def _query_view(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The weights in column order: the chunks holding term j are rows[ptr[j]:ptr[j + 1]].

        Built on first use (~0.1 s at 13k chunks), so indexing without searching (the CLI)
        never pays for it. Two threads may both build it; they build the same arrays.
        """
        view = self._by_term
        if view is None:
            n, df, k1, b = self.size, self.df, self.k1, self.b
            row_of = np.repeat(np.arange(n, dtype=np.int32), np.diff(self.indptr))
            length = np.bincount(row_of, weights=self.counts, minlength=n)  # tokens per chunk
            idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
            norm = k1 * (1.0 - b + b * length / (length.mean() if n else 1.0))
            # a stable sort of 16-bit keys is a radix sort in numpy: ~4x faster than on int32
            keys = self.indices.astype(np.uint16) if len(self.terms) <= 1 << 16 else self.indices
            order = np.argsort(keys, kind="stable")
            rows = row_of[order]
            tf = self.counts[order].astype(np.float64)
            weights = (idf[self.indices[order]] * tf / (tf + norm[rows])).astype(np.float32)
            view = self._by_term = (rows, np.concatenate([[0], np.cumsum(df)]), weights)
        return view

    @property
    def size(self) -> int:
        return len(self.indptr) - 1

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
        vocab = dict(previous.vocab) if previous is not None else {}
        terms = list(previous.terms) if previous is not None else []
        old_n = previous.size if previous is not None else 0
        # new text goes after the previous rows in one pool; the result gathers from the pool
        new_ptr, new_cols, new_vals, source = [0], [], [], []
        for r in rows:
            if isinstance(r, (int, np.integer)):
                source.append(int(r))
                continue
            for t, c in Counter(r).items():
                j = vocab.get(t)
                if j is None:
                    j = vocab[t] = len(terms)
                    terms.append(t)
                new_cols.append(j)
                new_vals.append(c)
            source.append(old_n + len(new_ptr) - 1)
            new_ptr.append(len(new_cols))
        if previous is not None:
            pool_ptr = np.concatenate([previous.indptr, previous.indptr[-1] + np.asarray(new_ptr[1:], dtype=np.int64)])
            pool_idx = np.concatenate([previous.indices, np.asarray(new_cols, dtype=np.int32)])
            pool_val = np.concatenate([previous.counts, np.asarray(new_vals, dtype=np.int32)])
        else:
            pool_ptr = np.asarray(new_ptr, dtype=np.int64)
            pool_idx = np.asarray(new_cols, dtype=np.int32)
            pool_val = np.asarray(new_vals, dtype=np.int32)
        src = np.asarray(source, dtype=np.int64)
        starts, lengths = pool_ptr[src], pool_ptr[src + 1] - pool_ptr[src]
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        # position k of the result reads pool entry starts[row] + (k - indptr[row])
        take = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        indices, counts = pool_idx[take], pool_val[take]
        used = np.bincount(indices, minlength=len(terms)) > 0
        if not used.all():  # drop terms that left with deleted or edited chunks
            indices = (np.cumsum(used) - 1)[indices].astype(np.int32)
            terms = [t for t, u in zip(terms, used) if u]
        return cls(indptr, indices, counts, terms, k1=k1, b=b)

    def scores(self, query: Sequence[str]) -> np.ndarray:
        """BM25 score of every chunk for the query terms (unknown terms score nothing)."""
        out = np.zeros(self.size, dtype=np.float32)
        rows, ptr, weights = self._query_view()
        for t in query:
            j = self.vocab.get(t)
            if j is not None:
                lo, hi = ptr[j], ptr[j + 1]
                out[rows[lo:hi]] += weights[lo:hi]
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
        with (folder / _FILES[0]).open("wb") as f:
            np.savez(f, indptr=self.indptr, indices=self.indices, counts=self.counts)
        (folder / _FILES[1]).write_text(json.dumps(self.terms, ensure_ascii=False))
        return list(_FILES)

    @classmethod
    def load(cls, folder: Path, k1: float = K1, b: float = B) -> "BM25Index":
        folder = Path(folder)
        with np.load(folder / _FILES[0], allow_pickle=False) as z:
            indptr, indices, counts = z["indptr"], z["indices"], z["counts"]
        terms = json.loads((folder / _FILES[1]).read_text(encoding="utf-8"))
        if not isinstance(terms, list):
            raise ValueError(f"{_FILES[1]} is not a list of terms")
        if (
            indptr.ndim != 1 or len(indptr) == 0 or indptr[0] != 0 or np.any(np.diff(indptr) < 0)
            or indptr[-1] != len(indices) or len(indices) != len(counts)
        ):
            raise ValueError(f"{_FILES[0]} does not hold well-formed sparse rows")
        if len(indices) and (indices.min() < 0 or indices.max() >= len(terms)):
            raise ValueError(f"{_FILES[1]} lists {len(terms)} terms, the counts use more columns")
        return cls(indptr, indices, counts, terms, k1=k1, b=b)
