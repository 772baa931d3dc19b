"""rag: questions over a folder of markdown notes, answered with line-level citations.

The public API is what `__all__` lists; tests guard it. Importing `rag` loads no model and
reads no settings: everything heavy happens when first used.
"""

from .chunker import Chunk, ChunkerConfig, chunk_note
from .errors import RagError
from .generators import Answer, Citation
from .retriever import Hit
from .service import RagService
from .settings import Settings, get_settings

__all__ = [
    "Answer",
    "Chunk",
    "ChunkerConfig",
    "Citation",
    "Hit",
    "RagError",
    "RagService",
    "Settings",
    "chunk_note",
    "get_settings",
]

__version__ = "0.1.0"
