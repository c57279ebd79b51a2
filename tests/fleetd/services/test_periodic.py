"""A periodic background role runs at once, keeps running after a failed round, runs one
task per event loop, and stops when stopped."""

from __future__ import annotations

import asyncio

from fleetd.services.periodic import PeriodicRole


async def test_a_failed_round_is_reported_and_the_next_one_runs() -> None:
    failures: list[Exception] = []
    rounds = 0

    async def round_() -> None:
        nonlocal rounds
        rounds += 1
        if rounds == 1:
            raise RuntimeError("first round fails")

    role = PeriodicRole(failures.append)
    role.start(round_, 0.01)
    try:
        for _ in range(200):
            if rounds >= 3:
                break
            await asyncio.sleep(0.01)
    finally:
        await role.stop()
    assert rounds >= 3
    assert [str(e) for e in failures] == ["first round fails"]


async def test_starting_twice_on_one_loop_runs_one_task_and_stop_ends_it() -> None:
    rounds = 0
    started = asyncio.Event()

    async def round_() -> None:
        nonlocal rounds
        rounds += 1
        started.set()

    role = PeriodicRole(lambda exc: None)
    role.start(round_, 3600)
    role.start(round_, 3600)
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.sleep(0.05)
    await role.stop()
    assert rounds == 1
    await role.stop()  # stopping a stopped role is harmless
