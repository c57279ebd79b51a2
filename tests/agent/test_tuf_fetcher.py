"""The agent's fetcher: what it refuses before or while downloading."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tuf.api.exceptions import (
    DownloadError,
    DownloadHTTPError,
    DownloadLengthMismatchError,
    SlowRetrievalError,
)

from agent.tuf_fetcher import AgentFetcher
from tests.support.tuf_server import (
    RepositoryServer,
    ServerTLS,
    make_client_identity,
    make_server_tls,
    serve_repository,
)
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


# --- The device's certificate -----------------------------------------------------------


@contextlib.contextmanager
def mtls_repository(tmp_path: Path) -> Iterator[tuple[RepositoryServer, ServerTLS]]:
    """A repository over HTTPS that serves only clients with a certificate of its CA."""
    tls = make_server_tls(tmp_path / "tls")
    with serve_repository(SimulatedRepository(), tls, client_ca=tls.ca_file) as server:
        yield server, tls


def test_the_fetcher_presents_the_device_certificate(tmp_path: Path) -> None:
    with mtls_repository(tmp_path) as (server, tls):
        assert tls.ca is not None
        device = make_client_identity(tmp_path / "device", tls.ca, "rpi-001")
        fetcher = AgentFetcher(
            tls.ca_file, client_cert=device.cert_file, client_key=device.key_file
        )
        assert fetcher.download_bytes(f"{server.metadata_url}timestamp.json", 16_384)
    assert server.clients == ["rpi-001"]


def test_without_a_device_certificate_a_repository_that_requires_one_is_a_download_error(
    tmp_path: Path,
) -> None:
    """A TLS refusal is python-tuf's DownloadError (transient for the agent), never a raw
    urllib3 exception a caller would not expect."""
    with mtls_repository(tmp_path) as (server, tls), pytest.raises(DownloadError):
        AgentFetcher(tls.ca_file).download_bytes(f"{server.metadata_url}timestamp.json", 16_384)
    assert server.requests == []


def test_a_renewed_certificate_is_presented_from_the_next_request_on(tmp_path: Path) -> None:
    with mtls_repository(tmp_path) as (server, tls):
        assert tls.ca is not None
        device = make_client_identity(tmp_path / "device", tls.ca, "before-renewal")
        fetcher = AgentFetcher(
            tls.ca_file, client_cert=device.cert_file, client_key=device.key_file
        )
        url = f"{server.metadata_url}timestamp.json"
        fetcher.download_bytes(url, 16_384)
        fetcher.download_bytes(url, 16_384)  # a pooled connection, same certificate
        make_client_identity(tmp_path / "device", tls.ca, "after-renewal")  # files replaced
        fetcher.download_bytes(url, 16_384)
    assert server.clients == ["before-renewal", "before-renewal", "after-renewal"]


def test_a_missing_device_certificate_fails_before_connecting(tmp_path: Path) -> None:
    with mtls_repository(tmp_path) as (server, tls):
        fetcher = AgentFetcher(
            tls.ca_file,
            client_cert=tmp_path / "not-enrolled" / "device.pem",
            client_key=tmp_path / "not-enrolled" / "device.key",
        )
        with pytest.raises(DownloadError, match="not enrolled"):
            fetcher.download_bytes(f"{server.metadata_url}timestamp.json", 16_384)
    assert server.requests == []


def test_a_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs its key"):
        AgentFetcher(client_cert=tmp_path / "device.pem")


def test_an_operator_header_is_sent_with_every_request() -> None:
    seen: list[str | None] = []

    class Echo(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("X-API-Key"))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/x"
        assert AgentFetcher(headers={"X-API-Key": "fk_test"}).download_bytes(url, 10) == b"ok"
        assert AgentFetcher().download_bytes(url, 10) == b"ok"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    assert seen == ["fk_test", None]
