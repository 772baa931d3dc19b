"""Watch the notes folder and re-index in the background (`rag serve --watch`).

Changes are debounced by watchfiles (RAG_WATCH_DEBOUNCE_MS), then `RagService.index()`
rebuilds and swaps the snapshot in; requests in flight finish on the snapshot they took.
If a rebuild asked for over HTTP is running, the watcher waits for it and then re-indexes,
so no change is missed. Deliberately absent: polling fallbacks for network file systems
(watchfiles' `force_polling` can be enabled with WATCHFILES_FORCE_POLLING=1).
"""

from __future__ import annotations

import logging
import threading
import time

from .errors import RagError, RebuildInProgress
from .indexer import NOTE_SUFFIXES
from .service import RagService

__all__ = ["NotesWatcher"]

log = logging.getLogger("rag.watch")


class NotesWatcher:
    def __init__(self, service: RagService):
        self.service = service
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rebuilds = 0  # completed rebuilds, for tests and /health

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rag-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _relevant(self, changes) -> bool:
        return any(str(path).lower().endswith(NOTE_SUFFIXES) for _, path in changes)

    def _run(self) -> None:
        from watchfiles import watch

        notes = self.service.settings.notes_dir
        debounce = self.service.settings.watch_debounce_ms
        try:
            for changes in watch(notes, debounce=debounce, stop_event=self._stop, raise_interrupt=False):
                if self._relevant(changes):
                    self._rebuild()
        except Exception:  # the server keeps serving the last good snapshot
            log.exception("watching %s stopped", notes)

    def _rebuild(self) -> None:
        while not self._stop.is_set():
            try:
                report = self.service.index()
            except RebuildInProgress:
                time.sleep(0.2)  # another rebuild runs: wait, then index what it may have missed
                continue
            except RagError as exc:
                log.warning("re-index failed: %s", exc)
                return
            self.rebuilds += 1
            log.warning(
                "re-indexed: %d added, %d changed, %d removed, %d renamed; %d chunks embedded in %.2f s",
                len(report.added), len(report.changed), len(report.removed), len(report.renamed),
                report.chunks_embedded, report.seconds,
            )
            return
