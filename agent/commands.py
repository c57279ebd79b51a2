"""Running an allowlisted executable: argv only (never a shell), a clean environment
(the agent's own, which may hold an enrolment token, is not passed on), a timeout that
kills the whole process group."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass

CHILD_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
MAX_OUTPUT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Completed:
    returncode: int | None
    """None when the command timed out (it was killed)."""
    output: bytes
    """stdout and stderr, interleaved: the last ``keep`` bytes."""


async def run(argv: Sequence[str], within: float, keep: int = MAX_OUTPUT) -> Completed:
    """Run ``argv`` to completion or for at most ``within`` seconds, keeping the last
    ``keep`` bytes of its output; OSError if it cannot start."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=CHILD_ENV,
        start_new_session=True,
    )
    assert process.stdout is not None
    output = bytearray()

    async def read() -> None:
        assert process.stdout is not None
        while chunk := await process.stdout.read(65536):
            output.extend(chunk)
            del output[:-keep]

    reader = asyncio.ensure_future(read())
    try:
        async with asyncio.timeout(within):
            await reader
            returncode = await process.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        reader.cancel()
        return Completed(None, bytes(output))
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        raise
    return Completed(returncode, bytes(output))


def tail(output: bytes, limit: int = 512) -> str:
    """The end of a command's output, for a status message."""
    return output[-limit:].decode("utf-8", "replace").strip()
