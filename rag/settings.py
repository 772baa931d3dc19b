"""Configuration: one `Settings` object from `RAG_*` environment variables and `.env`.

`get_settings()` builds it once and caches it; everything else receives settings
explicitly. Every CLI option mirrors one field here (the CLI passes overrides through
`Settings.model_copy(update=...)`). Nothing is read at import time.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore")

    # where things are
    notes_dir: Path = Field(Path("notes"), description="folder of markdown notes")
    index_dir: Path = Field(Path("index"), description="where the built index lives")

    # embedding and chunking
    embedder: str = Field(
        "all-MiniLM-L6-v2",
        description="'all-MiniLM-L6-v2' (packaged, offline), 'hash' (test fake), a local "
        "model folder, or a hub model name (needs network once)",
    )
    embed_batch_size: int = Field(32, ge=1, le=1024)
    chunk_tokens: int = Field(200, ge=32, le=2048, description="max word pieces a chunk holds, context included")
    chunk_overlap: int = Field(1, ge=0, le=5, description="blocks repeated from the previous chunk of a section")

    # retrieval
    top_k: int = Field(5, ge=1, le=50)
    # fusion defaults tuned on BEIR SciFact's train split only (eval/results/scifact_tuning.json)
    candidates: int = Field(60, ge=1, le=1000, description="candidates each retriever contributes to fusion")
    rrf_k: float = Field(3.0, gt=0, description="reciprocal rank fusion constant")
    dense_weight: float = Field(1.0, ge=0)
    bm25_weight: float = Field(1.1, ge=0, description="above the dense weight: BM25 wins exact rank ties")

    # answering
    generator: str = "extractive"
    abstain_threshold: float = Field(
        0.45,
        description="minimum evidence score to answer; below it the answer abstains "
        "(calibrated by `rag eval --calibrate` on the suite's calibration split, see eval/README.md)",
    )
    max_question_chars: int = Field(2000, ge=10)
    max_sentences: int = Field(3, ge=1, le=10)

    # serving
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    admin_token: str | None = None
    watch: bool = False
    watch_debounce_ms: int = Field(500, ge=10)

    # LLM generators
    llama_model: Path | None = Field(
        None, description="GGUF file for the llama generator (default: the one `rag models install` puts in models_dir)"
    )
    models_dir: Path = Path("models")
    llama_threads: int = Field(0, ge=0, le=256, description="CPU threads for the llama generator; 0 = all cores but one")
    llama_context_tokens: int = Field(
        768, ge=128, description="token budget for passages in the llama generator's prompts "
        "(smaller than llm_context_tokens: on a CPU, reading the prompt is most of the time)"
    )
    llm_context_tokens: int = Field(2048, ge=256, description="token budget for passages in LLM prompts")
    llm_max_tokens: int = Field(256, ge=16)
    llm_temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 = the most likely answer, repeatable")
    llm_timeout: float = Field(60.0, gt=0, description="seconds one LLM call may take")
    llm_retries: int = Field(2, ge=0, le=10, description="retries of a failed LLM API call (timeouts, 429, 5xx)")
    llm_uncited: Literal["extractive", "flag"] = Field(
        "extractive",
        description="an LLM answer that cites no passage: 'extractive' replaces it (fallback: true), "
        "'flag' keeps it with grounded: false",
    )
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: str | None = None
    openai_model: str = "gpt-4o-mini"
    anthropic_api_key: str | None = None
    anthropic_model: str = "claude-3-5-haiku-latest"
    anthropic_base_url: str | None = None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment and `.env`."""
    return Settings()
