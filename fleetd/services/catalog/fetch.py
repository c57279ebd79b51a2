"""Fetching an artifact's content from its URL, once, into the blob store.

The response body is streamed into a blob writer while it is hashed; the declared size is
a hard cap (a longer body is cut off at once) and the content is committed only when its
length and SHA-256 are exactly the declared ones, so a mismatch stores nothing. Every
request goes through the outbound guard (``fleetd.services.outbound``): http and https
only, internal addresses refused unless ``FLEETD_OUTBOUND_ALLOW`` names them, the
connection pinned to the checked address, every redirect checked again (at most 5;
release downloads usually redirect to a CDN). Responses are never decompressed (the
checksum is of the bytes served); TLS is verified against the system trust store.

Failures are one of three kinds, which the control API maps to status codes:

- ``ContentMismatch`` (INVALID_ARGUMENT): the URL served other content than declared.
- ``SourceRefused`` (FAILED_PRECONDITION): the server answered but not with the content
  (4xx, or another non-success status, or a redirect the guard does not follow), or the
  URL is not one the guard fetches: fix the URL.
- ``SourceUnavailable`` (UNAVAILABLE): a 5xx answer; or no answer at all, or a
  destination the guard refuses: then the message is always the same
  (``f"{url}: {outbound.REFUSED}"``, the cause in the server log), so that an operator
  cannot probe which internal ports are open.
"""

from __future__ import annotations

import asyncio
import hashlib

from fleetd.services import outbound
from fleetd.services.outbound import OutboundGuard
from fleetd.storage.blobs import Blob, BlobStore

TOTAL_TIMEOUT = 900.0
"""Longest whole fetch (8 GiB would need ~10 MB/s)."""
HEADERS = {"accept-encoding": "identity", "user-agent": "fleetd"}


class SourceError(Exception):
    """Fetching from an external source failed; the message says why."""


class ContentMismatch(SourceError):
    """The source served content whose length or SHA-256 is not the declared one."""


class SourceRefused(SourceError):
    """The source answered, but not with the content (a 4xx or unexpected status)."""


class SourceUnavailable(SourceError):
    """The source could not be reached, may not be reached, or failed (5xx)."""


def unreachable(what: str) -> SourceUnavailable:
    """The uniform refusal for ``what`` (a URL, a registry)."""
    return SourceUnavailable(f"{what}: {outbound.REFUSED}")


async def fetch_into(
    store: BlobStore, url: str, sha256: str, size: int, *, guard: OutboundGuard | None = None
) -> Blob:
    """Fetch ``url`` into ``store`` through ``guard`` (default: no internal address
    allowed); the blob is committed only when it is exactly ``size`` bytes hashing to
    ``sha256`` (lowercase hex).

    Raises:
        ContentMismatch, SourceRefused, SourceUnavailable: see the module docstring.
    """
    try:
        async with asyncio.timeout(TOTAL_TIMEOUT):
            return await _fetch(guard or OutboundGuard(), store, url, sha256, size)
    except SourceError:
        raise
    except (outbound.BadUrl, outbound.BadRedirect) as exc:
        raise SourceRefused(f"{url}: {exc}") from None
    except TimeoutError:
        outbound.log.warning("fetching %s: no complete answer in %s s", url, TOTAL_TIMEOUT)
        raise unreachable(url) from None
    except outbound.Unreachable:
        raise unreachable(url) from None


async def _fetch(guard: OutboundGuard, store: BlobStore, url: str, sha256: str, size: int) -> Blob:
    async with guard.stream("GET", url, HEADERS) as response:
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
            async for data in response.content:
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
