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
    return reg
