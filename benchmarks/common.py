"""Shared helpers of the benchmark scripts."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from gmic_core.bench import median_time

REPO_ROOT = Path(__file__).resolve().parents[1]


def reference_dir() -> Path:
    return Path(os.environ.get("GMIC_REFERENCE_DIR", REPO_ROOT.parent / "shared" / "reference"))


def median_seconds(function: Callable[[], object], runs: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall time of ``runs`` calls after ``warmup`` untimed calls, and every timing."""
    return median_time(function, runs, warmup)
