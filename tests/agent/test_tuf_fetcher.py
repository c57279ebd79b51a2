"""The agent's fetcher: what it refuses before or while downloading."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tuf.api.exceptions import (
    DownloadError,
    DownloadHTTPError,
    DownloadLengthMismatchError,
    SlowRetrievalError,
)

from agent.tuf_fetcher import AgentFetcher
from tests.support.tuf_server import serve_repository
from tests.support.tuf_simulator import Endless, SimulatedRepository


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/x"
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


@contextlib.contextmanager
def redirecting_server() -> Iterator[str]:
    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/x"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_a_server_that_sends_nothing_is_abandoned_after_the_timeout() -> None:
    with silent_server() as url, pytest.raises(SlowRetrievalError):
        AgentFetcher(timeout=0.3).download_bytes(url, 100)


def test_redirects_are_not_followed() -> None:
    with redirecting_server() as url, pytest.raises(DownloadHTTPError) as info:
        AgentFetcher().download_bytes(url, 100)
    assert info.value.status_code == 302


def test_only_http_and_https_are_fetched() -> None:
    with pytest.raises(DownloadError, match="only http and https"):
        AgentFetcher().download_bytes("file:///etc/passwd", 100_000)


def test_a_download_past_its_bound_is_cut_off() -> None:
    repo = SimulatedRepository()
    repo.overrides["endless"] = Endless()
    with serve_repository(repo) as server, pytest.raises(DownloadLengthMismatchError):
        AgentFetcher().download_bytes(f"{server.base_url}endless", 1_000_000)


def test_a_download_within_its_bound_is_returned_whole() -> None:
    repo = SimulatedRepository()
    with serve_repository(repo) as server:
        data = AgentFetcher().download_bytes(f"{server.metadata_url}timestamp.json", 16_384)
    assert data == repo.files["metadata/timestamp.json"]
