"""Split a markdown note into cited chunks: a pure function of the text.

A note is cut into sections at its headings (ATX `#` and setext `===`/`---`), then each
section's blocks (paragraphs, lists, tables, quotes, whole code fences) are packed greedily
into chunks that fit the embedder's token limit, counting the context (title and heading
path) that is embedded with them. A block too big for one chunk is split at line, then
sentence, then word boundaries. Consecutive chunks of a section share `overlap` blocks.

Every chunk records its note path, title, heading path and 1-based inclusive line span,
and its text is taken verbatim from those lines, so a sentence quoted from it can always
be found again in the file.

    >>> chunks = chunk_note("a.md", "# DPO\\n\\nDirect preference optimisation.\\n")
    >>> [(c.title, c.heading, c.start_line, c.end_line, c.text) for c in chunks]
    [('DPO', '', 3, 3, 'Direct preference optimisation.')]

Deliberately left out: HTML blocks are treated as paragraphs, reference-style link
definitions and footnotes are plain text, and indented (4-space) code blocks are not told
apart from paragraphs. A single word longer than the limit (a URL, a data blob) stays whole
and the model truncates it. Lines are split on `\\n`, `\\r\\n` and `\\r` only, as editors count them.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import yaml

__all__ = [
    "Chunk",
    "Note",
    "ChunkerConfig",
    "chunk_note",
    "parse_note",
    "split_lines",
    "estimate_tokens",
    "embed_text",
]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's safe loader, ~10x faster
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_ATX_CLOSE = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_NOT_PARAGRAPH = re.compile(r"^ {0,3}(?:[-*+>|]|\d+[.)])(?:\s|$)")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_WORDISH = re.compile(r"\w+|[^\w\s]")
_HAS_WORD = re.compile(r"\w")


def split_lines(text: str) -> list[str]:
    """Lines as an editor numbers them (index 0 is line 1); a leading BOM is dropped."""
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def estimate_tokens(text: str) -> int:
    """A safe over-estimate of BERT word pieces: long words count as several pieces.

    Used when the embedder brings no tokenizer of its own (the hashing fake). Each
    punctuation mark is one piece; a word of n characters counts ceil(n / 5) pieces
    (the real tokenizer gives one piece to most common words, so this errs high); plus
    the two special tokens.
    """
    n = 2
    for tok in _WORDISH.findall(text):
        n += max(1, math.ceil(len(tok) / 5)) if tok[0].isalnum() or tok[0] == "_" else 1
    return n


@dataclass(frozen=True)
class ChunkerConfig:
    max_tokens: int = 200  # word pieces per chunk, embedded context included
    overlap: int = 1  # blocks repeated from the previous chunk of the same section


@dataclass(frozen=True)
class Note:
    path: str  # relative to the notes folder, '/'-separated
    title: str
    tags: tuple[str, ...]
    lines: tuple[str, ...]
    body_start: int  # 1-based line where the body starts (after front matter)


@dataclass(frozen=True)
class Chunk:
    id: str  # stable: note path + content hash + occurrence
    note: str
    title: str
    heading: str  # "Alignment > DPO"; "" before the first heading
    start_line: int  # 1-based, inclusive
    end_line: int  # 1-based, inclusive
    text: str  # verbatim from the note's lines start..end
    hash: str = field(default="")  # sha256 of embed_text(): what the embedding depends on

    @property
    def context(self) -> str:
        return f"{self.title} > {self.heading}" if self.heading else self.title


def embed_text(title: str, heading: str, text: str) -> str:
    """What is embedded and BM25-indexed: the text under its title and heading path."""
    context = f"{title} > {heading}" if heading else title
    return f"{context}\n\n{text}"


@dataclass
class _Unit:
    start: int  # 1-based line
    end: int
    text: str


def parse_note(path: str, text: str) -> Note:
    """Read front matter and title; the body is left for `chunk_note`."""
    lines = split_lines(text)
    meta: dict = {}
    body_start = 1
    if lines and lines[0].strip() == "---":
        for i in range(1, len(lines)):
            if lines[i].strip() in ("---", "..."):
                try:
                    loaded = yaml.load("\n".join(lines[1:i]), Loader=_YAML_LOADER)
                except yaml.YAMLError:
                    loaded = None  # malformed front matter: skip it, keep the note
                meta = loaded if isinstance(loaded, dict) else {}
                body_start = i + 2
                break
    title = meta.get("title")
    if not isinstance(title, str) or not title.strip():
        title = None
        fence = None
        for line in lines[body_start - 1 :]:
            fence = _fence_state(line, fence)
            if fence is not None or _FENCE.match(line):
                continue
            m = _ATX.match(line)
            if m and len(m.group(1)) == 1 and m.group(2):
                title = _heading_text(m.group(2))
                break
    if not title:
        stem = PurePosixPath(path).stem
        title = re.sub(r"[-_]+", " ", stem).strip() or stem
    tags = meta.get("tags") or ()
    if isinstance(tags, str):
        tags = tuple(t.strip() for t in tags.split(",") if t.strip())
    else:
        tags = tuple(str(t) for t in tags) if isinstance(tags, list) else ()
    return Note(path=path, title=title.strip(), tags=tags, lines=tuple(lines), body_start=body_start)


def chunk_note(
    path: str,
    text: str,
    config: ChunkerConfig = ChunkerConfig(),
    count_tokens: Callable[[str], int] = estimate_tokens,
    count_many: Callable[[list[str]], list[int]] | None = None,
) -> list[Chunk]:
    """Split one note into chunks; see the module docstring.

    Args:
        path: the note's path relative to the notes folder ('/'-separated).
        text: the note's full text.
        config: token limit and overlap.
        count_tokens: word pieces of a string, as the embedder's tokenizer counts them.
        count_many: the same for a list of strings in one call (faster), if the tokenizer has it.

    Returns:
        Chunks in note order, with stable ids.
    """
    count_many = count_many or (lambda texts: [count_tokens(t) for t in texts])
    note = parse_note(path, text)
    sections = list(_sections(note))
    # Packing asks "does this join still fit?" once per block added, and tokenising every
    # growing join made `rag index --full` slow (~60k tokenizer calls for 1,000 notes). Word-
    # piece counts add up over whitespace-separated parts, so the packer sums the counts of
    # the lines instead (all counted in one batch); every chunk is then counted exactly, and
    # a section whose sum was wrong (a tokenizer that merges across spaces) is packed again
    # the exact, slower way. Either way no chunk exceeds the limit.
    lines = list(dict.fromkeys(u.text for _, blocks in sections for block in blocks for u in block))
    heads = list(dict.fromkeys(embed_text(note.title, h, "") for h, _ in sections))
    counted = count_many(["", "x", embed_text(note.title, "", ""), *heads, *lines])
    empty, x, plain = counted[0], counted[1] - counted[0], counted[2]
    head_of = dict(zip(heads, counted[3 : 3 + len(heads)]))
    parts = {line: n - empty for line, n in zip(lines, counted[3 + len(heads) :])}

    def part(line: str) -> int:
        """Tokens a line (or a piece of one) adds to a join."""
        n = parts.get(line)
        if n is None:
            n = parts[line] = count_tokens(line) - empty
        return n

    def fits_under(heading: str) -> Callable[[str], bool]:
        """Exact: does this body, under the title and `heading`, fit the limit?"""
        return lambda body: count_tokens(embed_text(note.title, heading, body)) <= config.max_tokens

    packed: list[tuple[str, list[list[_Unit]]]] = []
    for heading, blocks in sections:
        head = head_of[embed_text(note.title, heading, "")]
        if head + x > config.max_tokens:
            heading, head = "", plain  # a heading path so long it leaves no room for text: drop it

        def fits_units(units: list[_Unit], head: int = head) -> bool:
            return head + sum(part(u.text) for u in units) <= config.max_tokens

        packed.append((heading, list(_pack(blocks, fits_under(heading), fits_units, config.overlap))))
    exact = count_many([embed_text(note.title, h, _join(units)) for h, section in packed for units in section])
    i = 0
    for s, (heading, section) in enumerate(packed):
        if any(n > config.max_tokens for n in exact[i : i + len(section)]):
            fits = fits_under(heading)
            packed[s] = (heading, list(_pack(sections[s][1], fits, lambda units, fits=fits: fits(_join(units)), config.overlap)))
        i += len(section)

    chunks: list[Chunk] = []
    seen: dict[str, int] = {}
    for heading, section in packed:
        for units in section:
            body = _join(units)
            digest = hashlib.sha256(embed_text(note.title, heading, body).encode()).hexdigest()
            occurrence = seen.get(digest, 0)
            seen[digest] = occurrence + 1
            cid = hashlib.sha256(f"{path}\0{digest}\0{occurrence}".encode()).hexdigest()[:16]
            chunks.append(Chunk(cid, path, note.title, heading, units[0].start, units[-1].end, body, digest))
    return chunks


def _heading_text(raw: str) -> str:
    return _ATX_CLOSE.sub("", raw).strip()


def _fence_state(line: str, fence: str | None) -> str | None:
    """The open fence marker after `line` (None outside a code fence)."""
    m = _FENCE.match(line)
    if fence is None:
        return m.group(1) if m else None
    if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip().strip(fence[0]):
        return None
    return fence


def _sections(note: Note) -> Iterator[tuple[str, list[list[_Unit]]]]:
    """(heading path, blocks) per section; a block is a list of line units."""
    stack: list[tuple[int, str]] = []  # (level, heading text)
    blocks: list[list[_Unit]] = []
    current: list[_Unit] = []
    fence: str | None = None

    def path() -> str:
        names = [t for lvl, t in stack if not (lvl == 1 and t == note.title)]
        return " > ".join(names)

    def flush(block: list[_Unit]) -> None:
        if any(_HAS_WORD.search(u.text) for u in block):  # a lone `---` or `***` is no content
            blocks.append(block)

    def set_heading(level: int, text: str) -> None:
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, text))

    heading = ""
    for i in range(note.body_start - 1, len(note.lines)):
        line, lineno = note.lines[i], i + 1
        was_in_fence = fence is not None
        fence = _fence_state(line, fence)
        if was_in_fence or fence is not None:  # fenced code: one block of its own, blank lines too
            if not was_in_fence and current:
                flush(current)
                current = []
            current.append(_Unit(lineno, lineno, line))
            if was_in_fence and fence is None:
                flush(current)
                current = []
            continue
        m = _ATX.match(line)
        setext = _SETEXT.match(line)
        is_setext = bool(
            setext
            and current
            and current[-1].text.strip()
            and not _NOT_PARAGRAPH.match(current[0].text)
            and not _FENCE.match(current[0].text)
        )
        if m or is_setext:
            if is_setext:
                level, text = (1 if setext.group(1)[0] == "=" else 2), " ".join(u.text.strip() for u in current)
                current = []
            else:
                level, text = len(m.group(1)), _heading_text(m.group(2) or "")
            if current:
                flush(current)
            if blocks:
                yield heading, blocks
            blocks, current = [], []
            if text:
                set_heading(level, text)
            heading = path()
            continue
        if not line.strip():
            if current:
                flush(current)
                current = []
            continue
        current.append(_Unit(lineno, lineno, line))
    if current:
        flush(current)
    if blocks:
        yield heading, blocks


def _join(units: list[_Unit]) -> str:
    out = units[0].text
    for prev, unit in zip(units, units[1:]):
        out += ("\n" if unit.start == prev.end + 1 or unit.start == prev.end else "\n\n") + unit.text
    return out.strip("\n")


def _split_block(
    block: list[_Unit], fits: Callable[[str], bool], fits_units: Callable[[list[_Unit]], bool]
) -> list[list[_Unit]]:
    """Pieces of an oversize block, each fitting: whole lines, then sentences, then words."""
    pieces: list[list[_Unit]] = []
    piece: list[_Unit] = []
    for unit in block:
        parts = [unit] if fits_units([unit]) else _split_line(unit, fits)
        for part in parts:
            if piece and not fits_units(piece + [part]):
                pieces.append(piece)
                piece = []
            piece.append(part)
    if piece:
        pieces.append(piece)
    return pieces


def _split_line(unit: _Unit, fits: Callable[[str], bool]) -> list[_Unit]:
    sentences = [s for s in _SENTENCE_END.split(unit.text) if s.strip()]
    out: list[_Unit] = []
    buf = ""
    for sentence in sentences:
        if not fits(sentence):  # one enormous sentence: cut by words (a single giant word stays whole)
            words = sentence.split()
            if buf:
                out.append(_Unit(unit.start, unit.end, buf))
                buf = ""
            for word in words:
                cand = f"{buf} {word}" if buf else word
                if buf and not fits(cand):
                    out.append(_Unit(unit.start, unit.end, buf))
                    cand = word
                buf = cand
            continue
        cand = f"{buf} {sentence}" if buf else sentence
        if buf and not fits(cand):
            out.append(_Unit(unit.start, unit.end, buf))
            cand = sentence
        buf = cand
    if buf:
        out.append(_Unit(unit.start, unit.end, buf))
    return out


def _pack(
    blocks: list[list[_Unit]],
    fits: Callable[[str], bool],
    fits_units: Callable[[list[_Unit]], bool],
    overlap: int,
) -> Iterator[list[_Unit]]:
    """Greedy packing of blocks into chunks that fit (`fits_units` judges a join of units)."""
    flat: list[list[_Unit]] = []
    for block in blocks:
        flat.extend([block] if fits_units(block) else _split_block(block, fits, fits_units))
    chunk: list[list[_Unit]] = []
    for block in flat:
        if chunk and not fits_units([u for b in chunk + [block] for u in b]):
            yield [u for b in chunk for u in b]
            carried = chunk[-overlap:] if overlap else []
            # carry the overlap only if it leaves room for the new block
            while carried and not fits_units([u for b in carried + [block] for u in b]):
                carried = carried[1:]
            chunk = list(carried)
        chunk.append(block)
    if chunk:
        yield [u for b in chunk for u in b]
