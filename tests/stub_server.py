"""A scripted HTTP server on 127.0.0.1 for testing LLM clients at the HTTP boundary.

It answers each request with the next scripted `Reply` (the last one repeats) and records
what the client sent, so a test drives the real `openai` / `anthropic` client over a real
socket: status codes, retry headers, slow replies, broken or malformed bodies, and
server-sent events written piece by piece. Nothing of ours is faked by it.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["Reply", "StubServer", "json_reply", "sse_reply"]


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a slow server)
    pieces: list[bytes] | None = None  # sent one by one, flushed, for streaming
    piece_delay: float = 0.01
    cut_after: int | None = None  # close the connection after this many pieces


def json_reply(data: dict | bytes | str | Path, status: int = 200, delay: float = 0.0, **headers: str) -> Reply:
    if isinstance(data, Path):
        data = data.read_bytes()
    body = data if isinstance(data, bytes) else (data.encode() if isinstance(data, str) else json.dumps(data).encode())
    return Reply(status, body, {"content-type": "application/json", **headers}, delay=delay)


def sse_reply(data: str | Path, status: int = 200, **kw) -> Reply:
    """Server-sent events, one event (blank-line separated) per piece."""
    text = data.read_text() if isinstance(data, Path) else data
    events = [e + "\n\n" for e in text.strip().split("\n\n")]
    return Reply(status, b"", {"content-type": "text/event-stream", "cache-control": "no-cache"},
                 pieces=[e.encode() for e in events], **kw)


class StubServer:
    def __init__(self, script: list[Reply]):
        self.script = list(script)
        self.requests: list[dict] = []  # {"method", "path", "headers", "json"}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                stub.requests.append(
                    {"method": self.command, "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "json": body}
                )
                reply = stub.script[min(len(stub.requests), len(stub.script)) - 1]
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    if reply.pieces is None:
                        self.send_header("content-length", str(len(reply.body)))
                        self.end_headers()
                        self.wfile.write(reply.body)
                        return
                    self.send_header("connection", "close")  # the body ends when the socket closes
                    self.end_headers()
                    for i, piece in enumerate(reply.pieces):
                        if reply.cut_after is not None and i >= reply.cut_after:
                            break
                        self.wfile.write(piece)
                        self.wfile.flush()
                        time.sleep(reply.piece_delay)
                    self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            do_GET = do_POST = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
