"""Store outages for tests: a TCP proxy in front of the real server that can be cut.

``cut()`` closes the listener and every proxied connection (clients see their connections
drop and new ones refused, as when a server or its network goes away); ``restore()``
listens again on the same port. The stores themselves are the shared test servers, so an
outage affects only the clients that connect through the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit


class CuttableProxy:
    def __init__(self, target: str | tuple[str, int]) -> None:
        self._target = target
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        await self.cut()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if isinstance(self._target, str):
                up_reader, up_writer = await asyncio.open_unix_connection(self._target)
            else:
                up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        self._writers.difference_update((writer, up_writer))


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):  # a cut connection
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
    finally:
        writer.transport.abort()


def postgres_target(url: str) -> str | tuple[str, int]:
    """Where a PostgreSQL URL points: a unix socket path or (host, port)."""
    parts = urlsplit(url)
    socket_dir = parse_qs(parts.query).get("host", [""])[0]
    if socket_dir.startswith("/"):
        port = parts.port or 5432
        return str(Path(socket_dir) / f".s.PGSQL.{port}")
    return (parts.hostname or "127.0.0.1", parts.port or 5432)


def postgres_url_via(url: str, proxy: CuttableProxy) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    password = f":{parts.password}" if parts.password else ""
    return urlunsplit(
        ("postgresql", f"{user}{password}@127.0.0.1:{proxy.port}", parts.path, "", "")
    )


def redis_target(url: str) -> str | tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return (parts.hostname or "127.0.0.1", parts.port or 6379)


def redis_url_via(url: str, proxy: CuttableProxy) -> str:
    parts = urlsplit(url)
    db = parse_qs(parts.query).get("db", [""])[0] or parts.path.lstrip("/") or "0"
    return f"redis://127.0.0.1:{proxy.port}/{db}"


@contextlib.asynccontextmanager
async def proxied(target: str | tuple[str, int]) -> AsyncIterator[CuttableProxy]:
    proxy = CuttableProxy(target)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
