"""Fetching an artifact's content from its URL, once, into the blob store.

The response body is streamed into a blob writer while it is hashed; the declared size is
a hard cap (a longer body is cut off at once) and the content is committed only when its
length and SHA-256 are exactly the declared ones, so a mismatch stores nothing. Only
``http`` and ``https`` URLs are fetched (checked by ``spec``), redirects are followed (at
most 5; release downloads usually redirect to a CDN), responses are never decompressed
(the checksum is of the bytes served), TLS is verified against the system trust store.

Failures are one of three kinds, which the control API maps to status codes:

- ``ContentMismatch`` (INVALID_ARGUMENT): the URL served other content than declared.
- ``SourceRefused`` (FAILED_PRECONDITION): the server answered but not with the content
  (4xx, or another non-success status): fix the URL.
- ``SourceUnavailable`` (UNAVAILABLE): no answer (DNS, connection, TLS, timeout, 5xx):
  retrying later may work.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pyqwest

from fleetd.storage.blobs import Blob, BlobStore

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
"""Longest wait for the next bytes of a response."""
TOTAL_TIMEOUT = 900.0
"""Longest whole fetch (8 GiB would need ~10 MB/s)."""
MAX_REDIRECTS = 5


class SourceError(Exception):
    """Fetching from an external source failed; the message says why."""


class ContentMismatch(SourceError):
    """The source served content whose length or SHA-256 is not the declared one."""


class SourceRefused(SourceError):
    """The source answered, but not with the content (a 4xx or unexpected status)."""


class SourceUnavailable(SourceError):
    """The source could not be reached or failed (network, TLS, timeout, 5xx)."""


@asynccontextmanager
async def http_transport(read_timeout: float = READ_TIMEOUT) -> AsyncIterator[pyqwest.Client]:
    """A client for fetching from outside: bounded connect/read waits, system CAs, no
    content decoding, no cookies, at most MAX_REDIRECTS redirects."""
    transport = pyqwest.HTTPTransport(
        tls_include_system_certs=True,
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=read_timeout,
        enable_gzip=False,
        enable_brotli=False,
        enable_zstd=False,
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        enable_otel=False,
    )
    async with transport:
        yield pyqwest.Client(transport)


NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    OSError,
    pyqwest.ReadError,
    pyqwest.WriteError,
    pyqwest.RemoteProtocolError,
    pyqwest.StreamError,
    pyqwest.TooManyRedirects,
)


async def fetch_into(store: BlobStore, url: str, sha256: str, size: int) -> Blob:
    """Fetch ``url`` into ``store``; the blob is committed only when it is exactly
    ``size`` bytes hashing to ``sha256`` (lowercase hex).

    Raises:
        ContentMismatch, SourceRefused, SourceUnavailable: see the module docstring.
    """
    try:
        async with asyncio.timeout(TOTAL_TIMEOUT), http_transport() as client:
            return await _fetch(client, store, url, sha256, size)
    except SourceError:
        raise
    except TimeoutError:
        raise SourceUnavailable(f"{url}: timed out") from None
    except NETWORK_ERRORS as exc:
        raise SourceUnavailable(f"{url}: {exc or type(exc).__name__}") from None


async def _fetch(
    client: pyqwest.Client, store: BlobStore, url: str, sha256: str, size: int
) -> Blob:
    headers = {"accept-encoding": "identity", "user-agent": "fleetd"}
    async with client.stream("GET", url, headers) as response:
        if response.status >= 500:
            raise SourceUnavailable(f"{url}: the server answered HTTP {response.status}")
        if response.status != 200:
            raise SourceRefused(f"{url}: the server answered HTTP {response.status}")
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) != size:
            raise ContentMismatch(
                f"{url} serves {declared} bytes, but size_bytes is {size}; nothing was stored"
            )
        digest = hashlib.sha256()
        received = 0
        async with store.writer(max_bytes=size) as writer:
            async for chunk in response.content:
                data = bytes(chunk)
                received += len(data)
                if received > size:
                    raise ContentMismatch(
                        f"{url} serves more than size_bytes ({size}); nothing was stored"
                    )
                digest.update(data)
                await writer.write(data)
            if received != size:
                raise ContentMismatch(
                    f"{url} served {received} bytes, but size_bytes is {size}; nothing was stored"
                )
            if digest.hexdigest() != sha256:
                raise ContentMismatch(
                    f"{url} served content with sha256:{digest.hexdigest()}, not the declared "
                    f"checksum sha256:{sha256}; nothing was stored"
                )
            return await writer.commit()
