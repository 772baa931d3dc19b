// Talking to this server's API: fetch with readable errors, and server-sent events.
//
// Every failure becomes an `ApiError` whose message a person can act on: the server's own
// `detail` when it sent one (FastAPI's validation lists are joined into a sentence), else the
// status line, else "the server could not be reached". Deliberately left out: retries (a
// question is cheap to ask again) and EventSource, which cannot POST a body.

export class ApiError extends Error {
  constructor(status, detail, kind) {
    super(detail);
    this.status = status;
    this.kind = kind;
  }
}

/** fetch that turns every failure into an ApiError with a readable message. */
export async function api(path, init = {}) {
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "The server could not be reached. Is `rag serve` still running?", "NetworkError");
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

async function errorOf(response) {
  let detail = `The server answered ${response.status} ${response.statusText}.`;
  let kind = "HTTPError";
  try {
    const body = await response.json();
    detail = describe(body.detail) || detail;
    kind = body.error || kind;
  } catch {
    // not JSON (a proxy's error page, say): keep the status line
  }
  return new ApiError(response.status, detail, kind);
}

/** `detail` as text: ours is a string, FastAPI's validation errors are a list of objects. */
export function describe(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((e) => {
        const where = (e.loc || []).filter((x) => x !== "body").join(".");
        return where ? `${where}: ${e.msg}` : e.msg;
      })
      .join("; ");
  }
  return "";
}

export async function json(path, init) {
  const response = await api(path, init);
  try {
    return await response.json();
  } catch {
    throw new ApiError(response.status, `The server sent an unreadable answer for ${path}.`, "BadResponse");
  }
}

/** Server-sent events of a response, as (name, data) pairs, until the stream ends. */
export async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buffer += value.replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (!data.length) continue;
      try {
        yield [name, JSON.parse(data.join("\n"))];
      } catch {
        throw new ApiError(0, "The answer stream held a malformed event.", "BadResponse");
      }
    }
    if (done) return;
  }
}
