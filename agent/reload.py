"""Config reload actions after a file is swapped in (and again after it is restored):
none, ``systemctl restart <unit>`` for an allowlisted unit, or an allowlisted command."""

from __future__ import annotations

from agent import commands
from agent.instructions import Reload

SYSTEMCTL = "/usr/bin/systemctl"
RELOAD_TIMEOUT = 120.0


class ReloadFailed(Exception):
    """The reload action did not succeed; the message says how."""


async def reload(action: Reload, *, systemctl: str = SYSTEMCTL) -> None:
    """Carry out ``action`` (already validated against the allowlists)."""
    if action.unit:
        argv: tuple[str, ...] = (systemctl, "restart", "--", action.unit)
    elif action.command:
        argv = action.command
    else:
        return
    try:
        done = await commands.run(argv, RELOAD_TIMEOUT)
    except OSError as exc:
        raise ReloadFailed(f"cannot run {argv[0]}: {exc.strerror}") from None
    if done.returncode is None:
        raise ReloadFailed(f"{argv[0]} timed out after {RELOAD_TIMEOUT:g}s")
    if done.returncode != 0:
        raise ReloadFailed(f"{argv[0]} exited {done.returncode}: {commands.tail(done.output)}")
