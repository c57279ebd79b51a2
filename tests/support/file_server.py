"""A plain HTTP file server on loopback (a thread), standing in for the external URLs
CreateUpdate fetches artifacts from. Each path serves fixed bytes, or misbehaves on
purpose: another status, a lying Content-Length, a body longer than it says, a redirect.

Server-side fetches refuse loopback addresses unless the operator allowlists them, so a
test that fetches from this server names it: ``OutboundGuard.allowing([files.host])`` or
``Settings(outbound_allow=(files.host,))``. It records every connection it accepts
(``connections``), which is how tests show that a refused fetch never connected. It can
listen on another loopback address (``bind="127.0.0.2"``, ``"::1"``) and speak TLS
(``tls=(certificate file, key file)``). :func:`tcp_listener` is an open port that does
not speak HTTP."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Served:
    """What one path answers: ``status``, ``body``, extra ``headers``; ``declared_length``
    overrides the Content-Length header (None: the body's length; -1: no header,
    close-delimited)."""

    body: bytes = b""
    status: int = 200
    declared_length: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FileServer:
    port: int
    files: dict[str, Served] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    request_headers: list[dict[str, str]] = field(default_factory=list)
    """The headers of every request (names in lowercase), in order."""
    connections: list[str] = field(default_factory=list)
    """The peer address of every connection accepted, in order."""
    bind: str = "127.0.0.1"
    scheme: str = "http"

    @property
    def host(self) -> str:
        """``address:port`` as an allowlist entry (``[v6]:port`` for IPv6)."""
        address = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"{address}:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}{path}"

    def serve(self, path: str, body: bytes, **options: int | None) -> str:
        self.files[path] = Served(body, **options)  # type: ignore[arg-type]
        return self.url(path)

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        """Answer ``path`` with a redirect to ``location``; the URL of ``path``."""
        self.files[path] = Served(b"", status, headers={"location": location})
        return self.url(path)


def has_ipv6_loopback() -> bool:
    """Whether this machine can listen on ::1 (some containers have no IPv6)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@contextmanager
def file_server(
    bind: str = "127.0.0.1", tls: tuple[Path, Path] | None = None
) -> Iterator[FileServer]:
    state = FileServer(0, bind=bind, scheme="https" if tls else "http")
    context: ssl.SSLContext | None = None
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            state.requests.append(self.path)
            state.request_headers.append({k.lower(): v for k, v in self.headers.items()})
            served = state.files.get(self.path, Served(b"not found\n", 404))
            self.send_response(served.status)
            for name, value in served.headers.items():
                self.send_header(name, value)
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

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        daemon_threads = True

        def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
            conn, peer = self.socket.accept()
            state.connections.append(peer[0])
            if context is not None:
                conn = context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            return conn, peer

        def handle_error(self, request: object, client_address: object) -> None:
            return  # a client that gave up (a refused TLS handshake) is not an error here

    server = Server((bind, 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Listener:
    """A TCP port that is open but does not speak HTTP (see :func:`tcp_listener`)."""

    port: int
    connections: list[str] = field(default_factory=list)
    bind: str = "127.0.0.1"

    @property
    def host(self) -> str:
        address = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"{address}:{self.port}"

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}{path}"


@contextmanager
def tcp_listener(reply: bytes | None = None, bind: str = "127.0.0.1") -> Iterator[Listener]:
    """An open port that accepts connections and records them, then writes ``reply`` and
    closes, or (``reply=None``) holds each connection open and never answers."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((bind, 0))
    sock.listen(16)
    state = Listener(sock.getsockname()[1], bind=bind)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, peer = sock.accept()
            except OSError:
                return
            state.connections.append(peer[0])
            if reply is None:
                held.append(conn)
                continue
            with conn:
                conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() in the thread
        sock.close()
        for conn in held:
            conn.close()
