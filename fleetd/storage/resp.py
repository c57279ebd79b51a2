"""Packing Redis commands and sending them as one write, for the gateway's hot pipelines.

redis-py packs each command in Python, argument by argument through its encoder, and wraps
every reply read in its own timeout: together tens of microseconds per command, the
largest Redis cost of a heartbeat. The gateway's two hot batches (the desired-state
lookups and the heartbeat flush) are built here instead: commands packed straight into
RESP bytes, sent with one write on one pooled connection, the replies read back under one
timeout for the whole batch (parsed by hiredis when installed).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

Arg = str | bytes | int | float


def _bulk(value: Arg) -> bytes:
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode()
    elif isinstance(value, bool):
        raise TypeError("booleans have no Redis encoding")
    elif isinstance(value, int):
        data = b"%d" % value
    else:
        data = repr(value).encode()  # what redis-py sends for a float
    return b"$%d\r\n%s\r\n" % (len(data), data)


def pack_command(args: Sequence[Arg]) -> bytes:
    """One command as RESP: ``*N`` then each argument as a bulk string."""
    return b"*%d\r\n" % len(args) + b"".join([_bulk(a) for a in args])


def pack_prefix(args: Sequence[Arg], total: int) -> bytes:
    """The start of a command of ``total`` arguments whose first ones are ``args``: packed
    once, for commands that share them (``EVALSHA sha numkeys``)."""
    return b"*%d\r\n" % total + b"".join([_bulk(a) for a in args])


def pack_args(args: Iterable[Arg]) -> bytes:
    """Arguments to append to a ``pack_prefix``."""
    return b"".join([_bulk(a) for a in args])


async def execute_packed(
    redis: aioredis.Redis, payload: bytes, replies: int, *, within: float = 5.0
) -> list[object]:
    """Send ``payload`` (``replies`` packed commands) on one connection; the replies in
    order, error replies as exception objects (not raised).

    On a timeout, a cancellation or a connection error the connection is dropped (it may
    still owe replies) and the exception propagates.
    """
    pool = redis.connection_pool
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        async with asyncio.timeout(within):
            await conn.send_packed_command(payload, check_health=False)
            out: list[object] = []
            for _ in range(replies):
                try:
                    out.append(await conn.read_response(timeout=math.inf))
                except ResponseError as exc:
                    out.append(exc)
        return out
    except BaseException:
        await conn.disconnect(nowait=True)
        raise
    finally:
        await pool.release(conn)
