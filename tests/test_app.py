"""The HTTP API through the real app (TestClient), including every bad input."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from rag.app import create_app
from rag.citations import MARKER
from rag.service import RagService
from rag.settings import Settings

from .conftest import hash_settings


@pytest.fixture
def client(service):
    return TestClient(create_app(service))


def test_ask_answers_with_valid_citations(client):
    r = client.post("/ask", json={"question": "What does DPO train on?"})
    assert r.status_code == 200
    body = r.json()
    assert not body["abstained"] and body["generator"] == "extractive"
    assert body["citations"] and "[1]" in body["answer"]
    c = body["citations"][0]
    assert c["note"] == "alignment/dpo.md" and c["start_line"] <= c["end_line"]
    assert set(body["timings_ms"]) == {"retrieve", "generate", "total"}


def test_off_topic_question_abstains_with_nearest_passages(client):
    body = client.post("/ask", json={"question": "Best lasagne recipe with spinach?"}).json()
    assert body["abstained"] is True
    assert body["answer"] == "The notes don't cover this."
    assert "[" not in body["answer"]


@pytest.mark.parametrize(
    "payload, status, fragment",
    [
        ({"question": ""}, 422, "empty"),
        ({"question": "   \n\t "}, 422, "empty"),
        ({"question": "x" * 2001}, 422, "limit is 2000"),
        ({"question": "What is DPO?", "k": 0}, 422, "greater than or equal"),
        ({"question": "What is DPO?", "k": 51}, 422, "less than or equal"),
        ({"question": "What is DPO?", "generator": "gpt-99"}, 400, "valid generators: "),
        ({"k": 3}, 422, "question"),
        ({"question": 42}, 422, "string"),
    ],
)
def test_bad_ask_requests(client, payload, status, fragment):
    r = client.post("/ask", json=payload)
    assert r.status_code == status
    assert fragment in str(r.json()["detail"])


def test_malformed_json_is_a_422_not_a_500(client):
    r = client.post("/ask", content=b'{"question": "What', headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert "json" in str(r.json()["detail"]).lower()


def test_search(client):
    r = client.get("/search", params={"q": "temperature softmax logits", "k": 2})
    assert r.status_code == 200
    body = r.json()
    assert body["query"] == "temperature softmax logits" and len(body["hits"]) == 2
    assert body["hits"][0]["note"] == "inference/sampling.md"
    assert {"note", "title", "heading", "start_line", "end_line", "text", "score", "sources"} <= set(body["hits"][0])
    assert client.get("/search", params={"q": "x", "k": 99}).status_code == 422
    assert client.get("/search", params={"q": " "}).status_code == 422


@pytest.mark.parametrize(
    "path, status",
    [
        ("alignment/dpo.md", 200),
        ("../secret.md", 404),
        ("%2E%2E/secret.md", 404),
        ("alignment/../../secret.md", 404),
        ("/etc/passwd", 404),
        ("%2Fetc%2Fpasswd", 404),
        ("nope.md", 404),
        ("alignment", 404),
    ],
)
def test_notes_only_inside_the_notes_folder(client, service, path, status):
    (service.settings.notes_dir.parent / "secret.md").write_text("# secret\n")
    r = client.get(f"/notes/{path}")
    assert r.status_code == status
    if status == 200:
        assert r.json()["title"] == "Direct Preference Optimization"
        assert r.json()["text"].startswith("---\ntitle:")


def test_health(client, service):
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["notes"] == 4 and body["chunks"] == len(service.snapshot.chunks)
    assert body["embedder"] == "hash" and body["built_at"] and body["snapshot"] == service.snapshot.id


def test_no_index_is_a_503_with_a_fix(tmp_path, notes_dir):
    c = TestClient(create_app(RagService(hash_settings(notes_dir, tmp_path / "empty"))))
    for r in (c.get("/health"), c.post("/ask", json={"question": "What is DPO?"})):
        assert r.status_code == 503 and "rag index" in r.json()["detail"]


def test_openapi_schema_is_exact(client):
    spec = client.get("/openapi.json").json()
    ask = spec["paths"]["/ask"]["post"]
    assert ask["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("AskRequest")
    answer = spec["components"]["schemas"]["Answer"]["properties"]
    assert {"question", "answer", "abstained", "generator", "citations", "timings_ms"} <= set(answer)
    assert client.get("/docs").status_code == 200


def test_rebuild_needs_token_when_set(service, notes_dir):
    service.settings = service.settings.model_copy(update={"admin_token": "s3cret"})
    c = TestClient(create_app(service))
    assert c.post("/index/rebuild").status_code == 401
    assert c.post("/index/rebuild", headers={"Authorization": "Bearer wrong"}).status_code == 401
    (notes_dir / "extra.md").write_text("# Extra\n\nSpeculative decoding uses a draft model.\n")
    r = c.post("/index/rebuild", headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200 and r.json()["added"] == ["extra.md"]
    assert c.get("/health").json()["snapshot"] == r.json()["snapshot"]


def test_rebuild_without_token_is_loopback_only(service):
    remote = TestClient(create_app(service))  # TestClient's client host is "testclient"
    assert remote.post("/index/rebuild").status_code == 403
    local = TestClient(create_app(service), client=("127.0.0.1", 5000))
    r = local.post("/index/rebuild")
    assert r.status_code == 200 and r.json()["rebuilt"] is False


def test_unexpected_errors_are_json_not_tracebacks(service, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service, "ask", boom)
    c = TestClient(create_app(service), raise_server_exceptions=False)
    r = c.post("/ask", json={"question": "What is DPO?"})
    assert r.status_code == 500
    assert r.json() == {"detail": "internal error: RuntimeError", "error": "InternalError"}


def parse_sse(text: str) -> list[tuple[str, object]]:
    events = []
    for frame in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


@pytest.mark.parametrize("question, abstains", [("What does DPO train on?", False), ("Best lasagne recipe with spinach?", True)])
def test_streamed_answer_matches_its_first_citations(client, question, abstains):
    r = client.post("/ask", json={"question": question, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    kinds = [e for e, _ in events]
    assert kinds[0] == "citations" and kinds[-1] == "done" and set(kinds[1:-1]) == {"delta"}
    streamed = "".join(d for e, d in events if e == "delta")
    done = events[-1][1]
    assert streamed == done["answer"] and done["abstained"] is abstains
    first = {c["n"]: (c["note"], c["start_line"]) for c in events[0][1]}
    assert first == {c["n"]: (c["note"], c["start_line"]) for c in done["citations"]}
    assert {int(n) for n in MARKER.findall(streamed)} <= set(first)


def test_stream_errors_before_the_first_event_are_plain_json(client):
    r = client.post("/ask", json={"question": "  ", "stream": True})
    assert r.status_code == 422 and "empty" in r.json()["detail"]
