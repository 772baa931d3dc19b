// The web page: ask a question, read the streamed answer, follow its citations into the notes.
//
// It talks only to this server's own API (POST /ask with server-sent events, GET /generators,
// GET /health, GET and POST /index/rebuild, GET /notes/{path}). State that should survive a
// reload or the back button lives in the URL fragment: #q=<question>&note=<path>&lines=a-b.
// Deliberately left out: conversation history, saved answers and any framework or build step.

import { ApiError, api, describe, events, json } from "./api.js";
import { bodyStart, escapeHtml, renderMarkdown, splitLines } from "./markdown.js";

const $ = (id) => document.getElementById(id);
const wide = window.matchMedia("(min-width: 1000px)");

const state = {
  asked: null, // the question whose answer is on screen (or on its way)
  controller: null, // aborts the answer being streamed when a new question comes
  note: null, // the note on screen: {note, title, tags, text, lines}
  noteSource: false, // source view (numbered lines) instead of rendered markdown
  range: null, // [start, end] lines highlighted in the note
  returnFocus: null, // where focus goes back to when the note closes
  token: sessionStorage.getItem("rag-admin-token") || "",
};

// -- messages ------------------------------------------------------------------------------

function showMessage(box, err, title) {
  const kind = err instanceof ApiError ? err.kind : "Error";
  const status = err instanceof ApiError && err.status ? ` (${err.status})` : "";
  box.className = `message ${err instanceof ApiError && err.status && err.status < 500 ? "warn" : "error"}`;
  box.innerHTML =
    `<strong>${escapeHtml(title)}</strong> <span class="detail">${escapeHtml(err.message || String(err))}</span>` +
    (kind && kind !== "Error" ? ` <span class="kind">${escapeHtml(kind + status)}</span>` : "");
  box.hidden = false;
}

function showHint(box, text) {
  box.className = "message info";
  box.textContent = text;
  box.hidden = false;
}

function clearMessage(box) {
  box.hidden = true;
  box.textContent = "";
}

// -- asking --------------------------------------------------------------------------------

async function ask(question) {
  question = question.trim();
  const box = $("message");
  if (!question) {
    showHint(box, "Type a question first, for example “What is DPO?”.");
    $("q").focus();
    return;
  }
  state.controller?.abort();
  const controller = new AbortController();
  state.controller = controller;
  state.asked = question;
  document.title = `${question} · Ask the notes`;
  clearMessage(box);
  setBusy(true);
  startAnswer();

  const body = { question, stream: true };
  const generator = $("generator").value;
  if (generator) body.generator = generator;
  let final = null;
  let text = ""; // the answer so far, as streamed
  try {
    const response = await api("/ask", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    if (!(response.headers.get("content-type") || "").includes("text/event-stream")) {
      final = await response.json();
    } else {
      for await (const [name, data] of events(response)) {
        if (controller !== state.controller) return; // a newer question took over
        if (name === "citations") {
          showPassages(data, false, true);
          if (!text) $("answer-text").innerHTML = '<p class="pending">Writing the answer…</p>';
        }
        else if (name === "delta") showAnswerText((text += data), false);
        else if (name === "done") final = data;
        else if (name === "error") throw new ApiError(0, describe(data.detail) || "The answer failed.", data.error || "Error");
      }
      if (!final) throw new ApiError(0, "The answer stream ended before the answer was complete.", "IncompleteAnswer");
    }
    if (controller === state.controller) showAnswer(final);
  } catch (err) {
    if (err.name === "AbortError" || controller !== state.controller) return;
    showMessage(box, err, "The question could not be answered.");
    if (!text) {
      $("answer").hidden = true;
      $("passages").hidden = true;
      $("intro").hidden = false;
    } else {
      $("answer-meta").textContent = "This answer is incomplete.";
    }
  } finally {
    if (controller === state.controller) {
      setBusy(false);
      state.controller = null;
    }
  }
}

function setBusy(busy) {
  $("answer").setAttribute("aria-busy", String(busy));
  $("ask-button").textContent = busy ? "Asking…" : "Ask";
  document.body.classList.toggle("busy", busy);
}

function startAnswer() {
  $("intro").hidden = true;
  const card = $("answer");
  card.hidden = false;
  card.classList.remove("abstained");
  $("answer-label").textContent = "Answer";
  $("answer-text").innerHTML = '<p class="pending">Searching the notes…</p>';
  $("answer-meta").textContent = "";
  $("answer-notes").innerHTML = "";
  $("passages").hidden = true;
}

function citeLink(citations) {
  const known = new Set(citations.map((c) => c.n));
  return (n) =>
    known.has(n)
      ? `<a class="cite" href="#passage-${n}" data-n="${n}" aria-label="citation ${n}">[${n}]</a>`
      : null;
}

function showAnswerText(text, abstained) {
  const html = abstained
    ? `<p>${escapeHtml(text)}</p>`
    : renderMarkdown(text, { lines: false, cite: citeLink(state.citations || []), link: externalOnly });
  $("answer-text").innerHTML = html || '<p class="pending">Writing…</p>';
}

function showAnswer(a) {
  const card = $("answer");
  card.classList.toggle("abstained", a.abstained);
  $("answer-label").textContent = a.abstained ? "Not in the notes" : "Answer";
  showPassages(a.citations || [], a.abstained, false);
  showAnswerText(a.answer || "", a.abstained);
  if (a.abstained) {
    $("answer-text").insertAdjacentHTML(
      "beforeend",
      '<p class="explain">No passage was close enough to answer from, so nothing was made up.' +
        (a.citations?.length ? " The closest matches are below, in case they help." : "") +
        "</p>"
    );
  }
  const meta = [a.generator];
  if (a.timings_ms?.total != null) meta.push(`${formatMs(a.timings_ms.total)}`);
  if (a.evidence != null) meta.push(`evidence ${a.evidence.toFixed(2)}`);
  $("answer-meta").textContent = meta.join(" · ");
  const notes = [];
  if (a.fallback) notes.push("The chosen generator failed; this is the offline extractive answer instead.");
  if (a.grounded === false && !a.abstained) notes.push("Some sentences of this answer carry no citation: check them against the notes.");
  for (const w of a.warnings || []) notes.push(w);
  $("answer-notes").innerHTML = notes.map((n) => `<li>${escapeHtml(n)}</li>`).join("");
}

function formatMs(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function showPassages(citations, abstained, provisional) {
  state.citations = citations;
  const section = $("passages");
  section.hidden = !citations.length;
  section.classList.toggle("closest", abstained);
  $("passages-title").textContent = abstained ? "Closest matches" : provisional ? "Retrieved passages" : "Sources";
  const lead = $("passages-lead");
  lead.hidden = !abstained;
  lead.textContent = abstained ? "These passages came nearest to the question, but not near enough to answer it." : "";
  $("passage-list").innerHTML = citations.map((c) => passageHtml(c)).join("");
}

function passageHtml(c) {
  const lines = c.start_line === c.end_line ? `line ${c.start_line}` : `lines ${c.start_line}–${c.end_line}`;
  const heading = c.heading ? c.heading.split(" > ").map(escapeHtml).join(" › ") : "";
  const href = `#${params({ q: state.asked, note: c.note, lines: `${c.start_line}-${c.end_line}` })}`;
  const text = renderMarkdown(c.text, { lines: false, link: (url) => noteLink(c.note, url) });
  const data = `data-n="${c.n}" data-note="${escapeHtml(c.note)}" data-lines="${c.start_line}-${c.end_line}"`;
  return `<li class="passage" id="passage-${c.n}" tabindex="-1" ${data}>
  <div class="passage-head">
    <span class="passage-n" aria-hidden="true">${c.n}</span>
    <div class="passage-where">
      <a class="passage-open" href="${escapeHtml(href)}" title="Open the note at ${lines}">${escapeHtml(c.title || c.note)}</a>
      ${heading ? `<span class="passage-heading">${heading}</span>` : ""}
      <span class="passage-loc"><span class="passage-path">${escapeHtml(c.note)}</span> · <span class="passage-lines">${lines}</span></span>
    </div>
  </div>
  <div class="passage-text md">${text}</div>
</li>`;
}

function jumpToPassage(n) {
  const item = $(`passage-${n}`);
  if (!item) return;
  item.scrollIntoView({ block: "nearest", behavior: matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth" });
  item.focus({ preventScroll: true });
  item.classList.remove("flash");
  void item.offsetWidth; // restart the animation
  item.classList.add("flash");
}

/** Links in answers and passages: only web links, opened in a new tab. */
function externalOnly(url) {
  return /^(https?:|mailto:)/i.test(url) ? { href: url, external: true } : null;
}

// -- notes ---------------------------------------------------------------------------------

function noteUrl(path) {
  return "/notes/" + path.split("/").map(encodeURIComponent).join("/");
}

async function openNote(path, range) {
  const pane = $("note-pane");
  pane.hidden = false;
  document.body.classList.add("note-open");
  clearMessage($("note-message"));
  state.range = range;
  if (!state.note || state.note.note !== path) {
    $("note-title").textContent = "Opening…";
    $("note-path").textContent = path;
    $("note-tags").textContent = "";
    $("note-body").innerHTML = "";
    $("note-range").hidden = true;
    try {
      const note = await json(noteUrl(path));
      if (new URLSearchParams(location.hash.slice(1)).get("note") !== path) return; // another note was asked for meanwhile
      state.note = note;
      delete $("note-body").dataset.note; // stale: a rebuild may have changed the text
    } catch (err) {
      state.note = null;
      $("note-title").textContent = "Note unavailable";
      showMessage($("note-message"), err, `The note ${path} could not be opened.`);
      $("note-title").focus();
      return;
    }
  }
  if ($("note-body").dataset.note === path && $("note-body").dataset.source === String(state.noteSource)) {
    highlight(); // the same note again: only the highlight moves
  } else {
    renderNote();
  }
  $("note-title").focus({ preventScroll: true });
  requestAnimationFrame(() => scrollToRange(false));
}

function renderNote() {
  const n = state.note;
  $("note-title").textContent = n.title || n.note;
  $("note-path").textContent = n.note;
  $("note-tags").innerHTML = (n.tags || []).map((t) => `<span class="tag">${escapeHtml(t)}</span>`).join(" ");
  const all = splitLines(n.text);
  const body = $("note-body");
  body.dataset.note = n.note;
  body.dataset.source = String(state.noteSource);
  if (state.noteSource) {
    const width = String(all.length).length;
    body.innerHTML =
      '<pre class="source">' +
      all
        .map((line, i) => `<span class="sl" data-l0="${i + 1}" data-l1="${i + 1}"><span class="ln">${i + 1}</span>${escapeHtml(line)}</span>`)
        .join("") + // the lines are blocks: a newline between them would show as a blank line
      "</pre>";
    body.firstElementChild.style.setProperty("--ln-width", `${width}ch`); // CSSOM: allowed by the page's CSP
  } else {
    const start = bodyStart(all);
    body.innerHTML = renderMarkdown(all.slice(start - 1).join("\n"), {
      firstLine: start,
      headingShift: 1,
      link: (url) => noteLink(n.note, url),
    });
    // the pane's own heading shows the title: a first heading saying the same is not repeated
    const top = body.firstElementChild;
    if (top && /^H[1-6]$/.test(top.tagName) && top.textContent.trim() === $("note-title").textContent.trim()) {
      top.classList.add("dup-title");
    }
  }
  $("note-mode").textContent = state.noteSource ? "Show rendered" : "Show source";
  $("note-mode").setAttribute("aria-pressed", String(state.noteSource));
  highlight();
}

/** Mark the elements holding the cited lines: whole blocks inside the range, else the smallest pieces. */
function highlight() {
  const body = $("note-body");
  body.querySelectorAll(".hl").forEach((el) => el.classList.remove("hl", "hl-first"));
  const range = state.range;
  const banner = $("note-range");
  body.dataset.range = range ? range.join("-") : ""; // what is highlighted, for tests and styles
  if (!range) {
    banner.hidden = true;
    document.querySelectorAll(".passage.active").forEach((li) => li.classList.remove("active"));
    return;
  }
  const [a, b] = range;
  for (const li of document.querySelectorAll(".passage")) {
    li.classList.toggle("active", li.dataset.note === state.note.note && li.dataset.lines === `${a}-${b}`);
  }
  const marked = [];
  for (const el of body.querySelectorAll("[data-l0]")) {
    if (el.classList.contains("dup-title") || marked.some((m) => m.contains(el))) continue;
    const l0 = Number(el.dataset.l0);
    const l1 = Number(el.dataset.l1);
    if (l1 < a || l0 > b) continue;
    const inside = l0 >= a && l1 <= b;
    if (inside || !el.querySelector("[data-l0]")) {
      el.classList.add("hl");
      marked.push(el);
    }
  }
  marked[0]?.classList.add("hl-first");
  banner.hidden = false;
  const what = a === b ? `Line ${a}` : `Lines ${a}–${b}`;
  $("note-range-text").textContent = marked.length
    ? `${what} highlighted.`
    : `${what} ${a === b ? "was" : "were"} cited, but the note has changed since and no longer has ${a === b ? "it" : "them"}: rebuild the index.`;
  $("note-jump").hidden = !marked.length;
}

function scrollToRange(smooth) {
  const first = $("note-body").querySelector(".hl-first");
  if (first) first.scrollIntoView({ block: "center", behavior: smooth ? "smooth" : "auto" });
  else if (!state.range) $("note-pane").scrollTo?.(0, 0);
}

/** Where a link inside a note goes: other notes open here, web links in a new tab, the rest nowhere. */
function noteLink(from, url) {
  if (/^[a-z][a-z0-9+.-]*:/i.test(url)) return externalOnly(url);
  const [path] = url.split("#");
  if (!path || !/\.(md|markdown)$/i.test(path)) return null;
  const parts = path.startsWith("/") ? [] : from.split("/").slice(0, -1);
  for (const seg of path.split("/")) {
    if (seg === "..") parts.pop();
    else if (seg && seg !== ".") parts.push(safeDecode(seg));
  }
  return { href: `#${params({ q: state.asked, note: parts.join("/") })}`, external: false };
}

function safeDecode(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s; // a stray % in a note's link: take it literally
  }
}

function closeNote() {
  $("note-pane").hidden = true;
  document.querySelectorAll(".passage.active").forEach((li) => li.classList.remove("active"));
  document.body.classList.remove("note-open");
  const back = state.returnFocus;
  state.returnFocus = null;
  if (back && document.contains(back)) back.focus();
}

// -- index status and rebuild --------------------------------------------------------------

async function loadStatus() {
  const text = $("status-text");
  const status = $("status");
  try {
    const h = await json("/health");
    status.classList.remove("bad");
    const built = new Date(h.built_at);
    text.innerHTML =
      `<span>${plural(h.notes, "note")}</span> · <span>${plural(h.chunks, "chunk")}</span> · ` +
      `<span title="${escapeHtml(built.toLocaleString())}">built ${escapeHtml(ago(built))}</span>` +
      (h.rebuilding ? ' · <span class="pulse">rebuilding…</span>' : "") +
      (h.warnings?.length ? ` · <span class="warn-count" title="${escapeHtml(h.warnings.join("\n"))}">⚠ ${h.warnings.length}</span>` : "");
    status.title = `embedder ${h.embedder}, snapshot ${h.snapshot}, default generator ${h.generator}`;
    if (h.rebuilding) setTimeout(loadStatus, 2000);
  } catch (err) {
    status.classList.add("bad");
    status.title = err.message;
    text.textContent = err.status === 503 ? "No usable index" : "Index status unavailable";
    showMessage($("message"), err, err.status === 503 ? "The index is not ready." : "The index status could not be read.");
  }
  try {
    const r = await json("/index/rebuild", { headers: authHeaders() });
    $("rebuild").hidden = !(r.allowed || r.token_required);
    $("rebuild").dataset.needsToken = String(!r.allowed && r.token_required);
  } catch {
    $("rebuild").hidden = true;
  }
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function ago(date) {
  const s = (Date.now() - date.getTime()) / 1000;
  if (!Number.isFinite(s)) return "at an unknown time";
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  if (s < 86400 * 60) return `${Math.round(s / 86400)} days ago`;
  return `on ${date.toLocaleDateString()}`;
}

function authHeaders() {
  return state.token ? { Authorization: `Bearer ${state.token}` } : {};
}

async function rebuild() {
  const button = $("rebuild");
  $("token-form").hidden = true;
  button.hidden = false;
  button.disabled = true;
  button.textContent = "Rebuilding…";
  try {
    const r = await json("/index/rebuild", { method: "POST", headers: authHeaders() });
    const changes = `${r.added.length} added, ${r.changed.length} changed, ${r.removed.length} removed`;
    showHint($("message"), r.rebuilt ? `Index rebuilt in ${r.seconds.toFixed(1)} s: ${changes}.` : "The index was already up to date.");
    state.note = null; // notes may have changed
  } catch (err) {
    if (err.status === 401) {
      state.token = "";
      sessionStorage.removeItem("rag-admin-token");
    }
    showMessage($("message"), err, "The index could not be rebuilt.");
  } finally {
    button.disabled = false;
    button.textContent = "Rebuild index";
    loadStatus();
  }
}

// -- generators ----------------------------------------------------------------------------

async function loadGenerators() {
  const select = $("generator");
  let list;
  try {
    list = await json("/generators");
  } catch (err) {
    $("generator-hint").textContent = "(the list of generators is unavailable)";
    return;
  }
  const saved = localStorage.getItem("rag-generator");
  // the saved choice, else the server's default, else any generator that can answer now
  const pick =
    list.find((g) => g.name === saved && g.ready) ||
    list.find((g) => g.default && g.ready) ||
    list.find((g) => g.ready) ||
    list.find((g) => g.default);
  select.innerHTML = list
    .map((g) => {
      const label = g.ready ? g.name : `${g.name} (not ready)`;
      return `<option value="${escapeHtml(g.name)}"${g.ready ? "" : " disabled"}${g === pick ? " selected" : ""}>${escapeHtml(label)}</option>`;
    })
    .join("");
  const ready = list.filter((g) => g.ready).length;
  const hint = () => {
    const g = list.find((x) => x.name === select.value);
    $("generator-hint").textContent = g ? `${g.description} · ${ready} of ${list.length} ready` : "";
  };
  select.addEventListener("change", () => {
    localStorage.setItem("rag-generator", select.value);
    hint();
  });
  hint();
  $("generator-list").innerHTML = list
    .map(
      (g) => `<li class="${g.ready ? "ready" : "not-ready"}"><strong>${escapeHtml(g.name)}</strong>
        <span class="badge">${g.ready ? "ready" : "not ready"}</span>${g.default ? ' <span class="badge">default</span>' : ""}
        <span class="desc">${escapeHtml(g.description)}</span>
        <span class="why">${escapeHtml(g.detail || "")}${!g.ready && g.extra ? ` (pip install 'rag[${escapeHtml(g.extra)}]')` : ""}</span></li>`
    )
    .join("");
  $("generator-info").hidden = false;
}

// -- routing: the URL fragment holds the question and the open note -------------------------

function params(obj) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(obj)) if (v) p.set(k, v);
  return p.toString();
}

function route() {
  const p = new URLSearchParams(location.hash.slice(1));
  const q = p.get("q");
  if (q && q !== state.asked) {
    $("q").value = q;
    ask(q);
  }
  const note = p.get("note");
  if (note) {
    const m = /^(\d+)-(\d+)$/.exec(p.get("lines") || "");
    openNote(note, m ? [Number(m[1]), Number(m[2])] : null);
  } else if (!$("note-pane").hidden) {
    closeNote();
  }
}

function submit(event) {
  event.preventDefault();
  const q = $("q").value.trim();
  const hash = q ? `#${params({ q })}` : "";
  if (!q || location.hash === hash) ask(q);
  else {
    state.asked = null; // a new question: route() asks it
    location.hash = hash;
  }
}

function wire() {
  $("ask-form").addEventListener("submit", submit);
  $("rebuild").addEventListener("click", () => {
    if ($("rebuild").dataset.needsToken === "true" && !state.token) {
      $("rebuild").hidden = true;
      $("token-form").hidden = false;
      $("token").focus();
    } else rebuild();
  });
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("rag-admin-token", state.token);
    rebuild();
  });
  $("main").addEventListener("click", (e) => {
    const cite = e.target.closest("a.cite");
    if (cite) {
      e.preventDefault();
      jumpToPassage(cite.dataset.n);
      return;
    }
    const open = e.target.closest("a.passage-open");
    if (open) {
      state.returnFocus = open;
      if (location.hash === open.getAttribute("href")) route(); // same passage again: re-open it
    }
  });
  $("note-close").addEventListener("click", () => {
    location.hash = state.asked ? `#${params({ q: state.asked })}` : "";
  });
  $("note-mode").addEventListener("click", () => {
    state.noteSource = !state.noteSource;
    if (state.note) {
      renderNote();
      scrollToRange(false);
    }
  });
  $("note-jump").addEventListener("click", () => scrollToRange(true));
  $("home").addEventListener("click", (e) => {
    e.preventDefault(); // a fresh start: no question, no answer, no note
    history.pushState(null, "", location.pathname);
    state.controller?.abort();
    state.asked = null;
    for (const id of ["answer", "passages", "message"]) $(id).hidden = true;
    $("intro").hidden = false;
    $("q").value = "";
    document.title = "Ask the notes";
    route();
    $("q").focus();
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !$("note-pane").hidden) {
      e.preventDefault();
      $("note-close").click();
    } else if (e.key === "/" && !/^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement?.tagName)) {
      e.preventDefault();
      $("q").focus();
      $("q").select();
    }
  });
  window.addEventListener("hashchange", route);
  wide.addEventListener("change", () => state.note && requestAnimationFrame(() => scrollToRange(false)));
}

wire();
loadStatus();
loadGenerators();
route();
if (!location.hash) $("q").focus();
