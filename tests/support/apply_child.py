"""A child process that runs the agent's converge loop on one assignment, for the
crash-point tests (tests/agent/test_crash_safety.py): the test sets
``FLEETD_AGENT_CRASH_AT`` so the agent dies mid-apply, then runs it again without.

Usage: python -m tests.support.apply_child ROOT SPEC_FILE [--runtime EXE] [--allow-exec P]
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from agent.containers import ContainerRuntime
from agent.instructions import Policy
from fleetd.device.v1 import agent_pb2
from tests.support.converging import make_converger


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("spec", type=Path)
    parser.add_argument("--runtime", default="")
    parser.add_argument("--allow-exec", action="append", default=[])
    args = parser.parse_args()
    spec = agent_pb2.ArtifactAssignment.FromString(args.spec.read_bytes())
    rig = make_converger(
        args.root,
        policy=Policy(
            allowed_dirs=(args.root / "apps",),
            exec_probes=tuple(args.allow_exec),
            reload_commands=tuple(args.allow_exec),
        ),
        runtime=ContainerRuntime(args.runtime) if args.runtime else None,
    )
    await rig.converger.recover()
    rig.converger.offer(agent_pb2.DesiredState(revision=1, assignments=[spec]))
    await rig.converger.converge_all()


if __name__ == "__main__":
    asyncio.run(main())
