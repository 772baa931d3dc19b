"""The offline default: answer with the notes' own sentences, each cited.

From the top passages it scores every sentence by how much of the question it covers
(IDF-weighted terms, the sentence's heading path counting a little), by its passage's
dense similarity and by its passage's rank, and answers with the best one to three that
do not repeat each other. Every answer sentence is verbatim text of the cited passage
(markdown list, quote and table markers trimmed from its ends), so it can be found again
between the citation's lines. Deliberately absent: rewriting, merging or summarising
sentences; that is what the LLM generators are for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..gate import Evidence
from ..retriever import Hit
from ..text import Sentence, sentences, terms
from .base import Answer, Citation, citation_from_hit

__all__ = ["ExtractiveGenerator", "pick_sentences"]

_CONTEXT_WEIGHT = 0.3  # question terms found only in the heading path count this much
_DENSE_WEIGHT = 0.35
_RANK_WEIGHT = 0.15
_KEEP_RATIO = 0.8  # a further sentence must score this share of the best one
_MAX_OVERLAP = 0.7  # ... and share at most this much of its terms with one already chosen
_PRONOUN_START = re.compile(r"^(?:it|its|this|these|they|that|those|such|he|she)\b", re.I)
_DEFINITION_Q = re.compile(r"^\s*(?:what(?:'s| is| are| does .* mean)|define|definition of|meaning of)\b", re.I)
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_NAVIGATION = re.compile(r"\b(?:related|see also|further reading|references|links)\b", re.I)
_LIST_ITEMS_AFTER_COLON = 4  # a sentence that introduces a list brings up to this many items
_COPULA = re.compile(r"\b(?:is|are|means|refers to|describes|denotes|stands for)\b")


def _score(
    weights: dict[str, float], total: float, s: Sentence, s_terms: set[str], ctx_terms: set[str], hit: Hit, rank: int, definition: bool
) -> float:
    lex = sum(w for t, w in weights.items() if t in s_terms) / total
    ctx = sum(w for t, w in weights.items() if t in ctx_terms and t not in s_terms) / total
    score = lex + _CONTEXT_WEIGHT * ctx + _DENSE_WEIGHT * max(hit.dense, 0.0) + _RANK_WEIGHT / (1 + rank)
    n_words = len(s.text.split())
    if n_words < 5:  # fragments: table cells, labels
        score *= 0.6
    elif n_words > 70:
        score *= 0.85
    if _PRONOUN_START.match(s.text):  # "It was introduced ..." has lost its subject
        score *= 0.85
    if definition and lex > 0 and _COPULA.search(s.text):
        score *= 1.15
    if _LINK.search(s.text) and len(_LINK.sub("", s.text).split()) < 8:  # a link list line, not prose
        score *= 0.4
    if _NAVIGATION.search(hit.chunk.heading.rsplit(" > ", 1)[-1]):
        score *= 0.3
    return score


def pick_sentences(
    question: str, hits: list[Hit], weights: dict[str, float], max_sentences: int = 3, passages: int = 5
) -> list[tuple[Sentence, int]]:
    """The best sentences as (sentence, index of its hit), best first."""
    if not weights:
        weights = {t: 1.0 for t in terms(question)}
    total = sum(weights.values()) or 1.0
    definition = bool(_DEFINITION_Q.match(question))
    scored: list[tuple[float, Sentence, int, set[str]]] = []
    for rank, hit in enumerate(hits[:passages]):
        ctx_terms = set(terms(hit.chunk.context))
        for s in sentences(hit.chunk.text, hit.chunk.start_line):
            s_terms = set(terms(s.text))
            score = _score(weights, total, s, s_terms, ctx_terms, hit, rank, definition)
            scored.append((score, s, rank, s_terms))
    by_hit: dict[int, list[Sentence]] = {}
    for _, s, rank, _ in scored:
        by_hit.setdefault(rank, []).append(s)
    scored.sort(key=lambda x: -x[0])
    chosen: list[tuple[float, Sentence, int, set[str]]] = []
    for item in scored:
        if len(chosen) >= max_sentences:
            break
        if chosen and item[0] < _KEEP_RATIO * chosen[0][0]:
            break
        if any(
            item[1].text == c[1].text or _overlap(item[3], c[3]) > _MAX_OVERLAP for c in chosen
        ):
            continue
        chosen.append(item)
    out: list[tuple[Sentence, int]] = []
    for _, s, rank, _ in chosen:
        if (s, rank) in out:
            continue
        out.append((s, rank))
        siblings = by_hit[rank]
        i = siblings.index(s)
        following = siblings[i + 1 : i + 1 + _LIST_ITEMS_AFTER_COLON]
        if not s.item and following and (s.text.rstrip().endswith(":") or following[0].item):
            # it introduces a list: the items are the answer
            for x in following if s.text.rstrip().endswith(":") else following:
                if not x.item and not s.text.rstrip().endswith(":"):
                    break
                if (x, rank) not in out:
                    out.append((x, rank))
    return out


def _overlap(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


class ExtractiveGenerator:
    name = "extractive"

    def __init__(self, max_sentences: int = 3):
        self.max_sentences = max_sentences

    def generate(self, question: str, hits: list[Hit], evidence: Evidence) -> Answer:
        picked = pick_sentences(question, hits, evidence.weights, self.max_sentences)
        numbers: dict[int, int] = {}  # hit index -> citation number
        citations: list[Citation] = []
        parts: list[str] = []
        for sentence, rank in picked:
            if rank not in numbers:
                numbers[rank] = len(numbers) + 1
                citations.append(citation_from_hit(numbers[rank], hits[rank]))
            parts.append(f"{sentence.text} [{numbers[rank]}]")
        return Answer(
            question=question,
            answer=" ".join(parts),
            generator=self.name,
            citations=citations,
            grounded=bool(parts),
            evidence=evidence.score,
        )

    def stream(self, question: str, hits: list[Hit], evidence: Evidence) -> Iterator[str | Answer]:
        answer = self.generate(question, hits, evidence)
        yield answer.answer
        yield answer
