"""Shared helpers of the benchmark scripts."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def reference_dir() -> Path:
    return Path(os.environ.get("GMIC_REFERENCE_DIR", REPO_ROOT.parent / "shared" / "reference"))


def median_seconds(function: Callable[[], object], runs: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall time of ``runs`` calls after ``warmup`` untimed calls, and every timing."""
    for _ in range(warmup):
        function()
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings), timings
