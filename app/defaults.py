"""Defaults and choices shared by the command line and the workstation. Standard library only, so that
``gmic --help`` builds its parser without torch, SQLAlchemy or pydicom."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL = REPO_ROOT / "resources" / "models" / "gmic-demo-r18.pt"
DEMO_MODEL_NOTICE = "synthetic demo model, not for clinical use"

Overlap = Literal["none", "threads", "processes"]
OVERLAPS: tuple[Overlap, ...] = ("none", "threads", "processes")
# Two reading processes were the fastest on the 2-core development CPU once inference ran in bf16: 874 and
# 872 exams/h against 741 and 744 with two threads, 747 and 749 with three processes (docs/scale.md).
DEFAULT_OVERLAP: Overlap = "processes"
DEFAULT_WORKERS = 2

# The triage flags, each set by the operating point of the same name (app.triage.operating_points).
HIGH_SUSPICION = "high_suspicion"
LIKELY_NORMAL = "likely_normal"
FLAG_TOP = "flag_top"
FLAGS = (HIGH_SUSPICION, LIKELY_NORMAL, FLAG_TOP)


class RunStatus(StrEnum):
    """Where a ``gmic triage`` run is: running, finished, cancelled (asked to stop) or interrupted
    (stopped by an error or Ctrl-C; a run killed outright stays running)."""

    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


class FailureStage(StrEnum):
    """Where triage failed on an exam or a file; ``export``: scored, but its results could not be
    written as DICOM."""

    SCAN = "scan"
    LOAD = "load"
    PREPROCESS = "preprocess"
    INFERENCE = "inference"
    EXPORT = "export"


Sort = Literal["score", "exam"]
SORTS: tuple[Sort, ...] = ("score", "exam")
FORMATS = ("table", "csv", "json")
