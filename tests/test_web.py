"""The web page, driven in a real headless Chromium against the real app on loopback.

Debian's `chromium` (installed by `make browser`) is driven by Playwright through
`executable_path`; Playwright's own browser downloads are never used. The app is served
by uvicorn on 127.0.0.1 over a tmp notes folder indexed with the hashing embedder; one
test (marked `model`) serves the shipped notes indexed with the real model. Every page
runs with requests to anything but this server blocked and recorded, and fails on any
JavaScript error. Screenshots (desktop and phone width) go to eval/results/screenshots/
with UPDATE_SCREENSHOTS=1 (else to a temporary folder).
Without chromium or playwright the browser tests skip with the reason, except under CI,
where the set-up installs both and their absence is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from rag.app import create_app
from rag.generators import Answer, GeneratorInfo, citation_from_hit
from rag.service import RagService
from rag.settings import Settings

from .conftest import REPO, write_notes

SHOTS = REPO / "eval" / "results" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Without the background-networking flags Chromium keeps dialling out, and the closed
# network refuses it; without --no-sandbox it cannot start as root in a container.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000
THRESHOLD = 0.25  # hashing-embedder evidence: these notes' questions score >= 0.38, off-topic ones <= 0.17

NOTES = {
    "alignment/dpo.md": """---
title: Direct Preference Optimization
tags: [alignment, preference]
---
# Direct Preference Optimization

DPO trains a language model directly on preference pairs, with no separate reward model.
It was published by Rafailov and colleagues in 2023. See also [RLHF](rlhf.md).

## Loss

The DPO loss compares log-probability ratios of the chosen and rejected answers against a
frozen reference model. A temperature **beta** controls how far the policy may drift.

| Method | Reward model | Online sampling |
|---|---|---|
| RLHF | yes | yes |
| DPO | no | no |
""",
    "alignment/rlhf.md": """# RLHF

Reinforcement learning from human feedback fits a reward model to human rankings, then
optimises the policy against it with PPO.

## Steps

1. Collect comparisons from human labellers.
2. Train a reward model on the comparisons.
3. Optimise the policy with PPO under a KL penalty.
""",
    # long, so that the cited section at its end must be scrolled to
    "inference/decoding.md": """---
title: Decoding Strategies
tags: [inference]
---
# Decoding Strategies

A language model outputs a probability distribution over the next token; a decoding
strategy turns that distribution into text, one token at a time.

## Greedy decoding

Greedy decoding always takes the single most likely token. It is fast and deterministic,
but it often falls into loops and bland, repetitive phrasing on open-ended prompts.

## Beam search

Beam search keeps the best few partial sequences at every step and returns the one with
the highest total log-probability. It suits translation and summarisation, where one
correct output exists, better than story writing.

## Temperature

Temperature rescales the logits before the softmax. Values below one sharpen the
distribution and make output more deterministic; values above one flatten it.

```python
# not a heading: a comment inside a code fence
probs = softmax(logits / temperature)
```

## Top-k sampling

Top-k sampling keeps only the k most likely tokens, renormalises their probabilities and
samples among them. A fixed k is too wide for confident steps and too narrow for open ones.

## Top-p sampling

Nucleus sampling keeps the smallest set of tokens whose cumulative probability exceeds p,
so the candidate set grows and shrinks with the model's confidence.

## Repetition penalty

A repetition penalty divides the logits of tokens that already appeared, which discourages
loops without banning repeated words outright.

## Min-p sampling

Min-p sampling drops every token whose probability is below a fraction of the top token's
probability, a threshold that scales with confidence.

## Speculative decoding

Speculative decoding lets a small draft model propose several tokens that the large model
verifies in a single forward pass. Accepted tokens are kept, so the output distribution is
unchanged while generation runs two to three times faster.
""",
    "misc/untrusted.md": """# Untrusted markup

Notes are untrusted text: a note may contain <script>alert('xss')</script> or an image
tag like <img src=x onerror="alert('img')"> and the page must show them as plain text.

A [sneaky link](javascript:alert('link')) must not run script when clicked.
""",
}

FENCE_LINE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ON_TOPIC = "How much faster is speculative decoding?"
OFF_TOPIC = "What is the capital of France?"


# -- the browser ---------------------------------------------------------------------------


def _unavailable(reason: str):
    if os.environ.get("CI"):  # CI's set-up installs the browser: its absence is a bug there
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install -e '.[test]'")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        _unavailable("no chromium on PATH: `make browser` installs Debian's (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Tab:
    """A page in its own context that records what must never happen: JS errors, dialogs
    (an XSS would open one) and requests to anywhere but the app's own server."""

    def __init__(self, browser, base: str, viewport: dict):
        self.context = browser.new_context(viewport=viewport, base_url=base, reduced_motion="reduce")
        self.context.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.outside: list[str] = []
        self.context.route("**/*", self._only_local(base))
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", self._dialog)

    def _only_local(self, base: str):
        def handle(route):
            url = route.request.url
            if url.startswith(base + "/") or url == base or url.startswith("data:"):
                route.continue_()
            else:
                self.outside.append(url)
                route.abort()

        return handle

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def close(self):
        self.context.close()
        assert not self.errors, f"JavaScript errors: {self.errors}"
        assert not self.outside, f"requests beyond the app: {self.outside}"
        assert not self.dialogs, f"dialogs opened (script ran): {self.dialogs}"


@pytest.fixture
def tabs(browser):
    opened: list[Tab] = []

    def open_tab(server: LiveServer, viewport: dict = DESKTOP) -> Tab:
        tab = Tab(browser, server.url, viewport)
        opened.append(tab)
        return tab

    yield open_tab
    for tab in opened:
        tab.close()


# -- the app on loopback -------------------------------------------------------------------


class LiveServer:
    """The real app under uvicorn on 127.0.0.1, on a port the OS picked, in a thread."""

    def __init__(self, service: RagService):
        # port 0, read back once bound: no race for a free port (a socket bound here and
        # handed to uvicorn through `sockets=` answered every request ~40 ms late, measured)
        config = uvicorn.Config(create_app(service), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *_) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class GatedGenerator:
    """Streams its answer in two pieces and, between them, waits for the test to let it go
    on, so the test sees the page mid-stream without racing a clock."""

    name = "gated"

    def __init__(self) -> None:
        self.gate = threading.Event()

    def generate(self, question, hits, evidence) -> Answer:
        *_, answer = self.stream(question, hits, evidence)
        return answer

    def stream(self, question, hits, evidence):
        first = "The notes say: "
        yield first
        self.gate.wait(TIMEOUT_MS / 1000)
        rest = f"{hits[0].chunk.text.splitlines()[0]} [1]"
        yield rest
        yield Answer(question=question, answer=first + rest, generator=self.name, citations=[citation_from_hit(1, hits[0])])


def _settings(root: Path, **kw) -> Settings:
    kw.setdefault("abstain_threshold", THRESHOLD)
    kw.setdefault("max_question_chars", 200)
    return Settings(notes_dir=root / "notes", index_dir=root / "index", embedder="hash", _env_file=None, **kw)


@pytest.fixture(scope="module")
def notes_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("web")
    write_notes(root / "notes", NOTES)
    return root


@pytest.fixture(scope="module")
def server(notes_root):
    with pytest.MonkeyPatch.context() as mp:  # module scope: clear RAG_* here, too
        for key in [k for k in os.environ if k.startswith("RAG_")]:
            mp.delenv(key)
        svc = RagService(_settings(notes_root))
    svc.index()
    # a generator that is known but not ready, as an uninstalled LLM extra would be
    svc.registry.register(
        GeneratorInfo("local-llm", "a local model", lambda s: None, lambda s: (False, "no model file"), extra="llama")
    )
    gated = GatedGenerator()
    svc.registry.register(GeneratorInfo("gated", "streams slowly", lambda s: gated, lambda s: (True, "test")))
    with LiveServer(svc) as live:
        live.gated = gated
        yield live


def _shot(page, name: str) -> None:
    """A screenshot; committed ones in eval/results/screenshots/ are replaced only when
    UPDATE_SCREENSHOTS=1, so an ordinary test run leaves the tree clean."""
    folder = SHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else Path(tempfile.gettempdir()) / "rag-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=False)


def _ask(page, question: str, sent: bool = True) -> None:
    """Type a question, press Enter and wait until the answer (or its error) is complete."""
    box = page.locator("#q")
    box.fill(question)
    if sent:
        with page.expect_response("**/ask"):
            box.press("Enter")
    else:
        box.press("Enter")
    # a locator, not wait_for_function: that evals a string, which the page's CSP forbids
    page.locator("body:not(.busy)").wait_for(state="attached")


# -- tests ---------------------------------------------------------------------------------


def test_page_is_served_with_its_assets_and_a_strict_policy(server):
    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert 'src="/static/app.js"' in r.text and "http" not in r.text.replace("http-equiv", "")
    for asset, kind in [("app.js", "javascript"), ("markdown.js", "javascript"), ("api.js", "javascript"), ("app.css", "css")]:
        a = httpx.get(f"{server.url}/static/{asset}")
        assert a.status_code == 200 and kind in a.headers["content-type"]
        assert "https://" not in a.text and "//cdn" not in a.text
    assert httpx.get(server.url + "/static/nope.js").status_code == 404


@pytest.mark.browser
def test_ask_shows_answer_citations_and_the_highlighted_lines(server, tabs):
    tab = tabs(server)
    page = tab.page
    page.goto("/")
    assert page.evaluate("document.activeElement.id") == "q"  # the question box has focus
    page.locator("#status-text").get_by_text("4 notes", exact=True).wait_for()
    with page.expect_request("**/ask") as sent:
        _ask(page, ON_TOPIC)
    assert sent.value.post_data_json == {"question": ON_TOPIC, "stream": True, "generator": "extractive"}

    answer = page.locator("#answer-text")
    assert page.locator("#answer-label").text_content() == "Answer"
    assert "two to three times faster" in answer.inner_text()
    cite = answer.locator("a.cite").first
    assert cite.inner_text() == "[1]"
    first = page.locator("#passage-1")
    assert "Decoding Strategies" in first.locator(".passage-open").inner_text()
    assert "Speculative decoding" in first.locator(".passage-heading").inner_text()
    assert first.locator(".passage-path").inner_text() == "inference/decoding.md"
    assert first.locator(".passage-lines").inner_text() == "lines 53–55"
    assert page.locator("#passages-title").inner_text() == "Sources"
    _shot(page, "desktop-answer.png")

    cite.click()  # [1] jumps to its passage and focuses it
    assert page.evaluate("document.activeElement.id") == "passage-1"

    first.locator(".passage-open").click()
    pane = page.locator("#note-pane")
    page.locator("#note-body[data-range='53-55'] .hl-first").wait_for()  # fetched, rendered, highlighted
    assert page.locator("#note-title").inner_text() == "Decoding Strategies"
    assert page.evaluate("document.activeElement.id") == "note-title"
    assert page.locator("#note-range-text").inner_text() == "Lines 53–55 highlighted."
    marked = page.locator("#note-body .hl")
    assert marked.count() == 1
    assert marked.first.inner_text().startswith("Speculative decoding lets a small draft model")
    assert (marked.first.get_attribute("data-l0"), marked.first.get_attribute("data-l1")) == ("53", "55")
    assert _in_view(page, "#note-body .hl-first")  # scrolled to: the note is longer than the screen
    assert not _in_view(page, "#note-body [data-l0='7']")  # ... and its top scrolled away
    _shot(page, "desktop-note.png")

    # the source view numbers the file's lines: exactly the cited ones are highlighted
    page.locator("#note-mode").click()
    lines = NOTES["inference/decoding.md"].splitlines()
    got = page.locator("#note-body .sl.hl")
    assert got.count() == 3
    for i in range(3):
        assert got.nth(i).inner_text() == f"{53 + i}{lines[52 + i]}"
    assert _in_view(page, "#note-body .hl-first")
    page.locator("#note-mode").click()  # back to rendered for the tests that follow

    page.keyboard.press("Escape")  # closes the note, focus returns to the passage's link
    pane.wait_for(state="hidden")
    assert page.evaluate("document.activeElement.className") == "passage-open"


def _in_view(page, selector: str) -> bool:
    return page.evaluate(
        """sel => { const r = document.querySelector(sel).getBoundingClientRect();
                    return r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth; }""",
        selector,
    )


@pytest.mark.browser
def test_off_topic_question_abstains_with_closest_matches(server, tabs):
    page = tabs(server).page
    page.goto("/")
    _ask(page, OFF_TOPIC)
    card = page.locator("#answer")
    assert "abstained" in card.get_attribute("class")
    assert page.locator("#answer-label").text_content() == "Not in the notes"
    assert page.locator("#answer-text p").first.inner_text() == "The notes don't cover this."
    assert page.locator("#answer-text a.cite").count() == 0
    assert page.locator("#passages-title").inner_text() == "Closest matches"
    assert page.locator("#passage-list .passage").count() >= 1
    assert "closest" in page.locator("#passages").get_attribute("class")
    _shot(page, "desktop-abstain.png")


@pytest.mark.browser
def test_api_errors_are_shown_as_messages(server, tabs):
    page = tabs(server).page
    page.goto("/")
    _ask(page, "why " * 60)  # 240 characters: over this server's limit of 200
    message = page.locator("#message")
    assert message.is_visible()
    text = message.inner_text()
    assert "could not be answered" in text and "the limit is 200" in text and "BadQuestion (422)" in text
    assert "{" not in text
    assert page.locator("#answer").is_hidden()

    _ask(page, "   ", sent=False)  # blank: told on the page, no request needed
    assert "Type a question first" in message.inner_text()
    assert page.evaluate("document.activeElement.id") == "q"

    page.goto("/#note=missing/nowhere.md")
    note_message = page.locator("#note-message")
    note_message.wait_for(state="visible")
    assert "could not be opened" in note_message.inner_text() and "NoteNotFound (404)" in note_message.inner_text()


@pytest.mark.browser
def test_a_server_without_an_index_says_so(tmp_path, tabs):
    write_notes(tmp_path / "notes", {"a.md": "# A\n\nSome text.\n"})
    with LiveServer(RagService(_settings(tmp_path))) as live:  # never indexed
        page = tabs(live).page
        page.goto("/")
        page.locator("#status.bad").wait_for()
        assert page.locator("#status-text").inner_text() == "No usable index"
        page.locator("#rebuild").wait_for()  # loopback may build it from here
        _ask(page, "What is A?")
        message = page.locator("#message")
        assert "could not be answered" in message.inner_text() and "IndexNotFound (503)" in message.inner_text()

        page.locator("#rebuild").click()  # builds the index; the page then answers
        page.locator("#message.info").wait_for()
        assert "Index rebuilt" in page.locator("#message").inner_text()
        page.locator("#status:not(.bad) #status-text").get_by_text("1 note", exact=True).wait_for()
        _ask(page, "What is A?")
        assert page.locator("#answer").is_visible() and page.locator("#message").is_hidden()


@pytest.mark.browser
def test_generator_picker_shows_which_are_ready(server, tabs):
    page = tabs(server).page
    page.goto("/")
    picker = page.locator("#generator")
    picker.locator("option[value='local-llm']").wait_for(state="attached")
    assert picker.input_value() == "extractive"
    assert picker.locator("option[value='extractive']").is_enabled()
    local = picker.locator("option[value='local-llm']")
    assert local.is_disabled() and local.inner_text() == "local-llm (not ready)"
    page.locator("#generator-info summary").click()
    info = page.locator("#generator-list .not-ready", has_text="local-llm").inner_text()
    assert "no model file" in info and "rag[llama]" in info


@pytest.mark.browser
def test_rebuild_button_needs_the_token_when_one_is_set(tmp_path, tabs):
    write_notes(tmp_path / "notes", NOTES)
    svc = RagService(_settings(tmp_path, admin_token="s3cret"))
    svc.index()
    with LiveServer(svc) as live:
        page = tabs(live).page
        page.goto("/")
        page.locator("#status-text").get_by_text("4 notes", exact=True).wait_for()
        button = page.locator("#rebuild")
        button.wait_for()
        (tmp_path / "notes" / "new.md").write_text("# New\n\nA new note.\n", encoding="utf-8")
        button.click()
        page.locator("#token").fill("wrong")
        page.locator("#token").press("Enter")
        page.locator("#message.warn").wait_for()
        assert "Unauthorized (401)" in page.locator("#message").inner_text()
        button.click()
        page.locator("#token").fill("s3cret")
        page.locator("#token").press("Enter")
        page.locator("#message.info").wait_for()
        assert "1 added" in page.locator("#message").inner_text()
        page.locator("#status-text").get_by_text("5 notes", exact=True).wait_for()


@pytest.mark.browser
def test_phone_width_reads_well_and_the_note_replaces_the_answer(server, tabs):
    page = tabs(server, PHONE).page
    page.goto("/")
    _ask(page, "What does DPO train on?")
    assert "preference pairs" in page.locator("#answer-text").inner_text()
    assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth")  # no sideways scrolling
    _shot(page, "phone-answer.png")

    link = page.locator("#passage-1 .passage-open")
    link.click()
    page.locator("#note-pane").wait_for(state="visible")
    assert page.locator("#ask-pane").is_hidden()  # one column: the note takes the screen
    page.locator("#note-body .hl").first.wait_for()
    assert _in_view(page, "#note-body .hl-first")
    assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth")
    _shot(page, "phone-note.png")

    # a link to another note opens it here
    page.locator("#note-body a", has_text="RLHF").click()
    page.locator("#note-title", has_text="RLHF").wait_for()
    assert page.locator("#note-range").is_hidden()
    page.go_back()
    page.locator("#note-title", has_text="Direct Preference Optimization").wait_for()
    page.locator("#note-close").click()
    page.locator("#ask-pane").wait_for(state="visible")
    assert page.evaluate("document.activeElement.className") == "passage-open"


@pytest.mark.browser
def test_untrusted_note_text_is_shown_not_run(server, tabs):
    tab = tabs(server)
    page = tab.page
    page.goto("/")
    _ask(page, "What happens to script tags in untrusted notes?")
    assert "<script>alert('xss')</script>" in page.locator("#answer-text").inner_text()
    page.locator("#passage-1 .passage-open").click()
    body = page.locator("#note-body")
    body.locator(".hl").first.wait_for()
    assert "<img src=x onerror=\"alert('img')\">" in body.inner_text()
    assert page.locator("img, #note-body script, #answer script").count() == 0
    sneaky = body.locator(".link-text", has_text="sneaky link")
    assert sneaky.count() == 1 and body.locator("a", has_text="sneaky link").count() == 0
    sneaky.click()
    page.wait_for_timeout(200)  # time for a script to have run, had it been let through
    # Tab.close asserts that no dialog opened and no script error happened


@pytest.mark.browser
def test_a_question_in_the_url_is_asked_on_load(server, tabs):
    page = tabs(server).page
    page.goto("/#q=What+is+nucleus+sampling%3F&note=inference/decoding.md&lines=38-39")
    page.locator("#answer[aria-busy='false'] .cite").first.wait_for()
    assert page.locator("#q").input_value() == "What is nucleus sampling?"
    assert page.locator("#note-body .hl").first.inner_text().startswith("Nucleus sampling keeps")
    page.keyboard.press("Escape")
    page.keyboard.press("/")  # the slash key goes back to the question box
    assert page.evaluate("document.activeElement.id") == "q"


@pytest.mark.browser
@pytest.mark.model
def test_real_notes_and_model_in_the_browser(real_service, tabs):
    """The shipped notes with the packaged model, as a user sees them (screenshots too)."""
    with LiveServer(real_service) as live:
        for name, viewport in [("desktop", DESKTOP), ("phone", PHONE)]:
            page = tabs(live, viewport).page
            page.goto("/")
            _ask(page, "What does DPO optimise instead of training a reward model?")
            assert page.locator("#answer:not(.abstained)").is_visible()
            first = page.locator("#passage-1")
            assert first.locator(".passage-path").inner_text() == "alignment/dpo.md"
            _shot(page, f"real-{name}-answer.png")
            first.locator(".passage-open").click()
            page.locator("#note-body .hl").first.wait_for()
            assert _in_view(page, "#note-body .hl-first")
            _shot(page, f"real-{name}-note.png")
            page.locator("#note-close").click()
            _ask(page, "Who won the 1998 football world cup?")
            assert page.locator("#answer.abstained").is_visible()
            _shot(page, f"real-{name}-abstain.png")


@pytest.mark.browser
def test_every_chunk_of_the_shipped_notes_highlights_its_lines(tmp_path, tabs):
    """The renderer's line map against the chunker's: for every chunk of every shipped note,
    the highlighted elements lie in the chunk's span and cover each of its non-blank lines."""
    shutil.copytree(REPO / "notes", tmp_path / "notes")
    svc = RagService(_settings(tmp_path))
    svc.index()
    chunks = [(c.note, c.start_line, c.end_line) for c in svc.snapshot.chunks]
    assert len({c[0] for c in chunks}) >= 30
    with LiveServer(svc) as live:
        page = tabs(live).page
        page.goto("/")
        spans = page.evaluate(
            """async (chunks) => {
                const body = document.getElementById("note-body");
                const out = [];
                for (const [note, a, b] of chunks) {
                    history.replaceState(null, "", "#" + new URLSearchParams({note, lines: `${a}-${b}`}));
                    window.dispatchEvent(new HashChangeEvent("hashchange")); // handled at once, not at the next frame
                    for (let i = 0; i < 2000 && !(body.dataset.note === note && body.dataset.range === `${a}-${b}`); i++) {
                        await new Promise((r) => setTimeout(r, 5));
                    }
                    out.push([...body.querySelectorAll(".hl")].map((e) => [+e.dataset.l0, +e.dataset.l1]));
                }
                return out;
            }""",
            chunks,
        )
    texts = {note: (tmp_path / "notes" / note).read_text(encoding="utf-8").splitlines() for note, _, _ in chunks}
    uncovered = []
    for (note, a, b), got in zip(chunks, spans):
        assert got, f"{note} lines {a}-{b}: nothing highlighted"
        assert all(l1 >= a and l0 <= b for l0, l1 in got), f"{note} lines {a}-{b}: highlighted {got}"
        lines = texts[note]
        for n in range(a, b + 1):
            shown = lines[n - 1].strip() and not FENCE_LINE.match(lines[n - 1])  # fences render as a box, not a line
            if shown and not any(l0 <= n <= l1 for l0, l1 in got):
                uncovered.append(f"{note}:{n}: {lines[n - 1][:60]}")
    assert not uncovered, "cited lines not highlighted:\n" + "\n".join(uncovered[:20])


@pytest.mark.browser
def test_a_streamed_answer_shows_while_it_is_written(server, tabs):
    page = tabs(server).page
    page.goto("/")
    page.locator("#generator option[value='gated']").wait_for(state="attached")
    page.locator("#generator").select_option("gated")
    server.gated.gate.clear()
    page.locator("#q").fill(ON_TOPIC)
    page.locator("#ask-button").click()
    try:
        # mid-stream: the first piece and the retrieved passages are on screen, the answer is busy
        page.locator("#answer[aria-busy='true'] #answer-text", has_text="The notes say:").wait_for()
        assert page.locator("#passages-title").inner_text() == "Retrieved passages"
        assert page.locator("#ask-button").inner_text() == "Asking…"
    finally:
        server.gated.gate.set()
    page.locator("#answer[aria-busy='false'] #answer-text a.cite").wait_for()
    assert page.locator("#passages-title").inner_text() == "Sources"
    assert page.locator("#passage-list .passage").count() == 1
    assert page.locator("#answer-meta").inner_text().startswith("gated · ")
