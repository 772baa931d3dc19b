"""The shipped notes and the QA suite: format, links, and that the suite asks only what the notes hold."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from rag.text import STOPWORDS, normalize_ws

REPO = Path(__file__).resolve().parent.parent
NOTES = REPO / "notes"
KINDS = {"factoid", "definition", "comparison", "multi-note", "unanswerable"}
NOTE_FILES = sorted(NOTES.rglob("*.md"))
CASES = [json.loads(line) for line in (REPO / "eval/qa.jsonl").read_text().splitlines() if line.strip()]


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("\n---\n", 1)[0][4:])


def note_text(rel: str) -> str:
    return (NOTES / rel).read_text(encoding="utf-8")


def test_at_least_30_notes_in_area_folders():
    assert len(NOTE_FILES) >= 30
    assert all(len(p.relative_to(NOTES).parts) == 2 for p in NOTE_FILES)
    assert len({p.parent for p in NOTE_FILES}) >= 10


@pytest.mark.parametrize("path", NOTE_FILES, ids=lambda p: str(p.relative_to(NOTES)))
def test_note_format(path):
    text = path.read_text(encoding="utf-8")
    meta = front_matter(text)
    assert isinstance(meta.get("title"), str) and meta["title"]
    assert isinstance(meta.get("tags"), list) and meta["tags"]
    assert isinstance(meta.get("related"), list)
    for rel in meta["related"]:
        assert (NOTES / rel).is_file(), f"front matter related: {rel}"
    words = len(text.split())
    assert 300 <= words <= 1200, words
    assert re.search(r"^## Related\s*$", text, re.M), "no Related section"
    related = text.split("## Related", 1)[1]
    links = re.findall(r"\]\(([^)]+\.md)\)", related)
    assert links, "Related section links nothing"
    for link in links:
        assert (path.parent / link).resolve().is_file(), f"broken link {link}"


def test_seed_facts_are_covered():
    text = normalize_ws(note_text("foundations/foundation-models.md")).lower()
    for fact in ("2021", "center for research on foundation models", "crfm", "pretraining", "instruction",
                 "rlhf", "dpo", "constitutional ai", "anthropic", "openai", "google deepmind", "meta",
                 "mistral", "amazon titan", "bedrock", "vertex ai", "open weights", "prompt"):
        assert fact in text, fact


def test_suite_shape():
    assert len(CASES) >= 150
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids))
    for c in CASES:
        assert set(c) >= {"id", "question", "answer", "notes", "facts", "kind"}, c["id"]
        assert c["kind"] in KINDS and c["question"].strip() and c["answer"].strip()
        assert isinstance(c["facts"], list) and all(isinstance(g, list) and g for g in c["facts"])
        if c["kind"] == "unanswerable":
            assert c["notes"] == [] and c["facts"] == [], c["id"]
        else:
            assert c["notes"] and c["facts"], c["id"]
    kinds = Counter(c["kind"] for c in CASES)
    assert kinds["unanswerable"] >= 25
    assert kinds["multi-note"] + kinds["comparison"] >= 25
    for c in CASES:
        if c["kind"] in ("multi-note", "comparison") and len(c["notes"]) < 2:
            assert c["kind"] == "comparison", c["id"]  # a multi-note case names two notes


@pytest.mark.parametrize("case", [c for c in CASES if c["kind"] != "unanswerable"], ids=lambda c: c["id"])
def test_gold_notes_exist_and_hold_every_fact(case):
    texts = []
    for rel in case["notes"]:
        assert (NOTES / rel).is_file(), rel
        texts.append(normalize_ws(note_text(rel)).lower())
    for group in case["facts"]:
        assert any(normalize_ws(s).lower() in t for s in group for t in texts), (case["id"], group)


def _content_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    grams = set()
    for i in range(len(words) - n + 1):
        gram = tuple(words[i : i + n])
        if sum(w not in STOPWORDS for w in gram) >= 2:  # "what is the" is not distinctive
            grams.add(gram)
    return grams


def test_at_least_half_of_the_questions_are_paraphrased():
    """A question 'shares a distinctive phrase' when it has a 3-word run, with at least two
    content words, in common with one of its gold notes."""
    answerable = [c for c in CASES if c["kind"] != "unanswerable"]
    paraphrased = 0
    for c in answerable:
        q = _content_ngrams(c["question"], 3)
        note_grams = set().union(*(_content_ngrams(note_text(r), 3) for r in c["notes"]))
        paraphrased += not (q & note_grams)
    assert paraphrased / len(answerable) >= 0.5, paraphrased / len(answerable)
