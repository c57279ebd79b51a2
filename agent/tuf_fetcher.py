"""The agent's HTTP(S) fetcher for python-tuf: urllib3, trusting only the fleet CA.

ngclient's own fetcher trusts the operating system's certificate store, and a fleet CA is
private; it also reads proxy settings from the environment. This one verifies HTTPS
servers against ``ca_file`` alone when one is given (the system store otherwise), follows
no redirects and does not retry: a failed request fails the refresh, and the agent's
converge loop retries with backoff. Plain ``http`` is accepted (TUF metadata and targets
are signed, so transport security is defence in depth, and the tuf-conformance suite
serves plain HTTP); any other scheme is refused before connecting.

**The device's certificate.** fleetd serves its repository to devices only (and
operators): given ``client_cert`` and ``client_key`` (the agent passes its ``device.pem``
and ``device.key``), every HTTPS connection presents them, read from disk when the
connection is opened. Before each request the files are checked (inode, size, mtime): a
renewal replaced them, so pooled connections presenting the old certificate are closed
and the next one presents the new certificate. Missing files (not enrolled yet, or wiped
at offboarding) fail the request before connecting. Nothing else is sent: no cookies, no
proxy credentials; ``headers`` exists for tools an operator runs (an ``X-API-Key``), the
agent passes none.

Timeouts bound connecting and every gap between received bytes, not a whole download: a
large model over a slow link may take minutes, but a server that stops sending is
abandoned after ``timeout`` seconds (SlowRetrievalError). The length bound of every
download is python-tuf's (``FetcherInterface.download_file``) or the caller's.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import urllib3
from tuf.api.exceptions import (
    DownloadError,
    DownloadHTTPError,
    DownloadLengthMismatchError,
    SlowRetrievalError,
)
from tuf.ngclient.fetcher import FetcherInterface

from agent.config import AGENT_VERSION

CHUNK_SIZE = 64 * 1024
SPOOL_IN_MEMORY = 1 << 20
DEFAULT_TIMEOUT = 30.0


FileSignature = tuple[int, int, int, int]


def _signature(path: Path) -> FileSignature:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class AgentFetcher(FetcherInterface):
    """GET over HTTP(S) with urllib3; HTTPS verified against ``ca_file`` when given, and
    presenting ``client_cert`` / ``client_key`` when given (see the module doc)."""

    def __init__(
        self,
        ca_file: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        client_cert: Path | None = None,
        client_key: Path | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if (client_cert is None) != (client_key is None):
            raise ValueError("a client certificate needs its key, and a key its certificate")
        self._identity = (
            None if client_cert is None or client_key is None else (client_cert, client_key)
        )
        self._presented: tuple[FileSignature, FileSignature] | None = None
        self._pool = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            retries=False,
            headers={**(headers or {}), "User-Agent": f"fleetd-agent/{AGENT_VERSION}"},
            cert_reqs="CERT_REQUIRED",
            ca_certs=None if ca_file is None else str(ca_file),
            cert_file=None if client_cert is None else str(client_cert),
            key_file=None if client_key is None else str(client_key),
        )

    def _check_identity(self, url: str) -> None:
        """Before an HTTPS request with a client certificate: the files are there, and
        connections opened with older versions of them are closed."""
        if self._identity is None:
            return
        cert, key = self._identity
        try:
            now = (_signature(cert), _signature(key))
        except OSError as e:
            raise DownloadError(
                f"{url}: no client certificate and key to present ({e.strerror}: "
                f"{e.filename}); not enrolled yet?"
            ) from e
        if now != self._presented:
            if self._presented is not None:
                self._pool.clear()  # a renewal: no connection may present the old one
            self._presented = now

    def _fetch(self, url: str) -> Iterator[bytes]:
        scheme = urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise DownloadError(f"{url}: only http and https URLs are fetched")
        if scheme == "https":
            self._check_identity(url)
        try:
            response = self._pool.request(
                "GET", url, preload_content=False, redirect=False, decode_content=False
            )
        except urllib3.exceptions.TimeoutError as e:
            raise SlowRetrievalError(f"{url}: no answer in time") from e
        except urllib3.exceptions.HTTPError as e:
            # TLS refused (an untrusted server, a client certificate the server refuses or
            # that does not match its key), a broken connection: a download error, which
            # callers treat as transient, never an exception they do not expect.
            raise DownloadError(f"{url}: {e}") from e
        if response.status != 200:
            _discard(response)
            raise DownloadHTTPError(f"HTTP {response.status} for {url}", response.status)
        return self._chunks(url, response)

    @contextmanager
    def download_file(self, url: str, max_length: int) -> Iterator[IO[bytes]]:
        """``FetcherInterface.download_file`` (what ngclient fetches metadata with), except
        that a stream abandoned past ``max_length`` is closed at once rather than when the
        exception that abandoned it is collected, and small files stay in memory."""
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            chunks = self.fetch(url)
            try:
                received = 0
                for chunk in chunks:
                    received += len(chunk)
                    if received > max_length:
                        raise DownloadLengthMismatchError(
                            f"{url}: more than the allowed {max_length} bytes"
                        )
                    spool.write(chunk)
            finally:
                close_stream(chunks)
            spool.seek(0)
            yield spool

    @staticmethod
    def _chunks(url: str, response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
        complete = False
        try:
            yield from response.stream(CHUNK_SIZE, decode_content=False)
            complete = True
        except urllib3.exceptions.TimeoutError as e:
            raise SlowRetrievalError(f"{url}: the server stopped sending") from e
        except urllib3.exceptions.HTTPError as e:
            # A cut connection must not look like the end of a complete download.
            raise DownloadError(f"{url}: {e}") from e
        finally:
            if complete:
                response.release_conn()
            else:
                _discard(response)


def close_stream(chunks: Iterator[bytes]) -> None:
    """Close a chunk stream from ``fetch`` (ends its response) if it can be closed."""
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


def _discard(response: urllib3.BaseHTTPResponse) -> None:
    """Close a response whose body is not wanted (or was abandoned: past a length bound it
    may be endless), so its connection is never reused with bytes still unread."""
    response.close()
    response.release_conn()
