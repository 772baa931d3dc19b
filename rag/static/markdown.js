// A small markdown renderer for notes, passages and answers: no build step, no dependency.
//
// Every block it emits carries the 1-based source lines it came from (data-l0, data-l1),
// down to list items, table rows and code lines, so the note view can highlight exactly the
// lines a citation names. All note text is escaped before any markup is added, and links
// go through a caller's resolver that only lets safe targets through (notes are untrusted).
// Deliberately left out: HTML blocks (shown as text), images (shown as their alt text),
// reference-style links, footnotes and indented code blocks, as in the chunker.

const FENCE = /^ {0,3}(`{3,}|~{3,})(.*)$/;
const ATX = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$/;
const ATX_CLOSE = /(?:^|[ \t]+)#+[ \t]*$/;
const SETEXT = /^ {0,3}(=+|-+)[ \t]*$/;
const HR = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])(?:[ \t]+(.*))?$/;
const TABLE_DELIM = /^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;
const CITE = /\[(\d{1,3}(?:[ \t]*,[ \t]*\d{1,3})*)\]/y;

/** Lines as the indexer numbers them: split on \r\n, \r or \n, BOM dropped, no trailing empty line. */
export function splitLines(text) {
  if (text.startsWith("\ufeff")) text = text.slice(1);
  const lines = text.split(/\r\n|\r|\n/);
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  return lines;
}

export function escapeHtml(s) {
  return String(s)
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/** The 1-based line after a leading `---` front matter block (1 when there is none). */
export function bodyStart(lines) {
  if (!lines.length || lines[0].trim() !== "---") return 1;
  for (let i = 1; i < lines.length; i++) {
    const t = lines[i].trim();
    if (t === "---" || t === "...") return i + 2;
  }
  return 1; // unterminated: not front matter
}

const span = (n0, n1) => ` data-l0="${n0}" data-l1="${n1}"`;

/**
 * Render markdown to an HTML string.
 *
 * Options: `firstLine` (number of the text's first line, default 1), `lines` (attach line
 * spans, default true), `link(url)` -> {href, external} or null to show the text unlinked,
 * `cite(n)` -> HTML for an `[n]` marker or null to leave it as text, `headingShift` (levels
 * added to headings so that a note's `#` sits under the page's own headings).
 */
export function renderMarkdown(text, options = {}) {
  const opts = { firstLine: 1, lines: true, link: null, cite: null, headingShift: 0, ...options };
  const rows = splitLines(String(text).replace(/\u0000/g, "")).map((t, i) => ({ t, n: opts.firstLine + i }));
  return renderBlocks(rows, opts);
}

function renderBlocks(rows, opts) {
  const out = [];
  const at = (a, b) => (opts.lines ? span(a, b) : "");
  let i = 0;
  while (i < rows.length) {
    const { t, n } = rows[i];
    if (!t.trim()) {
      i++;
      continue;
    }
    let m;
    if ((m = FENCE.exec(t))) {
      const mark = m[1];
      const lang = m[2].trim().split(/\s+/)[0] || "";
      const body = [];
      let j = i + 1;
      let closed = false;
      for (; j < rows.length; j++) {
        const c = /^ {0,3}(`{3,}|~{3,})[ \t]*$/.exec(rows[j].t);
        if (c && c[1][0] === mark[0] && c[1].length >= mark.length) {
          closed = true;
          break;
        }
        body.push(rows[j]);
      }
      const end = closed ? rows[j].n : rows[rows.length - 1].n;
      const code = body.map((r) => `<span class="cl"${at(r.n, r.n)}>${escapeHtml(r.t)}</span>`).join("\n");
      const label = lang ? ` data-lang="${escapeHtml(lang)}"` : "";
      out.push(`<pre${at(n, end)}${label}><code>${code}</code></pre>`);
      i = closed ? j + 1 : rows.length;
      continue;
    }
    if ((m = ATX.exec(t))) {
      const level = Math.min(6, m[1].length + opts.headingShift);
      const title = (m[2] || "").replace(ATX_CLOSE, "");
      out.push(`<h${level}${at(n, n)}>${inline(title, opts)}</h${level}>`);
      i++;
      continue;
    }
    if (HR.test(t)) {
      out.push(`<hr${at(n, n)}>`);
      i++;
      continue;
    }
    if (QUOTE.test(t)) {
      const inner = [];
      let j = i;
      while (j < rows.length && rows[j].t.trim() && (m = QUOTE.exec(rows[j].t))) {
        inner.push({ t: m[1], n: rows[j].n });
        j++;
      }
      out.push(`<blockquote${at(n, rows[j - 1].n)}>${renderBlocks(inner, opts)}</blockquote>`);
      i = j;
      continue;
    }
    if (ITEM.test(t)) {
      i = renderList(rows, i, opts, out);
      continue;
    }
    if (t.includes("|") && i + 1 < rows.length && TABLE_DELIM.test(rows[i + 1].t) && rows[i + 1].t.includes("-")) {
      i = renderTable(rows, i, opts, out);
      continue;
    }
    // a paragraph: up to a blank line or the start of another block
    const para = [rows[i]];
    let j = i + 1;
    let heading = 0;
    for (; j < rows.length; j++) {
      const r = rows[j].t;
      if (!r.trim()) break;
      const s = SETEXT.exec(r);
      if (s) {
        heading = s[1][0] === "=" ? 1 : 2;
        break;
      }
      if (FENCE.test(r) || ATX.test(r) || QUOTE.test(r) || HR.test(r) || /^ {0,3}([-*+]|1[.)])[ \t]+\S/.test(r)) break;
      para.push(rows[j]);
    }
    const html = para.map((r) => inline(r.t.trim(), opts)).join("\n");
    if (heading) {
      const level = Math.min(6, heading + opts.headingShift);
      out.push(`<h${level}${at(n, rows[j].n)}>${html}</h${level}>`);
      i = j + 1;
    } else {
      out.push(`<p${at(n, para[para.length - 1].n)}>${html}</p>`);
      i = j;
    }
  }
  return out.join("\n");
}

function renderList(rows, i, opts, out) {
  const first = ITEM.exec(rows[i].t);
  const ordered = /\d/.test(first[2]);
  const items = [];
  let j = i;
  while (j < rows.length) {
    const m = ITEM.exec(rows[j].t);
    if (!m || /\d/.test(m[2]) !== ordered) break;
    const indent = m[1].length + m[2].length + 1;
    const body = [{ t: m[3] || "", n: rows[j].n }];
    let k = j + 1;
    for (; k < rows.length; k++) {
      const r = rows[k].t;
      if (!r.trim()) {
        // a blank line continues the item only when indented content follows
        const next = rows[k + 1];
        if (next && next.t.trim() && leading(next.t) >= indent) {
          body.push({ t: "", n: rows[k].n });
          continue;
        }
        break;
      }
      if (leading(r) >= indent) {
        body.push({ t: r.slice(indent), n: rows[k].n });
        continue;
      }
      if (ITEM.test(r) || FENCE.test(r) || ATX.test(r) || QUOTE.test(r) || HR.test(r)) break;
      body.push({ t: r.trim(), n: rows[k].n }); // lazy continuation of the item's paragraph
    }
    items.push({ body, n0: rows[j].n, n1: rows[k - 1].n, num: parseInt(m[2], 10) });
    j = k;
    if (j < rows.length && !rows[j].t.trim()) {
      // a blank line between items keeps the list going
      const next = rows[j + 1];
      const nm = next && ITEM.exec(next.t);
      if (nm && /\d/.test(nm[2]) === ordered) j++;
    }
  }
  const at = (a, b) => (opts.lines ? span(a, b) : "");
  const lis = items.map((it) => {
    const single = it.body.length === 1;
    const inner = single ? inline(it.body[0].t.trim(), opts) : renderBlocks(it.body, opts);
    return `<li${at(it.n0, it.n1)}>${inner}</li>`;
  });
  const tag = ordered ? "ol" : "ul";
  const start = ordered && items[0].num !== 1 ? ` start="${items[0].num}"` : "";
  out.push(`<${tag}${start}${at(items[0].n0, items[items.length - 1].n1)}>${lis.join("")}</${tag}>`);
  return j;
}

function leading(s) {
  return s.length - s.replace(/^[ \t]+/, "").length;
}

function cells(line) {
  let s = line.trim();
  if (s.startsWith("|")) s = s.slice(1);
  if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
  return s.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, "|"));
}

function renderTable(rows, i, opts, out) {
  const at = (a, b) => (opts.lines ? span(a, b) : "");
  const aligns = cells(rows[i + 1].t).map((c) =>
    c.startsWith(":") && c.endsWith(":") ? "center" : c.endsWith(":") ? "right" : c.startsWith(":") ? "left" : ""
  );
  const cell = (tag, text, k) => {
    const a = aligns[k] ? ` class="al-${aligns[k]}"` : "";
    return `<${tag}${a}>${inline(text, opts)}</${tag}>`;
  };
  const head = cells(rows[i].t);
  let html = `<thead><tr${at(rows[i].n, rows[i + 1].n)}>${head.map((c, k) => cell("th", c, k)).join("")}</tr></thead><tbody>`;
  let j = i + 2;
  for (; j < rows.length && rows[j].t.trim() && rows[j].t.includes("|"); j++) {
    const row = cells(rows[j].t);
    html += `<tr${at(rows[j].n, rows[j].n)}>${head.map((_, k) => cell("td", row[k] ?? "", k)).join("")}</tr>`;
  }
  html += "</tbody>";
  out.push(`<div class="table-wrap"${at(rows[i].n, rows[j - 1].n)}><table>${html}</table></div>`);
  return j;
}

/** Inline markdown of one line of raw text: code, links, emphasis and `[n]` citation markers. */
export function inline(raw, opts = {}) {
  const held = []; // HTML made from raw pieces, put back after emphasis is applied
  const hold = (html) => `\u0000${held.push(html) - 1}\u0000`;
  let text = "";
  let i = 0;
  while (i < raw.length) {
    const ch = raw[i];
    if (ch === "`") {
      const run = /^`+/.exec(raw.slice(i))[0];
      const end = raw.indexOf(run, i + run.length);
      if (end > 0) {
        text += hold(`<code>${escapeHtml(raw.slice(i + run.length, end).trim())}</code>`);
        i = end + run.length;
        continue;
      }
      text += escapeHtml(run);
      i += run.length;
      continue;
    }
    if (ch === "!" && raw[i + 1] === "[") {
      const link = parseLink(raw, i + 1);
      if (link) {
        text += hold(`<span class="img-alt">[image: ${escapeHtml(link.label)}]</span>`);
        i = link.end;
        continue;
      }
    }
    if (ch === "[") {
      if (opts.cite) {
        CITE.lastIndex = i;
        const c = CITE.exec(raw);
        if (c && raw[CITE.lastIndex] !== "(") {
          const nums = c[1].split(",").map((x) => parseInt(x, 10));
          const parts = nums.map((k) => opts.cite(k));
          if (parts.every((p) => p)) {
            text += hold(parts.join(" "));
            i = CITE.lastIndex;
            continue;
          }
        }
      }
      const link = parseLink(raw, i);
      if (link) {
        const label = inline(link.label, { ...opts, cite: null });
        const target = opts.link ? opts.link(link.url) : null;
        if (target) {
          const ext = target.external ? ' target="_blank" rel="noopener noreferrer"' : "";
          text += hold(`<a href="${escapeHtml(target.href)}"${ext}>${label}</a>`);
        } else {
          text += hold(`<span class="link-text" title="${escapeHtml(link.url)}">${label}</span>`);
        }
        i = link.end;
        continue;
      }
    }
    if (ch === "\\" && i + 1 < raw.length && /[\\`*_{}\[\]()#+\-.!|<>~]/.test(raw[i + 1])) {
      text += hold(escapeHtml(raw[i + 1]));
      i += 2;
      continue;
    }
    text += escapeHtml(ch);
    i++;
  }
  text = text
    .replace(/\*\*(?=\S)([^*]*?\S)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^\w])__(?=\S)([^_]*?\S)__(?!\w)/g, "$1<strong>$2</strong>")
    .replace(/(^|[^*\w])\*(?=[^\s*])([^*]*?[^\s*])\*(?!\*)/g, "$1<em>$2</em>")
    .replace(/(^|[^\w])_(?=[^\s_])([^_]*?[^\s_])_(?!\w)/g, "$1<em>$2</em>")
    .replace(/~~(?=\S)([^~]*?\S)~~/g, "<del>$1</del>");
  // placeholders may nest (a link label holding code), so put them back until none is left
  for (let k = 0; k < 3 && text.includes("\u0000"); k++) {
    text = text.replace(/\u0000(\d+)\u0000/g, (_, n) => held[Number(n)]);
  }
  return text;
}

/** `[label](url "title")` starting at `raw[i] === "["`, or null. */
function parseLink(raw, i) {
  let depth = 0;
  let j = i;
  for (; j < raw.length; j++) {
    if (raw[j] === "\\") {
      j++;
      continue;
    }
    if (raw[j] === "[") depth++;
    else if (raw[j] === "]" && --depth === 0) break;
  }
  if (j >= raw.length || raw[j + 1] !== "(") return null;
  const m = /^\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+("[^"]*"|'[^']*'))?\s*\)/.exec(raw.slice(j + 1));
  if (!m) return null;
  let url = m[1];
  if (url.startsWith("<")) url = url.slice(1, -1);
  return { label: raw.slice(i + 1, j), url, end: j + 1 + m[0].length };
}
