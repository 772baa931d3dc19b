"""The chunker: sections, line spans, token limits and markdown edge cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.chunker import ChunkerConfig, chunk_note, embed_text, estimate_tokens, parse_note, split_lines
from rag.text import normalize_ws

REPO = Path(__file__).resolve().parent.parent


def spans(text, **kw):
    return [(c.heading, c.start_line, c.end_line) for c in chunk_note("n.md", text, ChunkerConfig(**kw))]


def assert_verbatim(text: str, chunks) -> None:
    """Every chunk's text stands in the note between its start and end line."""
    lines = split_lines(text)
    for c in chunks:
        assert 1 <= c.start_line <= c.end_line <= len(lines)
        window = normalize_ws(" ".join(lines[c.start_line - 1 : c.end_line]))
        assert normalize_ws(c.text) in window, (c.start_line, c.end_line, c.text)


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("empty", "", []),
        ("blank lines only", "\n\n  \n", []),
        ("no headings", "One paragraph.\n\nAnother one.\n", [("", 1, 3)]),
        ("front matter", "---\ntitle: T\n---\n# T\n\nBody.\n", [("", 6, 6)]),
        ("headings nest", "# T\n## A\ntext a\n### B\ntext b\n## C\ntext c\n", [("A", 3, 3), ("A > B", 5, 5), ("C", 7, 7)]),
        (
            "code fence hash lines are not headings",
            "# T\n## A\n```\n# comment\n## also not\n```\n",
            [("A", 3, 6)],
        ),
        ("tilde fence", "# T\n~~~\n# x\n~~~\nafter\n", [("", 2, 5)]),
        ("setext headings", "Title\n=====\n\nSub\n---\ntext\n", [("Title > Sub", 6, 6)]),
        ("thematic break is no content", "# T\n\n---\n\ntext\n", [("", 5, 5)]),
        ("heading only", "# T\n## Empty\n", []),
        ("closing hashes stripped", "# T\n## A ##\nx\n", [("A", 3, 3)]),
        ("hashtag is not a heading", "#hashtag line\n", [("", 1, 1)]),
        ("unterminated fence runs to the end", "# T\n```\n# x\n\ny\n", [("", 2, 5)]),
    ],
)
def test_sections_and_spans(name, text, expected):
    assert spans(text) == expected
    assert_verbatim(text, chunk_note("n.md", text))


def test_crlf_and_cr_count_lines_like_an_editor():
    lf = "# T\n\n## A\n\nalpha\nbeta\n"
    assert spans(lf) == spans(lf.replace("\n", "\r\n")) == spans(lf.replace("\n", "\r")) == [("A", 5, 6)]
    assert "\r" not in chunk_note("n.md", lf.replace("\n", "\r\n"))[0].text


def test_unicode_and_bom():
    text = "\ufeff# Überblick\n\nKünstliche Intelligenz — 機械学習 😀 is fine.\n"
    (c,) = chunk_note("ü.md", text)
    assert c.title == "Überblick" and c.start_line == 3 and "機械学習" in c.text


@pytest.mark.parametrize(
    "text, title",
    [
        ("---\ntitle: From Front Matter\n---\n# Heading\nx\n", "From Front Matter"),
        ("# From Heading\nx\n", "From Heading"),
        ("no heading\n", "my note"),
        ("---\ntitle: [unclosed\n---\n# Fallback\nx\n", "Fallback"),  # malformed YAML
        ("```\n# in fence\n```\n# Real\n", "Real"),
    ],
)
def test_title_sources(text, title):
    assert parse_note("dir/my-note.md", text).title == title


def test_malformed_front_matter_is_skipped_not_indexed():
    text = "---\ntitle: [unclosed\ntags: x\n---\nBody text.\n"
    (c,) = chunk_note("n.md", text)
    assert c.text == "Body text." and c.start_line == 5


def test_front_matter_without_closing_is_body():
    (c,) = chunk_note("n.md", "---\nnot front matter\n")
    assert c.start_line == 1


def test_lists_and_tables_stay_whole():
    text = "# T\n## L\n- one\n- two\n- three\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    (c,) = chunk_note("n.md", text)
    assert c.text == "- one\n- two\n- three\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    assert (c.start_line, c.end_line) == (3, 9)


def test_heading_path_and_title_are_embedded():
    (c,) = chunk_note("a/dpo.md", "---\ntitle: Alignment\n---\n## DPO\nLoss details.\n")
    assert c.heading == "DPO"
    assert embed_text(c.title, c.heading, c.text) == "Alignment > DPO\n\nLoss details."


def _para(n_words: int, seed: str = "w") -> str:
    return " ".join(f"{seed}{i}" for i in range(n_words))


def test_chunks_respect_the_token_limit_and_overlap():
    paras = [_para(25, s) + "." for s in "abcdefghij"]
    text = "# T\n\n" + "\n\n".join(paras) + "\n"
    cfg = ChunkerConfig(max_tokens=120, overlap=1)
    chunks = chunk_note("n.md", text, cfg)
    assert len(chunks) > 2
    for c in chunks:
        assert estimate_tokens(embed_text(c.title, c.heading, c.text)) <= cfg.max_tokens
    for a, b in zip(chunks, chunks[1:]):  # one block of overlap: b starts where a's last block starts
        assert b.start_line == a.end_line
    assert_verbatim(text, chunks)


def test_a_block_exactly_at_the_limit_fits_in_one_chunk():
    title = "T"
    body = _para(10) + "."
    limit = estimate_tokens(embed_text(title, "", body))
    text = f"# {title}\n\n{body}\n"
    assert len(chunk_note("n.md", text, ChunkerConfig(max_tokens=limit))) == 1
    assert len(chunk_note("n.md", text, ChunkerConfig(max_tokens=limit - 1))) == 2


def test_one_huge_line_is_split_by_sentences_and_words():
    sentences = " ".join(f"Sentence {i} says {_para(8, 'x')}." for i in range(40))
    giant_word_run = _para(400, "y")
    text = f"# T\n\n{sentences}\n\n{giant_word_run}\n"
    chunks = chunk_note("n.md", text, ChunkerConfig(max_tokens=100, overlap=0))
    assert len(chunks) > 10
    for c in chunks:
        assert estimate_tokens(embed_text(c.title, c.heading, c.text)) <= 100
        assert c.start_line == c.end_line
    assert_verbatim(text, chunks)
    joined = " ".join(c.text for c in chunks)
    assert normalize_ws(joined) == normalize_ws(sentences + " " + giant_word_run)


def test_ids_are_stable_and_unique():
    text = "# T\n\nsame text\n\n## A\n\nsame text\n\n## A\n\nsame text\n"
    a = chunk_note("n.md", text)
    b = chunk_note("n.md", text)
    assert [c.id for c in a] == [c.id for c in b]
    assert len({c.id for c in a}) == len(a) == 3
    assert a[1].hash == a[2].hash  # same context and text: same embedding, cached once
    assert chunk_note("other.md", text)[0].id != a[0].id


def test_editing_one_section_changes_only_its_hashes():
    text = "# T\n\n## A\n\nalpha text\n\n## B\n\nbeta text\n"
    before = {c.heading: c.hash for c in chunk_note("n.md", text)}
    after = {c.heading: c.hash for c in chunk_note("n.md", text.replace("beta text", "beta edited"))}
    assert before["A"] == after["A"] and before["B"] != after["B"]


def test_real_notes_fit_the_real_tokenizer_and_spans_are_verbatim():
    """All shipped notes, counted with all-MiniLM-L6-v2's own tokenizer (no torch needed)."""
    from rag.embedder import load_embedder

    emb = load_embedder("all-MiniLM-L6-v2")
    cfg = ChunkerConfig(max_tokens=200)
    files = sorted((REPO / "notes").rglob("*.md"))
    assert len(files) >= 30
    total = 0
    for f in files:
        text = f.read_text(encoding="utf-8")
        chunks = chunk_note(f.name, text, cfg, emb.count_tokens, emb.count_many)
        assert chunks, f
        # the batched, summed counts pack exactly as counting every join would
        assert chunks == chunk_note(f.name, text, cfg, emb.count_tokens, lambda ts: [emb.count_tokens(t) for t in ts])
        total += len(chunks)
        for c in chunks:
            assert emb.count_tokens(embed_text(c.title, c.heading, c.text)) <= min(cfg.max_tokens, emb.max_tokens)
        assert_verbatim(text, chunks)
    assert total > len(files) * 3


def test_a_tokenizer_whose_counts_do_not_add_up_still_gets_chunks_that_fit():
    """Counting characters, a join costs more than its lines: the summed estimate is low, the
    exact check catches it, and the section is packed the exact way."""
    def by_chars(text: str) -> int:
        return 2 + len(text) // 4

    paras = [_para(12, s) + "." for s in "abcdefghijkl"]
    text = "# T\n\n## S\n\n" + "\n\n".join(paras) + "\n"
    cfg = ChunkerConfig(max_tokens=90, overlap=1)
    chunks = chunk_note("n.md", text, cfg, by_chars)
    assert len(chunks) >= 2
    for c in chunks:
        assert by_chars(embed_text(c.title, c.heading, c.text)) <= cfg.max_tokens
    assert_verbatim(text, chunks)
    covered = " ".join(c.text for c in chunks)
    assert all(p in covered for p in paras)
