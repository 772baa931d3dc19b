"""The evidence gate: is what was retrieved strong enough to answer from?

The score mixes two signals, each in [0, 1]:
- `dense`: the best cosine between the question and a retrieved chunk (meaning);
- `coverage`: the share of the question's terms, weighted by IDF, that the best few
  chunks contain (specifics: names, numbers, rare words);
and subtracts a penalty for every specific term of the question (a word with a digit, or
a capitalised word not at the start) that appears nowhere in the notes: "When was GPT-7
released?" is near the topic, but no note says "GPT-7". The service abstains when the
score is below `abstain_threshold`, calibrated by `rag eval` on a documented split.
Deliberately absent: a trained classifier; the gate is three numbers anyone can read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from .chunker import embed_text
from .retriever import Hit
from .text import STOPWORDS, terms

__all__ = ["Evidence", "assess", "DENSE_WEIGHT", "MISSING_PENALTY"]

DENSE_WEIGHT = 0.6  # share of the score from the dense cosine; the rest is term coverage
MISSING_PENALTY = 0.15  # per specific question term found nowhere in the notes
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-_]*")


@dataclass
class Evidence:
    score: float
    dense: float
    coverage: float
    missing: list[str] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)  # question term -> IDF


def idf(df: int, n: int) -> float:
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


def specific_words(question: str) -> list[str]:
    """Words that name something: a digit inside, or capitalised mid-sentence (lower-cased).

    >>> specific_words("When did OpenAI release GPT-7?")
    ['openai', 'gpt-7']
    """
    out: list[str] = []
    for i, word in enumerate(_WORD.findall(question)):
        word = word.strip(".-_")
        if not word or word.lower() in STOPWORDS:
            continue
        if any(ch.isdigit() for ch in word) or (i > 0 and word[0].isupper()):
            out.append(word.lower())
    return out


def assess(
    question: str, hits: list[Hit], df: dict[str, int], n_chunks: int, words: frozenset[str] = frozenset(), top: int = 3
) -> Evidence:
    """Score the evidence for answering `question` from `hits`.

    Args:
        df: document frequency of index terms in the snapshot.
        n_chunks: number of chunks in the snapshot.
        words: every word of the notes, compounds whole (`Snapshot.words`): a specific
            word of the question missing from it is penalised.
    """
    q_terms = list(dict.fromkeys(terms(question)))
    weights = {t: idf(df.get(t, 0), max(n_chunks, 1)) for t in q_terms}
    missing = sorted({w for w in specific_words(question) if w not in words}) if words else []
    if not hits:
        return Evidence(0.0, 0.0, 0.0, missing, weights)
    dense = max(0.0, max(h.dense for h in hits))
    present: set[str] = set()
    for h in hits[:top]:
        present.update(terms(embed_text(h.chunk.title, h.chunk.heading, h.chunk.text)))
    total = sum(weights.values())
    coverage = sum(w for t, w in weights.items() if t in present) / total if total else 0.0
    score = DENSE_WEIGHT * dense + (1 - DENSE_WEIGHT) * coverage - MISSING_PENALTY * len(missing)
    return Evidence(round(score, 4), round(dense, 4), round(coverage, 4), missing, weights)
