"""Lexical text handling shared by BM25, the extractive generator and the evaluation.

`terms()` lower-cases, splits on non-alphanumerics, folds British -ise/-isation spellings
to -ize/-ization, drops English stop words and Snowball-stems what is left.
`sentences()` splits a passage into sentences with their 1-based line spans, keeping each
sentence's text verbatim from the passage (markdown list, quote and table markers trimmed
from the ends only), so a quoted sentence is always a substring of its lines.
Deliberately simple: no language detection, no lemmatisation, no abbreviation list
beyond a handful of common ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["terms", "sentences", "Sentence", "STOPWORDS", "normalize_ws"]

_TOKEN = re.compile(r"[a-z0-9]+")
_BRITISH = re.compile(r"(?<=[a-z]{3})is(ation|ations|e|es|ed|ing|er|ers)$")

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing done down during each either else
    etc few for from further get gets got had has have having he her here hers herself him himself
    his how i if in into is it its itself just let me more most much must my myself no nor not now
    of off on once only or other our ours ourselves out over own per same she should so some such
    than that the their theirs them themselves then there these they this those through to too
    under until up upon us very via was we were what when where which while who whom whose why will
    with within without would yes yet you your yours yourself yourselves
    explain describe tell give list mean means meaning name named kind kinds way ways thing things
    use used using one two many say says said please know""".split()
)


@lru_cache(maxsize=1)
def _stem():
    try:
        import Stemmer

        return Stemmer.Stemmer("english").stemWord
    except ImportError:  # PyStemmer is a dependency; without it (a broken install) strip suffixes crudely
        return lambda w: re.sub(r"(ing|ed|es|s)$", "", w) if len(w) > 4 else w


@lru_cache(maxsize=65536)
def _term(word: str) -> str:
    return _stem()(_BRITISH.sub(r"iz\1", word))


def terms(text: str, keep_stopwords: bool = False) -> list[str]:
    """Index terms of a text, in order, duplicates kept.

    >>> terms("What is Direct Preference Optimisation?")
    ['direct', 'prefer', 'optim']
    """
    words = _TOKEN.findall(text.lower())
    return [_term(w) for w in words if keep_stopwords or w not in STOPWORDS]


def normalize_ws(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class Sentence:
    text: str
    start_line: int  # 1-based, in the note
    end_line: int
    item: bool = False  # starts a list item or table row


_ABBREV = re.compile(r"\b(?:e\.g|i\.e|etc|vs|cf|al|approx|Fig|Eq|Dr|Mr|Ms|No)\.$", re.I)
_END = re.compile(r"[.!?][\"')\]*_]*(?=\s|$)")
_EDGE = re.compile(r"^\s*(?:[-*+]\s+|\d+[.)]\s+|>\s*|#+\s+|\|\s*)+|\s*\|?\s*$")
_HAS_LETTERS = re.compile(r"[A-Za-z]{2}")
_ITEM = re.compile(r"^\s*(?:[-*+]\s+|\d+[.)]\s+|\|)")
_MARKER = re.compile(r"^\s*(?:[-*+]\s+|\d+[.)]\s+|>\s*|#+\s+|\|)")


def sentences(text: str, start_line: int) -> list[Sentence]:
    """Sentences of a chunk's text whose first line is `start_line` in the note.

    Lines are units of their own when they look like list items, table rows, headings or
    code, so a bullet never runs into the next one.
    """
    out: list[Sentence] = []
    buf: list[tuple[int, str]] = []  # (line, text) pieces of the sentence being built
    state = {"item": False}  # does the sentence being built start a list item or table row?

    def flush() -> None:
        if buf:
            raw = " ".join(t for _, t in buf)
            clean = _EDGE.sub("", raw).strip()
            if _HAS_LETTERS.search(clean):
                out.append(Sentence(clean, buf[0][0], buf[-1][0], state["item"]))
            buf.clear()
        state["item"] = False

    in_fence = False
    for offset, line in enumerate(text.split("\n")):
        lineno = start_line + offset
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            flush()
            in_fence = not in_fence
            continue
        if in_fence or not stripped or set(stripped) <= set("|-: "):
            flush()
            continue
        pos = 0
        marker = _MARKER.match(line)
        if marker:  # a new list item, quote, heading or table row starts a new sentence
            flush()
            state["item"] = bool(_ITEM.match(line))
            pos = marker.end()  # the marker itself ("1. ", "- ") is no sentence end
        for m in _END.finditer(line, pos):
            piece = line[pos : m.end()]
            if _ABBREV.search(piece.rstrip("\"')]*_")):
                continue
            buf.append((lineno, piece.strip()))
            flush()
            pos = m.end()
        rest = line[pos:].strip()
        if rest:
            buf.append((lineno, rest))
        if stripped.startswith("|"):
            flush()
    flush()
    return out
