"""Where a server's CPU goes under load: py-spy samples, summarised per function.

``record(pid, seconds, out)`` runs ``py-spy record --format raw`` (collapsed stacks) on a
running server; ``top(out)`` folds the stacks into the functions with the most samples on
their own (self) and anywhere on the stack (inclusive).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path


def available() -> bool:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) is not None


def start(pid: int, seconds: float, out: Path, rate: int = 200) -> subprocess.Popen[bytes]:
    """Start sampling ``pid`` for ``seconds`` into ``out``; wait on the returned process."""
    exe = str(Path(sys.executable).parent / "py-spy")
    argv = [exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(rate)]
    # Python frames only, without pausing the target: --native needs a pause per sample,
    # which cut the gateway's throughput tenfold; C time shows in the frame that called it.
    argv += ["--format", "raw", "--output", str(out), "--nonblocking"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _frame(frame: str) -> str:
    # "function (path/to/file.py:123)" -> "function (file.py)"
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rsplit("/", 1)[-1].rstrip(")")
    return f"{name} ({file})" if file else name


def top(collapsed: Path, n: int = 15) -> dict[str, list[tuple[str, float]]]:
    """The ``n`` heaviest functions by self and inclusive share of samples."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            incl[frame] += count
    if not total:
        return {"self": [], "inclusive": []}
    return {
        "self": [(f, round(100 * c / total, 1)) for f, c in own.most_common(n)],
        "inclusive": [(f, round(100 * c / total, 1)) for f, c in incl.most_common(n)],
    }
