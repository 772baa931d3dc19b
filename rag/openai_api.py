"""An OpenAI-compatible face for the service: `GET /v1/models`, `POST /v1/chat/completions`.

Any OpenAI client or chat UI can then ask the notes. The model name picks the generator:
`rag` is the configured default (`RAG_GENERATOR`), `rag-<name>` a named one
(`rag-extractive`, `rag-llama`, ...). The last user message is the question. Earlier
messages are context: when the question reads as a follow-up (a pronoun, "and ...",
"what about ...", or two words at most), the previous user question is added to it so that
retrieval finds the same topic; the answer is still written from the notes alone.
The reply's text is the answer followed by its sources, one `[n] note:lines` line each,
and the same citations come as structured data in the extra `citations` field (with the
flags in `rag`); `stream: true` sends `chat.completion.chunk` events and `[DONE]`.
Errors use OpenAI's `{"error": {"message", "type", "code"}}` shape.
Deliberately absent: sampling options (`temperature`, `max_tokens`, ... are accepted and
ignored: the generator's settings apply), tools, images, and token usage counts.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from .errors import RagError
from .generators import Answer
from .service import RagService

__all__ = ["router", "sources_text", "question_from_messages"]

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])

_FOLLOW_UP = re.compile(
    r"\b(?:it|its|it's|they|them|their|this|that|these|those|he|she|his|her)\b"
    r"|^\s*(?:and|also|so|then|what about|how about|same for)\b",
    re.I,
)
_MAX_CONTEXT_CHARS = 300
_REPLACED = "(That draft did not hold up against the notes; the answer is:)"


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, max_tokens, ...: accepted, ignored
    model: str = Field(description="'rag' (the default generator) or 'rag-<generator>', e.g. 'rag-llama'")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False


def _error(status: int, message: str, kind: str, code: str | None = None, param: str | None = None) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"error": {"message": message, "type": kind, "param": param, "code": code}}
    )


def _rag_error(exc: RagError) -> JSONResponse:
    kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
    return _error(exc.status_code, str(exc), kind, type(exc).__name__)


def _generator_for(model: str, service: RagService) -> str | None:
    """The generator a model name selects, or None when it names none."""
    if model == "rag":
        return service.settings.generator
    if model.startswith("rag-") and model[4:] in service.registry.names():
        return model[4:]
    return None


def _text(content: str | list[dict] | None) -> str:
    if isinstance(content, list):  # [{"type": "text", "text": "..."}, ...] from chat UIs
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content or ""


def question_from_messages(messages: list[ChatMessage], limit: int = 2000) -> str | None:
    """The question to answer: the last user message, with the previous user question
    added when it reads as a follow-up; None when there is no user message."""
    users = [_text(m.content).strip() for m in messages if m.role == "user"]
    users = [u for u in users if u]
    if not users:
        return None
    question = users[-1]
    if len(users) > 1 and (_FOLLOW_UP.search(question) or len(question.split()) <= 2):
        with_context = f"{question} (follow-up to: {users[-2][:_MAX_CONTEXT_CHARS]})"
        if len(with_context) <= limit:
            question = with_context
    return question


def sources_text(answer: Answer | dict) -> str:
    """The citations as plain lines for chat UIs that show only text."""
    data = answer.model_dump() if isinstance(answer, Answer) else answer
    if not data["citations"]:
        return ""
    lines = ["", "", "Closest passages:" if data["abstained"] else "Sources:"]
    for c in data["citations"]:
        where = f"{c['title']} > {c['heading']}" if c["heading"] else c["title"]
        lines.append(f"[{c['n']}] {c['note']}:{c['start_line']}-{c['end_line']} ({where})")
    return "\n".join(lines)


def _extras(data: dict) -> dict:
    return {
        "citations": data["citations"],
        "rag": {k: data[k] for k in ("generator", "abstained", "grounded", "fallback", "warnings", "evidence", "timings_ms")},
    }


@router.get("/models")
def list_models(request: Request):
    """The generators as models: `rag` (the default) and `rag-<name>` for each."""
    service: RagService = request.app.state.service
    status = {g["name"]: g for g in service.registry.status(service.settings)}
    default = service.settings.generator
    data = [{"id": "rag", "object": "model", "created": 0, "owned_by": "rag", "generator": default,
             "ready": status.get(default, {}).get("ready", False)}]
    for name, g in status.items():
        data.append({"id": f"rag-{name}", "object": "model", "created": 0, "owned_by": "rag", "generator": name,
                     "ready": g["ready"]})
    return {"object": "list", "data": data}


@router.post("/chat/completions")
def chat_completions(body: ChatRequest, request: Request):
    """Answer the last user message from the notes, OpenAI chat-completions style."""
    service: RagService = request.app.state.service
    generator = _generator_for(body.model, service)
    if generator is None:
        valid = ", ".join(["rag", *(f"rag-{n}" for n in service.registry.names())])
        return _error(404, f"unknown model {body.model!r}; valid models: {valid}", "invalid_request_error",
                      "model_not_found", "model")
    question = question_from_messages(body.messages, service.settings.max_question_chars)
    if question is None:
        return _error(400, "no user message with text: the last user message is the question",
                      "invalid_request_error", "no_question", "messages")
    cid = f"chatcmpl-rag-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    try:
        if body.stream:
            events = service.ask_stream(question, None, generator)
            first = next(events)  # errors before the first event still get a JSON error reply
            return StreamingResponse(
                _chunks(cid, created, body.model, first, events), media_type="text/event-stream"
            )
        answer = service.ask(question, None, generator)
    except RagError as exc:
        return _rag_error(exc)
    data = answer.model_dump()
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": body.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.answer + sources_text(data)},
                "finish_reason": "stop",
            }
        ],
        **_extras(data),
    }


def _chunks(cid: str, created: int, model: str, first: dict, rest: Iterator[dict]) -> Iterator[str]:
    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        body = {
            "id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra,
        }
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    streamed: list[str] = []
    try:
        for ev in _chain(first, rest):
            if ev["event"] == "delta":
                streamed.append(ev["data"])
                yield chunk({"content": ev["data"]})
            elif ev["event"] == "done":
                data = ev["data"]
                # The final answer rules; a chat UI cannot take back what it was sent, so a
                # replacement (a late fallback or abstention) is appended, not swapped in.
                fix = "" if "".join(streamed).strip() == data["answer"].strip() else f"\n\n{_REPLACED}\n{data['answer']}"
                yield chunk({"content": fix + sources_text(data)}, "stop", **_extras(data))
    except RagError as exc:
        yield f"data: {json.dumps({'error': {'message': str(exc), 'type': 'server_error', 'code': type(exc).__name__}})}\n\n"
    except Exception as exc:  # the stream is open: report in-band, never a stack trace
        yield f"data: {json.dumps({'error': {'message': f'internal error: {type(exc).__name__}', 'type': 'server_error'}})}\n\n"
    yield "data: [DONE]\n\n"


def _chain(first: dict, rest: Iterator[dict]) -> Iterator[dict]:
    yield first
    yield from rest
