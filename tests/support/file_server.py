"""A plain HTTP file server on 127.0.0.1 (a thread), standing in for the external URLs
CreateUpdate fetches artifacts from. Each path serves fixed bytes, or misbehaves on
purpose: another status, a lying Content-Length, a body longer than it says."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Served:
    """What one path answers: ``status``, ``body``; ``declared_length`` overrides the
    Content-Length header (None: the body's length; -1: no header, close-delimited)."""

    body: bytes = b""
    status: int = 200
    declared_length: int | None = None


@dataclass
class FileServer:
    port: int
    files: dict[str, Served] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, body: bytes, **options: int | None) -> str:
        self.files[path] = Served(body, **options)  # type: ignore[arg-type]
        return self.url(path)


@contextmanager
def file_server() -> Iterator[FileServer]:
    state = FileServer(0)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            state.requests.append(self.path)
            served = state.files.get(self.path, Served(b"not found\n", 404))
            self.send_response(served.status)
            if served.declared_length == -1:
                self.send_header("connection", "close")
                self.close_connection = True
            else:
                length = served.declared_length
                self.send_header(
                    "content-length", str(len(served.body) if length is None else length)
                )
            self.end_headers()
            self.wfile.write(served.body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
