"""`RagService`: the one place the pipeline is assembled; the CLI and the app are thin.

It owns the live snapshot. A request takes the snapshot reference once and uses it to the
end, and a rebuild replaces the reference only after the new snapshot is complete on disk
(the indexer hands over the one it built in memory), so no request ever sees a mix of two
indexes. One rebuild runs at a time; a second one asked for meanwhile gets
`RebuildInProgress` (HTTP 409).
Deliberately absent: caching answers (questions rarely repeat; retrieval is fast).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .chunker import ChunkerConfig, parse_note
from .embedder import Embedder, load_embedder
from .errors import BadQuestion, IndexCorrupt, IndexMismatch, IndexNotFound, NoteNotFound, RebuildInProgress
from .gate import Evidence, assess
from .generators import ABSTAIN_TEXT, Answer, Generator, Registry, citation_from_hit, default_registry
from .indexer import NOTE_SUFFIXES, IndexReport, Progress, build_index, scan_notes
from .retriever import Hit, Mode, Retriever
from .settings import Settings
from .store import IndexStore, Snapshot

__all__ = ["RagService"]


class RagService:
    def __init__(self, settings: Settings, embedder: Embedder | None = None, registry: Registry | None = None):
        self.settings = settings
        self.store = IndexStore(settings.index_dir)
        self.registry = registry or default_registry()
        self._embedder = embedder
        self._snapshot: Snapshot | None = None
        self._generators: dict[str, Generator] = {}
        self._load_lock = threading.Lock()
        self._rebuild_lock = threading.Lock()
        self.last_report: IndexReport | None = None

    # -- components ------------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(self.settings.embedder, self.settings.embed_batch_size)
        return self._embedder

    @property
    def snapshot(self) -> Snapshot:
        """The live snapshot, loaded on first use (raises if there is none or it is unusable)."""
        snap = self._snapshot
        if snap is None:
            with self._load_lock:
                if self._snapshot is None:
                    self._snapshot = self.store.load(self.embedder.name, self.embedder.dim)
                snap = self._snapshot
        return snap

    def generator(self, name: str | None = None) -> Generator:
        name = name or self.settings.generator
        info = self.registry.info(name)  # UnknownGenerator lists the valid names
        gen = self._generators.get(name)
        if gen is None:
            gen = self._generators[name] = info.factory(self.settings)
        return gen

    def retriever(self, snapshot: Snapshot | None = None) -> Retriever:
        s = self.settings
        return Retriever(
            snapshot or self.snapshot, self.embedder, s.candidates, s.rrf_k, (s.dense_weight, s.bm25_weight)
        )

    # -- indexing --------------------------------------------------------------------------

    def index(self, full: bool = False, use_cache: bool = True, progress: Progress | None = None) -> IndexReport:
        """Bring the index up to date with the notes and swap the new snapshot in."""
        if not self._rebuild_lock.acquire(blocking=False):
            raise RebuildInProgress("an index rebuild is already running; try again when it ends")
        try:
            config = ChunkerConfig(self.settings.chunk_tokens, self.settings.chunk_overlap)
            report, fresh = build_index(
                self.settings.notes_dir,
                self.store,
                self.embedder,
                config,
                full=full,
                use_cache=use_cache,
                live=self._snapshot,
                progress=progress,
            )
            if self._snapshot is not None and fresh is not self._snapshot:
                fresh.bm25.scores([])  # serving: build its query view now, not in the first request
            self._snapshot = fresh  # one reference swap: readers see old or new, never a mix
            self.last_report = report
            return report
        finally:
            self._rebuild_lock.release()

    @property
    def rebuilding(self) -> bool:
        return self._rebuild_lock.locked()

    def ensure_index(self, progress: Progress | None = None) -> IndexReport | None:
        """Build or update the index when it is missing, stale or unusable (for `rag serve`)."""
        try:
            snap = self.snapshot
        except (IndexNotFound, IndexMismatch, IndexCorrupt):
            return self.index(full=True, progress=progress)
        notes, _ = scan_notes(self.settings.notes_dir)
        current = {p: hashlib.sha256(d).hexdigest() for p, d in notes.items()}
        if current != snap.manifest.notes:
            return self.index(progress=progress)
        return None

    # -- asking ----------------------------------------------------------------------------

    def check_question(self, question: str) -> str:
        q = (question or "").strip()
        if not q:
            raise BadQuestion("the question is empty: ask something, e.g. 'What is DPO?'")
        limit = self.settings.max_question_chars
        if len(q) > limit:
            raise BadQuestion(f"the question has {len(q)} characters; the limit is {limit} (RAG_MAX_QUESTION_CHARS)")
        return q

    def check_k(self, k: int | None) -> int:
        k = self.settings.top_k if k is None else k
        if not 1 <= k <= 50:
            raise BadQuestion(f"k must be between 1 and 50, got {k}")
        return k

    def search(self, query: str, k: int | None = None, mode: Mode = "hybrid") -> list[Hit]:
        query = self.check_question(query)
        return self.retriever().search(query, self.check_k(k), mode)

    def _prepare(self, question: str, k: int | None, generator: str | None):
        q = self.check_question(question)
        k = self.check_k(k)
        gen = self.generator(generator)
        snap = self.snapshot  # taken once: this request uses this snapshot to the end
        t0 = time.perf_counter()
        hits = self.retriever(snap).search(q, k)
        evidence = assess(q, hits, snap.df, len(snap.chunks), snap.words)
        return q, gen, hits, evidence, (time.perf_counter() - t0) * 1000

    def ask(self, question: str, k: int | None = None, generator: str | None = None) -> Answer:
        return self.ask_with_hits(question, k, generator)[0]

    def ask_with_hits(self, question: str, k: int | None = None, generator: str | None = None) -> tuple[Answer, list[Hit]]:
        """The answer and the ranked hits it was written from (before the gate): for `rag eval`."""
        t_start = time.perf_counter()
        q, gen, hits, evidence, retrieve_ms = self._prepare(question, k, generator)
        t1 = time.perf_counter()
        if evidence.score < self.settings.abstain_threshold or not hits:
            answer = self.abstain(q, gen.name, hits, evidence)
        else:
            answer = gen.generate(q, hits, evidence)
        answer.evidence = evidence.score
        answer.timings_ms = {
            "retrieve": round(retrieve_ms, 2),
            "generate": round((time.perf_counter() - t1) * 1000, 2),
            "total": round((time.perf_counter() - t_start) * 1000, 2),
        }
        return answer, hits

    def ask_stream(self, question: str, k: int | None = None, generator: str | None = None) -> Iterator[dict]:
        """Events for streaming: citations first, then text pieces, then the final answer."""
        t_start = time.perf_counter()
        q, gen, hits, evidence, retrieve_ms = self._prepare(question, k, generator)
        t1 = time.perf_counter()
        if evidence.score < self.settings.abstain_threshold or not hits:
            final = self.abstain(q, gen.name, hits, evidence)
            yield {"event": "citations", "data": [c.model_dump() for c in final.citations]}
            yield {"event": "delta", "data": final.answer}
        elif gen.name == "extractive":  # written at once: its own numbering from the first event on
            final = gen.generate(q, hits, evidence)
            yield {"event": "citations", "data": [c.model_dump() for c in final.citations]}
            yield {"event": "delta", "data": final.answer}
        else:  # an LLM cites passages by their rank in the prompt until `done` renumbers them
            yield {"event": "citations", "data": [citation_from_hit(i + 1, h).model_dump() for i, h in enumerate(hits)]}
            final = None
            for piece in gen.stream(q, hits, evidence):
                if isinstance(piece, Answer):
                    final = piece
                else:
                    yield {"event": "delta", "data": piece}
            assert final is not None, "a generator's stream must end with its Answer"
        final.evidence = evidence.score
        final.timings_ms = {
            "retrieve": round(retrieve_ms, 2),
            "generate": round((time.perf_counter() - t1) * 1000, 2),
            "total": round((time.perf_counter() - t_start) * 1000, 2),
        }
        yield {"event": "done", "data": final.model_dump()}

    @staticmethod
    def abstain(question: str, generator: str, hits: list[Hit], evidence: Evidence) -> Answer:
        """The honest answer: the notes don't say; the nearest passages are offered."""
        return Answer(
            question=question,
            answer=ABSTAIN_TEXT,
            abstained=True,
            generator=generator,
            citations=[citation_from_hit(i + 1, h) for i, h in enumerate(hits[:3])],
            grounded=True,
            evidence=evidence.score,
        )

    # -- notes and health ------------------------------------------------------------------

    def note_path(self, rel: str) -> Path:
        """The file of a note, only inside the notes folder (else NoteNotFound)."""
        root = Path(self.settings.notes_dir).resolve()
        try:
            path = (root / rel).resolve()
        except (OSError, ValueError):
            raise NoteNotFound(f"no note {rel!r}") from None
        if (
            rel.startswith(("/", "\\"))
            or not path.is_relative_to(root)
            or path.suffix.lower() not in NOTE_SUFFIXES
            or not path.is_file()
        ):
            raise NoteNotFound(f"no note {rel!r} in the notes folder")
        return path

    def read_note(self, rel: str) -> dict:
        path = self.note_path(rel)
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            raise NoteNotFound(f"note {rel!r} is not readable UTF-8 text") from None
        note = parse_note(rel, text)
        return {"note": rel, "title": note.title, "tags": list(note.tags), "text": text, "lines": len(note.lines)}

    def health(self) -> dict:
        snap = self.snapshot
        m = snap.manifest
        return {
            "status": "ok",
            "notes": len(m.notes),
            "chunks": m.chunks,
            "embedder": m.embedder,
            "built_at": m.built_at,
            "snapshot": m.snapshot,
            "generator": self.settings.generator,
            "rebuilding": self.rebuilding,
            "warnings": m.warnings,
        }
