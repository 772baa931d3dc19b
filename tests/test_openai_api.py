"""The OpenAI-compatible endpoints, driven by the official `openai` client against the real
app served by uvicorn on 127.0.0.1 (real index, hashing embedder)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

openai = pytest.importorskip("openai", reason="the openai extra is not installed: pip install 'rag[openai]'")
import uvicorn

from rag.app import create_app
from rag.generators import GeneratorInfo, default_registry
from rag.generators.llm import LLMGenerator
from rag.openai_api import ChatMessage, question_from_messages
from rag.service import RagService

from .conftest import hash_settings
from .test_generators import Scripted


class Served:
    """The app on a real socket, in a thread, for one test."""

    def __init__(self, service: RagService):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(service), log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def app_client(notes_dir, tmp_path):
    reg = default_registry()
    backend = Scripted("DPO trains directly on preference pairs [1], with no reward model [1].")
    reg.register(GeneratorInfo("scripted", "test", lambda s: LLMGenerator("scripted", backend, s), lambda s: (True, "test")))
    restater = Scripted("DPO trains on things [1].")  # cited, shown, then replaced: it only restates the question
    reg.register(GeneratorInfo("restater", "test", lambda s: LLMGenerator("restater", restater, s), lambda s: (True, "test")))
    svc = RagService(hash_settings(notes_dir, tmp_path / "index"), registry=reg)
    svc.index()
    with Served(svc) as served:
        yield openai.OpenAI(base_url=served.url + "/v1", api_key="anything", max_retries=0, timeout=60)


def test_models_lists_the_default_and_every_generator(app_client):
    ids = [m.id for m in app_client.models.list()]
    assert ids[0] == "rag"
    assert {"rag-extractive", "rag-llama", "rag-openai", "rag-anthropic", "rag-scripted"} <= set(ids)


def test_chat_completion_carries_the_answer_and_its_citations(app_client):
    r = app_client.chat.completions.create(
        model="rag-extractive", messages=[{"role": "user", "content": "What does DPO train on?"}]
    )
    text = r.choices[0].message.content
    citations = r.model_extra["citations"]
    assert r.choices[0].finish_reason == "stop" and r.model == "rag-extractive"
    assert citations and citations[0]["note"] == "alignment/dpo.md" and "[1]" in text
    c = citations[0]
    assert f"[1] alignment/dpo.md:{c['start_line']}-{c['end_line']}" in text.split("Sources:")[1]
    assert r.model_extra["rag"]["generator"] == "extractive" and r.model_extra["rag"]["abstained"] is False


def test_rag_is_the_default_generator_and_ask_matches(app_client, notes_dir, tmp_path):
    r = app_client.chat.completions.create(model="rag", messages=[{"role": "user", "content": "What does DPO train on?"}])
    assert r.model_extra["rag"]["generator"] == "extractive"


def test_streaming_joins_up_to_the_non_streaming_reply(app_client):
    for model in ("rag-extractive", "rag-scripted"):
        messages = [{"role": "user", "content": "What does DPO train on?"}]
        whole = app_client.chat.completions.create(model=model, messages=messages)
        chunks = list(app_client.chat.completions.create(model=model, messages=messages, stream=True))
        assert chunks[0].choices[0].delta.role == "assistant"
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        assert text == whole.choices[0].message.content
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert chunks[-1].model_extra["citations"] == whole.model_extra["citations"]
        assert len(chunks) >= 3


def test_a_streamed_draft_that_is_replaced_says_so_and_gives_the_final_answer(app_client):
    messages = [{"role": "user", "content": "What does DPO train on?"}]
    whole = app_client.chat.completions.create(model="rag-restater", messages=messages)
    assert whole.model_extra["rag"]["fallback"] and "trains on things" not in whole.choices[0].message.content
    chunks = list(app_client.chat.completions.create(model="rag-restater", messages=messages, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    draft, _, rest = text.partition("(That draft did not hold up against the notes; the answer is:)")
    assert draft.strip() == "DPO trains on things [1]."
    assert rest.strip() == whole.choices[0].message.content.strip()  # the final answer and its sources


def test_earlier_messages_give_a_follow_up_its_topic(app_client):
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "What is direct preference optimization?"},
        {"role": "assistant", "content": "DPO trains a model directly on preference pairs [1]."},
        {"role": "user", "content": [{"type": "text", "text": "Who published it?"}]},
    ]
    r = app_client.chat.completions.create(model="rag-extractive", messages=messages)
    assert r.model_extra["citations"][0]["note"] == "alignment/dpo.md"
    assert "Rafailov" in r.choices[0].message.content


def test_unknown_model_and_missing_question_are_openai_style_errors(app_client):
    with pytest.raises(openai.NotFoundError) as exc:
        app_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert "rag-extractive" in str(exc.value) and exc.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as exc:
        app_client.chat.completions.create(model="rag", messages=[{"role": "system", "content": "no question"}])
    assert "user message" in str(exc.value)


def test_unready_generator_and_bad_question_are_400s_not_500s(app_client):
    with pytest.raises(openai.BadRequestError) as exc:
        app_client.chat.completions.create(model="rag-anthropic", messages=[{"role": "user", "content": "What is DPO?"}])
    assert "RAG_ANTHROPIC_API_KEY" in str(exc.value)
    with pytest.raises(openai.UnprocessableEntityError) as exc:
        app_client.chat.completions.create(model="rag", messages=[{"role": "user", "content": "x" * 3000}], stream=True)
    assert "limit" in str(exc.value)


@pytest.mark.parametrize(
    "messages, expected",
    [
        ([("user", "What is DPO?")], "What is DPO?"),
        ([("user", "What is DPO?"), ("assistant", "..."), ("user", "What is RLHF?")], "What is RLHF?"),
        ([("user", "What is DPO?"), ("assistant", "..."), ("user", "Who proposed it?")], "Who proposed it? (follow-up to: What is DPO?)"),
        ([("user", "What is DPO?"), ("user", "And RLHF?")], "And RLHF? (follow-up to: What is DPO?)"),
        ([("system", "be nice"), ("assistant", "hello")], None),
    ],
)
def test_question_from_messages(messages, expected):
    assert question_from_messages([ChatMessage(role=r, content=c) for r, c in messages]) == expected
