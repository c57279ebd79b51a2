"""PNG plots for the load benchmarks (matplotlib, headless), beside their JSON results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.harness import RESULTS_DIR


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, name: str) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    print(f"plot: {path}")
    return path
