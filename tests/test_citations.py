"""Every [n] in an answer has a citation, and the cited sentence really stands in those lines."""

from __future__ import annotations

import pytest

from rag.citations import MARKER, claim_valid, claims

QUESTIONS = [
    "What does DPO train on?",
    "Who published DPO and when?",
    "What does the temperature do to the logits?",
    "How does nucleus sampling choose tokens?",
    "What are the steps of RLHF?",
    "Who named foundation models?",
]


def check_answer(notes_dir, answer: dict) -> int:
    numbers = {c["n"] for c in answer["citations"]}
    marked = claims(answer["answer"])
    assert marked, answer["answer"]
    for sentence, nums in marked:
        for n in nums:
            assert n in numbers, f"[{n}] has no citation"
            cit = next(c for c in answer["citations"] if c["n"] == n)
            assert claim_valid(notes_dir, cit, sentence), (sentence, cit["note"], cit["start_line"], cit["end_line"])
    assert {int(n) for n in MARKER.findall(answer["answer"])} == numbers  # no unused citations
    return len(marked)


@pytest.mark.parametrize("question", QUESTIONS)
def test_cited_sentences_stand_in_the_cited_lines(service, question):
    ans = service.ask(question).model_dump()
    assert not ans["abstained"]
    check_answer(service.settings.notes_dir, ans)


def test_check_catches_a_wrong_line_span(service):
    ans = service.ask("What does DPO train on?").model_dump()
    ans["citations"][0]["start_line"] = ans["citations"][0]["end_line"] = 1
    with pytest.raises(AssertionError):
        check_answer(service.settings.notes_dir, ans)


@pytest.mark.model
@pytest.mark.parametrize(
    "question",
    [
        "Who came up with the name foundation model, and in what year?",
        "What does DPO remove from the RLHF pipeline?",
        "How many experts does Mixtral route each token to?",
        "What does top-p sampling do?",
        "How much memory does the KV cache need?",
        "Why would I pick QLoRA over LoRA?",
        "What is reciprocal rank fusion?",
        "What are the three phases a foundation model goes through?",
    ],
)
def test_real_model_answers_have_valid_citations(real_service, question):
    ans = real_service.ask(question).model_dump()
    assert not ans["abstained"], ans
    check_answer(real_service.settings.notes_dir, ans)
