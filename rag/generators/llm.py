"""`LLMGenerator`: the grounding every model-written answer goes through, whatever the model.

A `ChatBackend` only turns chat messages into text (`complete`) or text pieces
(`stream`) and raises `GenerationFailed` when it cannot; the backends are the local GGUF
model (`llama`), any OpenAI-compatible server (`openai`) and Claude (`anthropic`).
`LLMGenerator` does the rest, the same way for all of them:

1. packs the best passages into the token budget and builds the prompt (`prompt.py`);
2. checks the reply sentence by sentence: a sentence that names something (a number, a
   capitalised name) found neither in the passages it cites nor in the question is
   dropped, with a warning; small models make up years and authors;
3. rewrites the `[n]` markers of what is left: unknown ones are removed and counted (a
   warning), the rest renumbered 1..m in order of first appearance, and `citations` lists
   exactly the cited passages, so every marker resolves to `citations[].n`;
4. a reply whose first sentence says the passages do not answer becomes the honest
   abstention (`abstained: true`, the nearest passages as citations);
5. a reply that cites nothing is, by default, replaced by the extractive answer
   (`fallback: true`, the reason in `warnings`): an uncited model answer cannot be
   checked against the notes. With `RAG_LLM_UNCITED=flag` it is kept instead, with
   `grounded: false` and no citations. A reply of nothing but markers, or one that only
   restates the question ("X is an X [1]"), is always replaced;
6. a failed call (timeout, refused connection, 429, 5xx, malformed reply, after the
   client's bounded retries) gives the extractive answer with `fallback: true` and the
   reason in `warnings`; it never becomes an HTTP 500.

Streaming passes the text on a sentence at a time, once checked, and holds it back until
the reply has cited a passage; so an uncited or abstaining reply streams as its
replacement, and the streamed pieces join up to the final answer's text. The exceptions:
a model that abstains after citing, and a stream that breaks off midway; the final
`Answer` is authoritative.
Deliberately absent: retries of our own (the HTTP clients do theirs) and answer caching.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Protocol

from ..errors import GenerationFailed
from ..gate import Evidence
from ..retriever import Hit
from ..settings import Settings
from ..text import terms
from .base import ABSTAIN_TEXT, Answer, citation_from_hit
from .extractive import ExtractiveGenerator
from .prompt import (
    MARKER_RUN,
    MarkerRewriter,
    Passage,
    Segmenter,
    build_messages,
    cited_numbers,
    is_abstention,
    pack,
    unsupported,
)

__all__ = ["ChatBackend", "LLMGenerator"]

log = logging.getLogger("rag.generators")

Messages = list[dict[str, str]]


class ChatBackend(Protocol):
    def complete(self, messages: Messages, max_tokens: int) -> str:
        """The whole reply; raises `GenerationFailed`."""
        ...

    def stream(self, messages: Messages, max_tokens: int) -> Iterator[str]:
        """The reply in pieces as they are written; raises `GenerationFailed`."""
        ...


class LLMGenerator:
    def __init__(
        self, name: str, backend: ChatBackend, settings: Settings, budget: tuple[int, str] | None = None
    ):
        """`budget`: (passage tokens, the setting it comes from), if not RAG_LLM_CONTEXT_TOKENS."""
        self.name = name
        self.backend = backend
        self.budget, self.budget_setting = budget or (settings.llm_context_tokens, "RAG_LLM_CONTEXT_TOKENS")
        self.max_tokens = settings.llm_max_tokens
        self.uncited = settings.llm_uncited
        self.extractive = ExtractiveGenerator(max_sentences=settings.max_sentences)

    def generate(self, question: str, hits: list[Hit], evidence: Evidence) -> Answer:
        def whole(messages: Messages) -> Iterator[str]:
            yield self.backend.complete(messages, self.max_tokens)

        *_, answer = self._write(question, hits, evidence, whole)
        return answer

    def stream(self, question: str, hits: list[Hit], evidence: Evidence) -> Iterator[str | Answer]:
        return self._write(question, hits, evidence, lambda m: self.backend.stream(m, self.max_tokens))

    def _write(self, question: str, hits: list[Hit], evidence: Evidence, reply) -> Iterator[str | Answer]:
        """Text pieces fit to show, then the final `Answer` (the one path for both modes)."""
        passages = pack(hits, self.budget)
        if not passages:
            yield from self._whole(self._fallback(question, hits, evidence, self._no_room()))
            return
        check = _Check(question, passages)
        held: list[str] = []  # checked text not shown yet: nothing shows before the first citation
        shown: list[str] = []

        def show(out: str) -> Iterator[str]:
            if not out:
                return
            if not shown and not check.rw.order:
                held.append(out)
                return
            text = "".join(held) + out
            held.clear()
            if not shown:
                text = text.lstrip()
            if text:
                shown.append(text)
                yield text

        try:
            for piece in reply(build_messages(question, passages)):
                for out in check.feed(piece):
                    yield from show(out)
        except GenerationFailed as exc:
            reason = f"{self.name} failed: {exc}"
            if shown:
                reason += f" (after {sum(map(len, shown))} characters had been streamed)"
            yield from self._whole(self._fallback(question, hits, evidence, reason), show=not shown)
            return
        for out in check.close():
            yield from show(out)
        text = ("".join(shown) + "".join(held)).strip()
        answer = self._finish(question, text, check, hits, evidence)
        if shown:  # (after a late abstention or fallback the final answer differs: it is authoritative)
            yield answer
        else:
            yield from self._whole(answer)

    def _finish(self, question: str, text: str, check: _Check, hits: list[Hit], evidence: Evidence) -> Answer:
        warnings = check.warnings()
        if is_abstention(check.raw):
            return Answer(
                question=question,
                answer=ABSTAIN_TEXT,
                abstained=True,
                generator=self.name,
                citations=[citation_from_hit(i + 1, h) for i, h in enumerate(hits[:3])],
                warnings=warnings,
                evidence=evidence.score,
            )
        if not check.raw.strip():
            return self._fallback(question, hits, evidence, f"{self.name} returned an empty answer")
        if not check.rw.order and (self.uncited == "extractive" or not _has_words(text)):
            why = "cited no passage" if not check.dropped else "had no sentence its passages support"
            return self._fallback(
                question, hits, evidence, f"{self.name}'s answer {why}; the extractive answer replaced it", warnings
            )
        if not check.rw.order:
            warnings.append(f"{self.name}'s answer cites no passage: it is not grounded in the notes")
            return Answer(
                question=question, answer=text, generator=self.name, grounded=False, warnings=warnings, evidence=evidence.score
            )
        if not _has_words(text):  # nothing but markers: "[1][2]"
            return self._fallback(question, hits, evidence, f"{self.name}'s answer held only citation markers", warnings)
        if len(set(terms(MARKER_RUN.sub(" ", text))) - set(terms(question))) < 2:
            # "A foundation model is a foundation model [1]": cited, true, and no answer
            return self._fallback(question, hits, evidence, f"{self.name}'s answer only restated the question", warnings)
        by_number = {p.n: p for p in check.passages}
        citations = [citation_from_hit(i + 1, by_number[n].hit) for i, n in enumerate(check.rw.order)]
        return Answer(
            question=question, answer=text, generator=self.name, citations=citations, warnings=warnings, evidence=evidence.score
        )

    def _fallback(
        self, question: str, hits: list[Hit], evidence: Evidence, reason: str, warnings: list[str] | None = None
    ) -> Answer:
        log.info("%s", reason)  # the answer carries it in `warnings`; the CLI and app show it
        answer = self.extractive.generate(question, hits, evidence)
        answer.generator = self.name
        answer.fallback = True
        answer.warnings = [*answer.warnings, *(warnings or []), reason]
        return answer

    def _no_room(self) -> str:
        return f"no passage fits the LLM context budget of {self.budget} tokens ({self.budget_setting})"

    @staticmethod
    def _whole(answer: Answer, show: bool = True) -> Iterator[str | Answer]:
        if show and answer.answer:
            yield answer.answer
        yield answer


class _Check:
    """The post-check of one reply, fed in pieces: sentence by sentence, drop those naming
    what their passages do not hold, then rewrite the markers of the rest."""

    def __init__(self, question: str, passages: list[Passage]):
        self.question = question
        self.passages = passages
        self.rw = MarkerRewriter(len(passages))
        self.segmenter = Segmenter()
        self.raw = ""  # the reply as written, for the abstention test
        self.dropped: list[list[str]] = []  # per dropped sentence: the words not in its passages
        c = [p.hit.chunk for p in passages]
        self._sources = [f"{x.title}\n{x.heading}\n{x.text}" for x in c]  # passage n -> sources[n - 1]

    def _keep(self, segments: list[str]) -> Iterator[str]:
        for seg in segments:
            cited = cited_numbers(seg, len(self.passages))
            sources = [self._sources[n - 1] for n in cited] if cited else self._sources
            missing = unsupported(seg, sources, self.question)
            if missing:
                self.dropped.append(missing)
                continue
            yield self.rw.feed(seg)

    def feed(self, piece: str) -> Iterator[str]:
        self.raw += piece
        return self._keep(self.segmenter.feed(piece))

    def close(self) -> Iterator[str]:
        yield from self._keep(self.segmenter.close())
        yield self.rw.close()

    def warnings(self) -> list[str]:
        out = []
        if self.rw.dropped:
            out.append(f"removed {self.rw.dropped} citation marker(s) that pointed at no passage")
        if self.dropped:
            words = ", ".join(sorted({w for ws in self.dropped for w in ws}))
            out.append(
                f"dropped {len(self.dropped)} sentence(s) naming what their cited passages do not contain: {words}"
            )
        return out


def _has_words(text: str) -> bool:
    return bool(re.search(r"[A-Za-z]{2}", MARKER_RUN.sub("", text)))
