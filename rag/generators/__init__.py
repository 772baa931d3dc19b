"""Answer writers, found by name in a `Registry`.

`default_registry()` builds a fresh registry with every generator `rag` ships; the service
owns one, and tests build their own, so there is no global state to reset. A generator's
heavy dependencies are imported by its factory, when it is first used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import UnknownGenerator
from ..settings import Settings
from .base import ABSTAIN_TEXT, Answer, Citation, Generator, citation_from_hit

__all__ = [
    "Answer",
    "Citation",
    "Generator",
    "GeneratorInfo",
    "Registry",
    "default_registry",
    "citation_from_hit",
    "ABSTAIN_TEXT",
]


@dataclass(frozen=True)
class GeneratorInfo:
    name: str
    description: str
    factory: Callable[[Settings], Generator]
    readiness: Callable[[Settings], tuple[bool, str]]  # (ready, why not / what it uses)
    extra: str | None = None  # the pip extra that installs its dependencies


class Registry:
    def __init__(self) -> None:
        self._infos: dict[str, GeneratorInfo] = {}

    def register(self, info: GeneratorInfo) -> None:
        self._infos[info.name] = info

    def names(self) -> list[str]:
        return sorted(self._infos)

    def info(self, name: str) -> GeneratorInfo:
        try:
            return self._infos[name]
        except KeyError:
            raise UnknownGenerator(name, self.names()) from None

    def create(self, name: str, settings: Settings) -> Generator:
        return self.info(name).factory(settings)

    def status(self, settings: Settings) -> list[dict]:
        out = []
        for name in self.names():
            info = self._infos[name]
            ready, detail = info.readiness(settings)
            out.append({"name": name, "description": info.description, "ready": ready, "detail": detail, "extra": info.extra})
        return out


def _extractive(settings: Settings) -> Generator:
    from .extractive import ExtractiveGenerator

    return ExtractiveGenerator(max_sentences=settings.max_sentences)


def _installed(module: str) -> bool:
    # find_spec locates the package without importing it (xllamacpp is a 100 MB extension)
    from importlib.util import find_spec

    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install, or a module blocked in sys.modules
        return False


def _llama(settings: Settings) -> Generator:
    from ..models import default_model_path
    from .llama import LlamaBackend
    from .llm import LLMGenerator

    budget = (settings.llama_context_tokens, "RAG_LLAMA_CONTEXT_TOKENS")
    return LLMGenerator("llama", LlamaBackend(default_model_path(settings), settings), settings, budget)


def _llama_ready(settings: Settings) -> tuple[bool, str]:
    from ..models import default_model_path

    if not _installed("xllamacpp"):
        return False, "xllamacpp is not installed: pip install 'rag[llama]'"
    path = default_model_path(settings)
    if not path.is_file():
        return False, f"model file {path} is missing: run `rag models install` or set RAG_LLAMA_MODEL"
    return True, f"model {path}"


def _openai(settings: Settings) -> Generator:
    from .llm import LLMGenerator
    from .openai_compat import OpenAIBackend

    return LLMGenerator("openai", OpenAIBackend(settings), settings)


def _openai_ready(settings: Settings) -> tuple[bool, str]:
    from .openai_compat import needs_key

    if not _installed("openai"):
        return False, "the openai client is not installed: pip install 'rag[openai]'"
    if needs_key(settings.openai_base_url) and not settings.openai_api_key:
        return False, f"RAG_OPENAI_API_KEY is not set (needed for {settings.openai_base_url})"
    return True, f"model {settings.openai_model} at {settings.openai_base_url}"


def _anthropic(settings: Settings) -> Generator:
    from .anthropic_api import AnthropicBackend
    from .llm import LLMGenerator

    return LLMGenerator("anthropic", AnthropicBackend(settings), settings)


def _anthropic_ready(settings: Settings) -> tuple[bool, str]:
    if not _installed("anthropic"):
        return False, "the anthropic client is not installed: pip install 'rag[anthropic]'"
    if not settings.anthropic_api_key:
        return False, "RAG_ANTHROPIC_API_KEY is not set"
    return True, f"model {settings.anthropic_model}" + (
        f" at {settings.anthropic_base_url}" if settings.anthropic_base_url else ""
    )


def default_registry() -> Registry:
    reg = Registry()
    reg.register(
        GeneratorInfo(
            "extractive",
            "offline: quotes the notes' best sentences, each cited",
            _extractive,
            lambda s: (True, "built in"),
        )
    )
    reg.register(
        GeneratorInfo(
            "llama",
            "offline: a local GGUF model (llama.cpp, in-process) writes the answer from the passages",
            _llama,
            _llama_ready,
            extra="llama",
        )
    )
    reg.register(
        GeneratorInfo(
            "openai",
            "any OpenAI-compatible chat API (OpenAI, Ollama, vLLM, LM Studio, llama.cpp server)",
            _openai,
            _openai_ready,
            extra="openai",
        )
    )
    reg.register(
        GeneratorInfo(
            "anthropic",
            "Claude through the Anthropic API",
            _anthropic,
            _anthropic_ready,
            extra="anthropic",
        )
    )
    return reg
