"""The answer nouns and the generator interface shared by every answer writer.

`Answer` and `Citation` are pydantic models: the CLI prints them as JSON and the app uses
them as response models, so the OpenAPI schema is exact. A generator turns a question
and retrieved hits into an `Answer`; the service decides beforehand whether the evidence
is strong enough to answer at all (see `rag.gate`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from pydantic import BaseModel, Field

from ..gate import Evidence
from ..retriever import Hit

__all__ = ["Citation", "Answer", "Generator", "citation_from_hit", "ABSTAIN_TEXT"]

ABSTAIN_TEXT = "The notes don't cover this."


class Citation(BaseModel):
    n: int = Field(description="the [n] marker in the answer that refers to this passage")
    note: str = Field(description="path relative to the notes folder")
    title: str
    heading: str = Field(description='heading path, e.g. "Alignment > DPO"; empty before the first heading')
    start_line: int = Field(description="1-based, inclusive")
    end_line: int = Field(description="1-based, inclusive")
    text: str = Field(description="the passage, verbatim from those lines")
    score: float


class Answer(BaseModel):
    question: str
    answer: str
    abstained: bool = False
    generator: str
    citations: list[Citation] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    grounded: bool = Field(True, description="every claim carries a marker that points at a passage")
    fallback: bool = Field(False, description="an LLM failed and the extractive answer was used")
    warnings: list[str] = Field(default_factory=list)
    evidence: float | None = Field(None, description="the gate's evidence score (abstains below the threshold)")


def citation_from_hit(n: int, hit: Hit) -> Citation:
    c = hit.chunk
    return Citation(
        n=n,
        note=c.note,
        title=c.title,
        heading=c.heading,
        start_line=c.start_line,
        end_line=c.end_line,
        text=c.text,
        score=round(hit.score, 6),
    )


class Generator(Protocol):
    name: str

    def generate(self, question: str, hits: list[Hit], evidence: Evidence) -> Answer:
        """Write a cited answer from `hits` (best first)."""
        ...

    def stream(self, question: str, hits: list[Hit], evidence: Evidence) -> Iterator[str | Answer]:
        """Text pieces as they are written, then the final `Answer`."""
        ...
