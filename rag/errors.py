"""The exceptions `rag` raises on purpose, one small tree.

    RagError                     base: the CLI prints it on one line, the app maps it to JSON
    ├── ConfigError              settings that cannot work (bad path, bad value)
    ├── NotesNotFound            the notes folder is missing
    ├── IndexNotFound            no index built yet
    ├── IndexMismatch            index built with another embedder, chunker or format
    ├── IndexCorrupt             an index file is truncated, altered or unreadable
    ├── UnknownGenerator         a generator name not in the registry (lists the valid ones)
    ├── GeneratorUnavailable     a known generator whose dependency, model or key is missing
    ├── GenerationFailed         an LLM call failed after its retries
    ├── RebuildInProgress        a second rebuild was asked for while one runs
    ├── NoteNotFound             a note path outside the notes folder or missing
    └── BadQuestion              an empty, blank or over-long question

Every message says what happened and how to fix it. Third-party errors are wrapped once,
with `raise X(...) from exc`. Deliberately absent: errors for bad request bodies, which
pydantic reports at the HTTP edge.
"""

from __future__ import annotations

__all__ = [
    "RagError",
    "ConfigError",
    "NotesNotFound",
    "IndexNotFound",
    "IndexMismatch",
    "IndexCorrupt",
    "UnknownGenerator",
    "GeneratorUnavailable",
    "GenerationFailed",
    "RebuildInProgress",
    "NoteNotFound",
    "BadQuestion",
]


class RagError(Exception):
    """Base of every error `rag` raises deliberately."""

    #: HTTP status the app answers with; the CLI uses `exit_code`.
    status_code: int = 500
    exit_code: int = 1


class ConfigError(RagError):
    status_code = 500
    exit_code = 2


class NotesNotFound(RagError):
    status_code = 503
    exit_code = 2


class IndexNotFound(RagError):
    status_code = 503
    exit_code = 3


class IndexMismatch(RagError):
    status_code = 503
    exit_code = 3


class IndexCorrupt(RagError):
    status_code = 503
    exit_code = 3


class UnknownGenerator(RagError):
    status_code = 400
    exit_code = 2

    def __init__(self, name: str, valid: list[str]):
        self.name = name
        self.valid = sorted(valid)
        super().__init__(f"unknown generator {name!r}; valid generators: {', '.join(self.valid)}")


class GeneratorUnavailable(RagError):
    status_code = 400
    exit_code = 2


class GenerationFailed(RagError):
    status_code = 502
    exit_code = 4


class RebuildInProgress(RagError):
    status_code = 409
    exit_code = 5


class NoteNotFound(RagError):
    status_code = 404
    exit_code = 2


class BadQuestion(RagError):
    """An empty, blank or over-long question."""

    status_code = 422
    exit_code = 2
