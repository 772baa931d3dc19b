"""The `anthropic` generator, tested at the HTTP boundary with recorded responses.

The Anthropic API cannot be reached from here. The responses in tests/data/anthropic/ were
written by hand after Anthropic's documented wire format (they are not captures of real
traffic) and are served from a local HTTP server on 127.0.0.1 to the real, official
`anthropic` client, so what is tested is our request, the client's parsing, retries and
streaming, and our post-check and fallback. Our index, retriever and service are real
(hashing embedder).
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

pytest.importorskip("anthropic", reason="the anthropic extra is not installed: pip install 'rag[anthropic]'")

from rag.errors import GeneratorUnavailable
from rag.generators.prompt import SYSTEM_PROMPT
from rag.service import RagService

from .conftest import hash_settings
from .stub_server import StubServer, json_reply, sse_reply

DATA = Path(__file__).parent / "data" / "anthropic"
QUESTION = "What does DPO train on?"
FAST_RETRY = {"retry-after-ms": "10", "request-id": "req_011CTestRecorded"}


def make_service(notes_dir: Path, tmp_path: Path, url: str, **kw) -> RagService:
    kw.setdefault("llm_retries", 2)
    kw.setdefault("llm_timeout", 10.0)
    svc = RagService(
        hash_settings(
            notes_dir, tmp_path / "index", generator="anthropic", anthropic_api_key="sk-ant-test",
            anthropic_base_url=url, anthropic_model="claude-3-5-haiku-latest", **kw,
        )
    )
    svc.index()
    return svc


def prompt_passages(request: dict) -> dict[int, str]:
    """Passage number -> text, from the user message the client sent."""
    user = request["json"]["messages"][-1]["content"]
    return {int(n): t.strip() for n, t in re.findall(r'<passage id="(\d+)"[^>]*>\n(.*?)\n</passage>', user, re.S)}


def test_answer_is_rewritten_and_its_citations_resolve(notes_dir, tmp_path):
    with StubServer([json_reply(DATA / "message_ok.json", **FAST_RETRY)]) as stub:
        ans = make_service(notes_dir, tmp_path, stub.url).ask(QUESTION)
    (req,) = stub.requests
    assert req["path"] == "/v1/messages"
    h = req["headers"]  # older clients send x-api-key, newer ones a bearer token
    assert "sk-ant-test" in (h.get("x-api-key"), h.get("authorization", "").removeprefix("Bearer "))
    assert "anthropic-version" in h
    body = req["json"]
    assert body["system"] == SYSTEM_PROMPT and body["model"] == "claude-3-5-haiku-latest"
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]  # worked example, then the ask
    assert QUESTION in body["messages"][-1]["content"]
    passages = prompt_passages(req)
    assert ans.generator == "anthropic" and not ans.fallback and ans.grounded and not ans.abstained
    # the recorded reply cites [1] twice and [7], which no passage has: removed and counted
    assert "[7]" not in ans.answer and re.findall(r"\[(\d+)\]", ans.answer) == ["1", "1"]
    assert any("removed 1 citation marker" in w for w in ans.warnings)
    assert [c.n for c in ans.citations] == [1]
    assert ans.citations[0].text.strip() == passages[1]
    note = (notes_dir / ans.citations[0].note).read_text().splitlines()
    assert ans.citations[0].text in "\n".join(note[ans.citations[0].start_line - 1 : ans.citations[0].end_line])


def test_streaming_events_become_text_pieces_and_the_same_answer(notes_dir, tmp_path):
    with StubServer([sse_reply(DATA / "stream_ok.sse")]) as stub:
        events = list(make_service(notes_dir, tmp_path, stub.url).ask_stream(QUESTION))
    assert stub.requests[0]["json"]["stream"] is True
    kinds = [e["event"] for e in events]
    assert kinds[0] == "citations" and kinds[-1] == "done" and kinds.count("delta") >= 2
    final = events[-1]["data"]
    streamed = "".join(e["data"] for e in events if e["event"] == "delta")
    assert streamed == final["answer"]  # the marker split over two deltas ("[" + "1]") arrived whole
    assert final["answer"].startswith("DPO trains the model directly on preference pairs")
    assert "[7]" not in streamed and [c["n"] for c in final["citations"]] == [1]
    assert not final["fallback"]


def test_an_error_event_midway_through_a_stream_falls_back(notes_dir, tmp_path):
    with StubServer([sse_reply(DATA / "stream_error_midway.sse")]) as stub:
        events = list(make_service(notes_dir, tmp_path, stub.url).ask_stream(QUESTION))
    final = events[-1]["data"]
    assert final["fallback"] is True and final["generator"] == "anthropic"
    assert any("overloaded_error" in w and "Overloaded" in w for w in final["warnings"])
    assert final["citations"] and "[1]" in final["answer"]  # the extractive answer, cited


def test_overloaded_529_is_retried_by_the_client_then_succeeds(notes_dir, tmp_path):
    script = [json_reply(DATA / "error_overloaded_529.json", 529, **FAST_RETRY), json_reply(DATA / "message_ok.json")]
    with StubServer(script) as stub:
        ans = make_service(notes_dir, tmp_path, stub.url).ask(QUESTION)
    assert len(stub.requests) == 2
    assert not ans.fallback and ans.citations


@pytest.mark.parametrize(
    "recorded, status, fragment",
    [("error_rate_limit_429.json", 429, "rate_limit_error"), ("error_api_500.json", 500, "api_error")],
)
def test_persistent_errors_exhaust_bounded_retries_then_fall_back(notes_dir, tmp_path, recorded, status, fragment):
    with StubServer([json_reply(DATA / recorded, status, **FAST_RETRY)]) as stub:
        ans = make_service(notes_dir, tmp_path, stub.url, llm_retries=2).ask(QUESTION)
    assert len(stub.requests) == 3  # the first try and two retries, no more
    assert ans.fallback and ans.grounded and ans.citations
    (reason,) = [w for w in ans.warnings if "anthropic failed" in w]
    assert f"HTTP {status}" in reason and fragment in reason and "after 2 retries" in reason


def test_bad_key_is_not_retried_and_says_which_setting(notes_dir, tmp_path):
    with StubServer([json_reply(DATA / "error_auth_401.json", 401)]) as stub:
        ans = make_service(notes_dir, tmp_path, stub.url).ask(QUESTION)
    assert len(stub.requests) == 1
    assert ans.fallback and any("RAG_ANTHROPIC_API_KEY" in w for w in ans.warnings)


def test_malformed_reply_falls_back(notes_dir, tmp_path):
    with StubServer([json_reply(DATA / "message_malformed.json")]) as stub:
        ans = make_service(notes_dir, tmp_path, stub.url).ask(QUESTION)
    assert ans.fallback and any("malformed" in w for w in ans.warnings)


def test_recorded_abstention_sets_abstained(notes_dir, tmp_path):
    with StubServer([json_reply(DATA / "message_abstain.json")]) as stub:
        ans = make_service(notes_dir, tmp_path, stub.url).ask(QUESTION)
    assert ans.abstained and ans.answer == "The notes don't cover this." and not ans.fallback


def test_uncited_reply_is_replaced_by_the_extractive_answer(notes_dir, tmp_path):
    with StubServer([json_reply(DATA / "message_uncited.json")]) as stub:
        ans = make_service(notes_dir, tmp_path, stub.url).ask(QUESTION)
    assert ans.fallback and "popular alignment method" not in ans.answer and ans.citations
    assert any("cited no passage" in w for w in ans.warnings)


def test_timeout_and_refused_connection_fall_back(notes_dir, tmp_path):
    with StubServer([json_reply(DATA / "message_ok.json", delay=3.0)]) as stub:
        ans = make_service(notes_dir, tmp_path, stub.url, llm_timeout=0.5, llm_retries=0).ask(QUESTION)
    assert ans.fallback and any("timed out" in w for w in ans.warnings)

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ans = make_service(notes_dir, tmp_path / "b", f"http://127.0.0.1:{port}", llm_retries=0).ask(QUESTION)
    assert ans.fallback and any("could not connect" in w for w in ans.warnings)


def test_missing_key_is_a_clear_error_not_a_fallback(notes_dir, tmp_path):
    svc = RagService(hash_settings(notes_dir, tmp_path / "index"))
    svc.index()
    with pytest.raises(GeneratorUnavailable, match="RAG_ANTHROPIC_API_KEY"):
        svc.ask(QUESTION, generator="anthropic")
