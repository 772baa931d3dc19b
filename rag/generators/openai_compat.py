"""The `openai` generator's backend: any OpenAI-compatible chat-completions server.

OpenAI itself, Ollama, vLLM, LM Studio or llama.cpp's server: `RAG_OPENAI_BASE_URL`,
`RAG_OPENAI_API_KEY` (optional for local servers) and `RAG_OPENAI_MODEL`. The official
`openai` client does the HTTP, including its bounded retries (`RAG_LLM_RETRIES`) of
connection errors, timeouts, 429 and 5xx with backoff; whatever still fails, and any reply
without text, becomes `GenerationFailed`, which the generator turns into the extractive
answer. Deliberately absent: tools, JSON mode and the Responses API.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import GenerationFailed, GeneratorUnavailable
from ..settings import Settings
from .llm import Messages
from .sdk import client_failure, stream_texts

__all__ = ["OpenAIBackend", "OPENAI_DEFAULT_URL", "needs_key"]

OPENAI_DEFAULT_URL = "https://api.openai.com/v1"


def needs_key(base_url: str) -> bool:
    """OpenAI's own API needs a key; a local server usually does not."""
    return "api.openai.com" in base_url


class OpenAIBackend:
    def __init__(self, settings: Settings):
        try:
            import openai
        except ImportError as exc:
            raise GeneratorUnavailable("the openai generator needs the openai client: pip install 'rag[openai]'") from exc
        base_url = settings.openai_base_url.rstrip("/")
        if needs_key(base_url) and not settings.openai_api_key:
            raise GeneratorUnavailable(f"the openai generator needs RAG_OPENAI_API_KEY for {base_url}")
        self._openai = openai
        self.base_url = base_url
        self.model = settings.openai_model
        self.temperature = settings.llm_temperature
        self.timeout = settings.llm_timeout
        self.retries = settings.llm_retries
        self._client = openai.OpenAI(
            base_url=base_url,
            # a local server ignores the key, but the client insists on one (and would
            # otherwise read OPENAI_API_KEY, which may belong to someone else's setup)
            api_key=settings.openai_api_key or "unused",
            timeout=settings.llm_timeout,
            max_retries=settings.llm_retries,
        )

    def _request(self, messages: Messages, max_tokens: int, stream: bool):
        try:
            return self._client.chat.completions.create(
                model=self.model, messages=messages, max_tokens=max_tokens, temperature=self.temperature, stream=stream
            )
        except Exception as exc:
            raise self._failure(exc) from exc

    def complete(self, messages: Messages, max_tokens: int) -> str:
        reply = self._request(messages, max_tokens, stream=False)
        try:
            text = reply.choices[0].message.content
        except (AttributeError, IndexError, TypeError, KeyError) as exc:
            raise GenerationFailed(f"{self.base_url} sent a malformed reply (no choices[0].message)") from exc
        if not isinstance(text, str) or not text.strip():
            raise GenerationFailed(f"{self.base_url} sent a reply without text")
        return text

    def stream(self, messages: Messages, max_tokens: int) -> Iterator[str]:
        events = self._request(messages, max_tokens, stream=True)
        yield from stream_texts(events, _chunk_text, self._failure)

    def _failure(self, exc: Exception) -> GenerationFailed:
        """A one-line reason for a client error, after the client's own retries."""
        return client_failure(self._openai, exc, self.base_url, self.timeout, self.retries, self._status)

    def _status(self, exc, tries: str) -> GenerationFailed:
        detail = _error_message(exc)
        hint = {401: "check RAG_OPENAI_API_KEY", 404: "check RAG_OPENAI_MODEL and RAG_OPENAI_BASE_URL", 429: f"rate limited; {tries}"}
        extra = hint.get(exc.status_code, tries if exc.status_code >= 500 else "")
        return GenerationFailed(f"{self.base_url} answered HTTP {exc.status_code}: {detail}" + (f" ({extra})" if extra else ""))


def _chunk_text(chunk) -> str | None:
    """Text of a streamed chat chunk; None for usage-only or keep-alive chunks."""
    choices = getattr(chunk, "choices", None)
    if not choices:
        return None
    return getattr(getattr(choices[0], "delta", None), "content", None)


def _error_message(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:200]
    return str(getattr(exc, "message", exc))[:200]
