"""Download a finished ExportData file: wait while it is produced, resume, verify.

The export URL is signed and expiring (docs/analytics.md, section 5): it is the credential,
so nothing else is sent. While the export runs the server answers 202 with
``Retry-After``; once ready, 200 with ``Content-Length`` and an ``ETag`` holding the
file's SHA-256. A partial file left by an interrupted download is resumed with ``Range``
and ``If-Range`` (a changed file starts over), and the whole file is checked against the
ETag before it is given its final name.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO

Progress = Callable[[str, int, int | None], None]
"""``progress(state, bytes_done, bytes_total)``: state is the export job's (queued,
running) while waiting, then ``downloading``; the total is None until known."""

CHUNK = 1 << 16


class ExportDownloadError(RuntimeError):
    """The export failed, expired, or the download did not match its checksum."""


def _context(ca: bytes | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca is not None:
        context.load_verify_locations(cadata=ca.decode())
    return context


def _wait_ready(
    url: str, context: ssl.SSLContext, progress: Progress | None, deadline: float
) -> None:
    while True:
        request = urllib.request.Request(url, method="HEAD")  # noqa: S310 (https checked)
        try:
            with urllib.request.urlopen(request, context=context, timeout=60) as answer:  # noqa: S310
                if answer.status != 202:
                    return
                retry = float(answer.headers.get("Retry-After") or 5)
                state = answer.headers.get("X-Export-State") or "running"
        except urllib.error.HTTPError as exc:
            raise ExportDownloadError(_refusal(exc)) from None
        if progress is not None:
            progress(state, 0, None)
        if time.monotonic() + retry > deadline:
            raise ExportDownloadError("the export was not ready in time")
        time.sleep(min(retry, 30.0))


def _refusal(exc: urllib.error.HTTPError) -> str:
    body = exc.read(4096).decode(errors="replace")
    try:
        detail = json.loads(body).get("message", body)
    except (ValueError, AttributeError):
        detail = body
    return f"export download refused: HTTP {exc.code} {detail}".strip()


def download_export(
    url: str,
    destination: Path,
    *,
    ca: bytes | None = None,
    progress: Progress | None = None,
    timeout: float = 3600.0,
) -> Path:
    """Wait until the export at ``url`` is ready and download it to ``destination``.

    A ``destination.part`` from an earlier attempt is resumed. Raises
    ExportDownloadError when the server refuses (expired: 410, bad signature: 403,
    failed export: 500) or the file's SHA-256 differs from the server's ETag."""
    if not url.startswith("https://"):
        raise ExportDownloadError(f"not an https export URL: {url[:80]!r}")
    context = _context(ca)
    _wait_ready(url, context, progress, time.monotonic() + timeout)
    partial = destination.with_name(destination.name + ".part")
    etag_file = destination.with_name(destination.name + ".part.etag")
    done = partial.stat().st_size if partial.exists() else 0
    headers: dict[str, str] = {}
    if done and etag_file.exists():
        headers = {"Range": f"bytes={done}-", "If-Range": etag_file.read_text().strip()}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (https checked)
    try:
        answer = urllib.request.urlopen(request, context=context, timeout=60)  # noqa: S310
    except urllib.error.HTTPError as exc:
        if exc.code != 416:
            raise ExportDownloadError(_refusal(exc)) from None
        # The part file is already whole (or longer): start over.
        partial.unlink(missing_ok=True)
        return download_export(url, destination, ca=ca, progress=progress, timeout=timeout)
    with answer:
        etag = answer.headers.get("ETag") or ""
        if answer.status == 206:
            mode, total = "ab", done + int(answer.headers.get("Content-Length") or 0)
        else:
            mode, done = "wb", 0
            total = int(answer.headers.get("Content-Length") or 0)
        etag_file.write_text(etag)
        with partial.open(mode) as out:
            done = _copy(answer, out, done, total, progress)
    _verify(partial, etag)
    partial.replace(destination)
    etag_file.unlink(missing_ok=True)
    return destination


def _copy(
    source: IO[bytes], out: IO[bytes], done: int, total: int, progress: Progress | None
) -> int:
    while chunk := source.read(CHUNK):
        out.write(chunk)
        done += len(chunk)
        if progress is not None:
            progress("downloading", done, total)
    return done


def _verify(path: Path, etag: str) -> None:
    expected = etag.strip('"').removeprefix("W/").strip('"')
    if len(expected) != 64:
        return  # no checksum offered
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        path.unlink(missing_ok=True)
        raise ExportDownloadError(
            f"downloaded file's sha256 {digest.hexdigest()} differs from the server's {expected}"
        )
