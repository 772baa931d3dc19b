"""The `llama` generator's backend: a GGUF model run in-process by llama.cpp (`xllamacpp`).

`xllamacpp.Server` loads the model once (about 2 s for the 0.5B Qwen model) and answers
OpenAI-shaped chat requests from Python; it releases the GIL while it computes, so the
app keeps serving. Every call streams internally: the callback stops generation when the
caller goes away or `RAG_LLM_TIMEOUT` passes, which a blocking call could not.
llama.cpp also opens an HTTP port on 127.0.0.1; it is locked with a random API key that
never leaves this object, so nothing else on the machine can use the model through it.

Deliberately absent: GPU offload settings, parallel slots (requests queue for the one
slot: a 2-core machine gains nothing from more) and any model download (see `rag.models`).
"""

from __future__ import annotations

import atexit
import os
import queue
import secrets
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

from ..errors import GenerationFailed, GeneratorUnavailable
from ..settings import Settings
from .llm import Messages

__all__ = ["LlamaBackend", "context_size"]

_DONE = object()


def context_size(settings: Settings) -> int:
    """llama.cpp context: the passage budget with room for the model's own tokenizer
    (up to a quarter more tokens than cl100k on English), the rules, the question and the
    answer; rounded up to 256."""
    need = int(settings.llama_context_tokens * 1.25) + settings.llm_max_tokens + 768
    return min(32768, -(-need // 256) * 256)


class LlamaBackend:
    def __init__(self, model_path: Path, settings: Settings):
        try:
            import xllamacpp as xlc
        except ImportError as exc:
            raise GeneratorUnavailable(
                "the llama generator needs xllamacpp: pip install 'rag[llama]'"
            ) from exc
        if not Path(model_path).is_file():
            raise GeneratorUnavailable(
                f"model file {model_path} not found: run `rag models install` or set RAG_LLAMA_MODEL to a GGUF file"
            )
        self.model_path = Path(model_path)
        self.timeout = settings.llm_timeout
        self.temperature = settings.llm_temperature
        params = xlc.CommonParams()
        params.model.path = str(model_path)
        params.n_ctx = context_size(settings)
        params.n_parallel = 1
        # all cores but one by default: llama.cpp's threads spin while they wait for each
        # other, so one descheduled by a busy neighbour (the embedder, another job) stalls
        # the rest; measured on 2 shared cores, 1 thread decoded ~3x faster than 2
        threads = settings.llama_threads or max(1, (os.cpu_count() or 2) - 1)
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.verbosity = 1  # errors only: llama.cpp logs every request at the default level
        params.api_keys = [secrets.token_urlsafe(24)]  # locks the loopback HTTP port it opens
        try:
            self._server = xlc.Server(params)
        except Exception as exc:  # RuntimeError("Failed to init server ...") for a bad file
            raise GeneratorUnavailable(
                f"llama.cpp could not load {model_path} ({exc}); is it a GGUF model? "
                "`rag models install` puts a verified one in place"
            ) from exc
        # Generations still running (one that timed out, say) must end before the
        # interpreter does: a thread stopped while inside llama.cpp aborts the process.
        self._running: dict[threading.Thread, threading.Event] = {}
        atexit.register(_stop_all, weakref.ref(self))

    def complete(self, messages: Messages, max_tokens: int) -> str:
        return "".join(self.stream(messages, max_tokens))

    def stream(self, messages: Messages, max_tokens: int) -> Iterator[str]:
        request = {
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": self.temperature,
            "stream": True,
        }
        pieces: queue.Queue = queue.Queue()
        stop = threading.Event()  # set when the consumer leaves or the deadline passes
        deadline = time.monotonic() + self.timeout

        def on_chunk(chunk) -> bool:
            pieces.put(chunk)
            return stop.is_set() or time.monotonic() > deadline  # True stops generation

        def run() -> None:
            try:
                self._server.handle_chat_completions(request, on_chunk)
            except Exception as exc:  # bad request, context overflow: reported to the consumer
                pieces.put(exc)
            finally:
                self._running.pop(threading.current_thread(), None)
                pieces.put(_DONE)

        worker = threading.Thread(target=run, name="rag-llama", daemon=True)
        self._running[worker] = stop
        worker.start()
        try:
            while True:
                try:
                    item = pieces.get(timeout=max(0.05, deadline - time.monotonic()))
                except queue.Empty:
                    raise GenerationFailed(f"timed out after {self.timeout:g} s (RAG_LLM_TIMEOUT)") from None
                if item is _DONE:
                    if time.monotonic() > deadline:
                        raise GenerationFailed(f"timed out after {self.timeout:g} s (RAG_LLM_TIMEOUT)")
                    return
                if isinstance(item, Exception):
                    raise GenerationFailed(f"llama.cpp rejected the request: {item}") from item
                text = _content(item)
                if text:
                    yield text
        finally:
            stop.set()


def _stop_all(ref: weakref.ref) -> None:
    """At exit: ask running generations to stop, and wait (bounded) until they have."""
    backend = ref()
    if backend is None:
        return
    running = list(backend._running.items())
    for _, stop in running:
        stop.set()  # takes effect at the next token; prompt reading cannot be interrupted
    deadline = time.monotonic() + 60
    for worker, _ in running:
        worker.join(max(0.0, deadline - time.monotonic()))


def _content(chunk) -> str:
    """The text of one streamed chat chunk (a dict, or its JSON for older xllamacpp)."""
    if isinstance(chunk, (str, bytes)):
        import json

        try:
            chunk = json.loads(chunk)
        except ValueError as exc:
            raise GenerationFailed(f"llama.cpp sent a malformed chunk: {chunk[:80]!r}") from exc
    if not isinstance(chunk, dict):
        raise GenerationFailed(f"llama.cpp sent a malformed chunk of type {type(chunk).__name__}")
    if "error" in chunk:
        err = chunk["error"]
        raise GenerationFailed(f"llama.cpp: {err.get('message', err) if isinstance(err, dict) else err}")
    try:
        return chunk["choices"][0]["delta"].get("content") or "" if chunk.get("choices") else ""
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise GenerationFailed("llama.cpp sent a chunk without choices[0].delta") from exc
