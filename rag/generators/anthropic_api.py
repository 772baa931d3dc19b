"""The `anthropic` generator's backend: Claude through the official `anthropic` client.

`RAG_ANTHROPIC_API_KEY`, `RAG_ANTHROPIC_MODEL` and, for a proxy or gateway,
`RAG_ANTHROPIC_BASE_URL`. The rules go in the Messages API's `system` field, the passages
and question in the user turn. The client retries connection errors, timeouts, 429, 5xx
and 529 (overloaded) itself, `RAG_LLM_RETRIES` times; what still fails, an error event in
the middle of a stream, and a reply without text become `GenerationFailed`, which the
generator turns into the extractive answer. No sampling options are sent (the client
no longer takes `temperature`; Claude's defaults apply). Deliberately absent: extended
thinking, tools and prompt caching.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import GenerationFailed, GeneratorUnavailable
from ..settings import Settings
from .llm import Messages
from .sdk import client_failure, stream_texts

__all__ = ["AnthropicBackend"]


class AnthropicBackend:
    def __init__(self, settings: Settings):
        try:
            import anthropic
        except ImportError as exc:
            raise GeneratorUnavailable(
                "the anthropic generator needs the anthropic client: pip install 'rag[anthropic]'"
            ) from exc
        if not settings.anthropic_api_key:
            raise GeneratorUnavailable("the anthropic generator needs RAG_ANTHROPIC_API_KEY")
        self._anthropic = anthropic
        self.model = settings.anthropic_model
        self.timeout = settings.llm_timeout
        self.retries = settings.llm_retries
        self.where = settings.anthropic_base_url or "the Anthropic API"
        self._client = anthropic.Anthropic(
            api_key=settings.anthropic_api_key,
            base_url=settings.anthropic_base_url,  # None: the client's default endpoint
            timeout=settings.llm_timeout,
            max_retries=settings.llm_retries,
        )

    def _request(self, messages: Messages, max_tokens: int, stream: bool):
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        turns = [m for m in messages if m["role"] != "system"]
        try:
            return self._client.messages.create(
                model=self.model,
                max_tokens=max_tokens,
                system=system,
                messages=turns,
                stream=stream,
            )
        except Exception as exc:
            raise self._failure(exc) from exc

    def complete(self, messages: Messages, max_tokens: int) -> str:
        reply = self._request(messages, max_tokens, stream=False)
        try:
            text = "".join(b.text for b in reply.content if getattr(b, "type", None) == "text")
        except (AttributeError, TypeError) as exc:
            raise GenerationFailed(f"{self.where} sent a malformed reply (no content blocks)") from exc
        if not text.strip():
            raise GenerationFailed(f"{self.where} sent a reply without text")
        return text

    def stream(self, messages: Messages, max_tokens: int) -> Iterator[str]:
        events = self._request(messages, max_tokens, stream=True)
        yield from stream_texts(events, _event_text, self._failure)

    def _failure(self, exc: Exception) -> GenerationFailed:
        return client_failure(self._anthropic, exc, self.where, self.timeout, self.retries, self._status)

    def _status(self, exc, tries: str) -> GenerationFailed:
        kind, message = _error_fields(exc)
        if exc.status_code == 200:  # an `error` event inside a stream that had begun
            return GenerationFailed(f"{self.where} stopped the stream with {kind}: {message}")
        hint = {401: "check RAG_ANTHROPIC_API_KEY", 404: "check RAG_ANTHROPIC_MODEL"}.get(exc.status_code)
        if hint is None and (exc.status_code == 429 or exc.status_code >= 500):
            hint = tries
        return GenerationFailed(
            f"{self.where} answered HTTP {exc.status_code} {kind}: {message}" + (f" ({hint})" if hint else "")
        )


def _event_text(event) -> str | None:
    """Text of a `content_block_delta` event; None for message_start, content_block_start/stop,
    message_delta and message_stop."""
    if getattr(event, "type", None) != "content_block_delta":
        return None
    delta = getattr(event, "delta", None)
    return delta.text if getattr(delta, "type", None) == "text_delta" else None


def _error_fields(exc) -> tuple[str, str]:
    """(type, message) from Anthropic's error body `{"type": "error", "error": {...}}`."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return str(err.get("type", "error")), str(err.get("message", ""))[:200]
    return "error", str(getattr(exc, "message", exc))[:200]
