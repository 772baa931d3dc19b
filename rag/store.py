"""The on-disk index: immutable snapshots, an atomic pointer to the live one, an embedding cache.

    index/
      CURRENT                   name of the live snapshot (written aside, then os.replace)
      snapshots/<id>/
        manifest.json           format, embedder, chunker, per-note hashes, counts, file sha256s
        chunks.sqlite           chunk records; row i is FAISS row i
        dense.faiss             IndexFlatIP over L2-normalised vectors (cosine)
        bm25.npz                term counts per chunk (sparse arrays, no pickle; see rag.bm25)
        bm25_terms.json         the term of each column
      cache/<embedder>.sqlite   vector by sha256 of the embedded text
      .lock                     one writer at a time (flock)

A snapshot is written into `snapshots/<id>.tmp`, fsynced, renamed, and only then named in
CURRENT, so a crash at any moment leaves the previous snapshot live and complete. Loading
checks the format and embedder against the caller's and every file against its sha256 in
the manifest, so a truncated or altered file is reported, never half-read.
`write` returns the new snapshot as built in memory, so a rebuild never reads back what it
just wrote. Deliberately absent: in-place updates of a live snapshot (they would need
readers to lock).
"""

from __future__ import annotations

import contextlib
import functools
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .bm25 import B as BM25_B
from .bm25 import K1 as BM25_K1
from .bm25 import BM25Index
from .chunker import Chunk, embed_text
from .errors import IndexCorrupt, IndexMismatch, IndexNotFound

__all__ = ["FORMAT_VERSION", "Manifest", "Snapshot", "IndexStore", "EmbeddingCache", "BM25_K1", "BM25_B"]

FORMAT_VERSION = 2  # 2: BM25 as raw term counts (rag.bm25) instead of bm25s files
_FILES = ("chunks.sqlite", "dense.faiss")
_COMPOUND = re.compile(r"[a-z0-9]+(?:[-.'/][a-z0-9]+)*")


@dataclass
class Manifest:
    snapshot: str
    embedder: str
    dim: int
    chunker: dict  # ChunkerConfig fields + tokenizer name
    notes: dict[str, str]  # note path -> sha256 of its bytes
    built_at: str  # ISO 8601, UTC
    chunks: int
    files: dict[str, str] = field(default_factory=dict)  # relative file -> sha256
    warnings: list[str] = field(default_factory=list)
    format: int = FORMAT_VERSION

    @classmethod
    def from_json(cls, data: dict) -> "Manifest":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Snapshot:
    """A loaded, immutable index: everything a query needs, in memory."""

    manifest: Manifest
    chunks: list[Chunk]  # row order = FAISS row order
    vectors: np.ndarray  # (n, dim) float32, rows L2-normalised
    dense: object  # faiss.Index
    bm25: BM25Index

    @property
    def id(self) -> str:
        return self.manifest.snapshot

    @functools.cached_property
    def df(self) -> dict[str, int]:
        """Term -> number of chunks containing it (for the answerer's evidence)."""
        return self.bm25.doc_freq()

    @functools.cached_property
    def words(self) -> frozenset[str]:
        """Every lower-cased word of the notes, compounds kept whole ("gpt-4o", "3.5")."""
        out: set[str] = set()
        for c in self.chunks:
            out.update(_COMPOUND.findall(f"{c.title} {c.heading} {c.text}".lower()))
        return frozenset(out)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for p in sorted(root.rglob("*")):
        if p.is_file():
            with p.open("rb") as f:
                os.fsync(f.fileno())
    for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        _fsync_dir(d)


def _checkpoint(stage: str) -> None:
    """A seam between the steps of `IndexStore.write`: crash tests replace it with SIGKILL."""


class IndexStore:
    """Reads and writes snapshots under one index folder."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.snapshots = self.root / "snapshots"

    # -- reading ---------------------------------------------------------------------------

    def current_id(self) -> str | None:
        try:
            name = (self.root / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def read_manifest(self, snapshot_id: str | None = None) -> Manifest:
        sid = snapshot_id or self.current_id()
        if sid is None:
            raise IndexNotFound(f"no index in {self.root}/: run `rag index` to build it")
        path = self.snapshots / sid / "manifest.json"
        try:
            return Manifest.from_json(json.loads(path.read_text()))
        except FileNotFoundError as exc:
            raise IndexCorrupt(
                f"{self.root}/CURRENT names snapshot {sid!r}, which is missing: run `rag index --full`"
            ) from exc
        except (ValueError, TypeError) as exc:
            raise IndexCorrupt(f"{path} is unreadable ({exc}): run `rag index --full`") from exc

    def load(self, embedder: str, dim: int, verify: bool = True) -> Snapshot:
        """Load the live snapshot, checking that it was built for this embedder and format."""
        import faiss

        manifest = self.read_manifest()
        if manifest.format != FORMAT_VERSION:
            raise IndexMismatch(
                f"{self.root}/ has index format {manifest.format}, this rag reads format "
                f"{FORMAT_VERSION}: run `rag index --full`"
            )
        if manifest.embedder != embedder or manifest.dim != dim:
            raise IndexMismatch(
                f"{self.root}/ was built with embedder {manifest.embedder!r} ({manifest.dim}-dim), "
                f"settings say {embedder!r} ({dim}-dim): run `rag index --full`, or set "
                f"RAG_EMBEDDER={manifest.embedder}"
            )
        folder = self.snapshots / manifest.snapshot
        if verify:
            for rel, digest in manifest.files.items():
                path = folder / rel
                if not path.is_file() or _sha256(path) != digest:
                    raise IndexCorrupt(
                        f"index file {path} is missing, truncated or altered: run `rag index --full` to repair"
                    )
        try:
            chunks = _read_chunks(folder / "chunks.sqlite")
            dense = faiss.read_index(str(folder / "dense.faiss"))
            vectors = (
                dense.reconstruct_n(0, dense.ntotal).astype(np.float32)
                if dense.ntotal
                else np.zeros((0, manifest.dim), dtype=np.float32)
            )
            bm25 = BM25Index.load(folder)
        except Exception as exc:  # any reader failure means the snapshot is unusable
            raise IndexCorrupt(f"cannot read index snapshot {folder} ({exc}): run `rag index --full`") from exc
        if not (len(chunks) == dense.ntotal == manifest.chunks == bm25.size):
            raise IndexCorrupt(
                f"index snapshot {folder} is inconsistent ({len(chunks)} chunks, {dense.ntotal} vectors, "
                f"{bm25.size} BM25 rows): run `rag index --full`"
            )
        return Snapshot(manifest, chunks, vectors, dense, bm25)

    # -- writing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Hold the index's writer lock (one build at a time, across processes)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def write(
        self,
        manifest: Manifest,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        bm25: BM25Index,
        keep: int = 2,
    ) -> Snapshot:
        """Write a complete snapshot aside, then make it live. Returns it, ready to search.

        The caller holds `writer_lock()`. `bm25` holds the chunks' terms, row for row.
        """
        import faiss

        sid = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
        manifest.snapshot = sid
        manifest.chunks = len(chunks)
        self.snapshots.mkdir(parents=True, exist_ok=True)
        tmp = self.snapshots / f"{sid}.tmp"
        tmp.mkdir()
        try:
            _write_chunks(tmp / "chunks.sqlite", chunks)
            _checkpoint("chunks")
            vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(chunks), manifest.dim)
            index = faiss.IndexFlatIP(manifest.dim)
            if len(chunks):
                index.add(vectors)
            faiss.write_index(index, str(tmp / "dense.faiss"))
            _checkpoint("dense")
            files = list(_FILES) + bm25.save(tmp)
            _checkpoint("bm25")
            manifest.files = {rel: _sha256(tmp / rel) for rel in files}
            (tmp / "manifest.json").write_text(json.dumps(asdict(manifest), indent=1, sort_keys=True))
            _fsync_tree(tmp)
            _checkpoint("manifest")
            os.rename(tmp, self.snapshots / sid)
            _fsync_dir(self.snapshots)
            _checkpoint("renamed")
            pointer = self.root / "CURRENT.tmp"
            with pointer.open("w") as f:
                f.write(sid + "\n")
                f.flush()
                os.fsync(f.fileno())
            _checkpoint("pointer-written")
            os.replace(pointer, self.root / "CURRENT")
            _fsync_dir(self.root)
            _checkpoint("switched")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._collect(keep)
        return Snapshot(manifest, list(chunks), vectors, index, bm25)

    def _collect(self, keep: int) -> None:
        """Remove leftovers of crashed builds and all but the newest `keep` snapshots."""
        live = self.current_id()
        done = sorted(
            (p for p in self.snapshots.iterdir() if p.is_dir() and not p.name.endswith(".tmp")),
            key=lambda p: p.name,
        )
        for p in done[:-keep]:
            if p.name != live:
                shutil.rmtree(p, ignore_errors=True)
        for p in self.snapshots.glob("*.tmp"):  # under the writer lock: only crashed builds leave these
            shutil.rmtree(p, ignore_errors=True)


def _write_chunks(path: Path, chunks: Sequence[Chunk]) -> None:
    con = sqlite3.connect(path)
    try:
        # no journal and no syncs: the file is new, and the whole snapshot is fsynced once,
        # before it can become live
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute(
            "CREATE TABLE chunks (row INTEGER PRIMARY KEY, id TEXT NOT NULL, note TEXT NOT NULL, "
            "title TEXT NOT NULL, heading TEXT NOT NULL, start_line INTEGER NOT NULL, "
            "end_line INTEGER NOT NULL, text TEXT NOT NULL, hash TEXT NOT NULL)"
        )
        con.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (i, c.id, c.note, c.title, c.heading, c.start_line, c.end_line, c.text, c.hash)
                for i, c in enumerate(chunks)
            ],
        )
        con.execute("CREATE INDEX chunks_note ON chunks(note)")
        con.commit()
    finally:
        con.close()


def _read_chunks(path: Path) -> list[Chunk]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT id, note, title, heading, start_line, end_line, text, hash FROM chunks ORDER BY row"
        ).fetchall()
    finally:
        con.close()
    return [Chunk(*row) for row in rows]


class EmbeddingCache:
    """Vectors by sha256 of the text embedded, one SQLite file per embedder.

    SQLite's journal makes each `put` all-or-nothing, so a crash loses at most the batch
    being written; the cache is only ever an optimisation.
    """

    def __init__(self, root: Path, embedder: str, dim: int):
        slug = hashlib.sha256(embedder.encode()).hexdigest()[:12]
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in embedder)[-40:]
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / f"{safe}-{slug}.sqlite"
        self.dim = dim
        self._con = sqlite3.connect(self.path, check_same_thread=False)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("CREATE TABLE IF NOT EXISTS vectors (hash TEXT PRIMARY KEY, vec BLOB NOT NULL)")

    def get_many(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        want = list(dict.fromkeys(hashes))
        for i in range(0, len(want), 500):
            part = want[i : i + 500]
            q = f"SELECT hash, vec FROM vectors WHERE hash IN ({','.join('?' * len(part))})"
            for h, blob in self._con.execute(q, part):
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.shape == (self.dim,):
                    out[h] = vec
        return out

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        with self._con:
            self._con.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                [(h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in items.items()],
            )

    def close(self) -> None:
        self._con.close()


def chunk_embed_texts(chunks: Sequence[Chunk]) -> list[str]:
    return [embed_text(c.title, c.heading, c.text) for c in chunks]
