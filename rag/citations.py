"""Checking that an answer's citations are true: used by the tests and by `rag eval`.

A citation is valid when every sentence the answer attributes to it (the text before its
`[n]` marker, back to the previous marker) stands in the cited note between the cited
lines, compared with whitespace collapsed and markdown emphasis kept. Deliberately
strict: a paraphrase by an LLM is not "found", so LLM answers are checked with
`marker_valid` (every marker resolves to a real passage of the note) instead.
"""

from __future__ import annotations

import re
from pathlib import Path

from .chunker import split_lines
from .text import normalize_ws

__all__ = ["claims", "claim_valid", "marker_valid", "MARKER"]

MARKER = re.compile(r"\[(\d+)\]")


def claims(answer: str) -> list[tuple[str, list[int]]]:
    """(sentence, [marker numbers]) for each marked stretch of the answer text."""
    out: list[tuple[str, list[int]]] = []
    pos = 0
    for m in re.finditer(r"(?:\s*\[\d+\])+", answer):
        text = answer[pos : m.start()].strip()
        nums = [int(n) for n in MARKER.findall(m.group(0))]
        if text:
            out.append((text, nums))
        pos = m.end()
    return out


def _window(notes_dir: Path, note: str, start: int, end: int) -> str | None:
    path = Path(notes_dir) / note
    try:
        lines = split_lines(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None
    if not 1 <= start <= end <= len(lines):
        return None
    return normalize_ws(" ".join(lines[start - 1 : end]))


def claim_valid(notes_dir: Path, citation: dict, sentence: str) -> bool:
    """Does `sentence` stand in the cited note between the cited lines?"""
    window = _window(notes_dir, citation["note"], citation["start_line"], citation["end_line"])
    return window is not None and normalize_ws(sentence) in window


def marker_valid(notes_dir: Path, citation: dict) -> bool:
    """Does the cited passage text stand in the cited note between the cited lines?"""
    window = _window(notes_dir, citation["note"], citation["start_line"], citation["end_line"])
    return window is not None and normalize_ws(citation["text"]) in window
