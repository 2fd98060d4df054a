"""A text progress bar for triage runs: exams done, exams per second and the time left, on stderr."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from app.triage.run import TriageProgress, TriageSummary

BAR_WIDTH = 30
LOG_INTERVAL_S = 10.0  # without a terminal, one line this often (and at the end)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


class ProgressBar:
    """Call it with each :class:`TriageProgress`. On a terminal it redraws one line; otherwise (a log
    file) it writes a line every ``LOG_INTERVAL_S`` seconds and at the end."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.redraw = self.stream.isatty()
        self._last_line = -LOG_INTERVAL_S

    def __call__(self, progress: TriageProgress) -> None:
        filled = round(BAR_WIDTH * progress.done / progress.total) if progress.total else BAR_WIDTH
        failed = f", {progress.failed} failed" if progress.failed else ""
        line = (
            f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {progress.done}/{progress.total} exams{failed}  "
            f"{progress.rate:.2f} exams/s  elapsed {_clock(progress.elapsed_s)}  ETA {_clock(progress.eta_s)}"
        )
        finished = progress.done == progress.total
        if self.redraw:
            self.stream.write(f"\r{line}" + ("\n" if finished else ""))
        elif finished or time.monotonic() - self._last_line >= LOG_INTERVAL_S:
            self._last_line = time.monotonic()
            self.stream.write(line + "\n")
        self.stream.flush()


def format_summary(summary: TriageSummary) -> str:
    """The end-of-run summary: scored, skipped, failed with reasons (no patient identifiers: exams
    are named by their key, files by their path)."""
    state = "cancelled" if summary.cancelled else "finished"
    rate = summary.scored / summary.elapsed_s * 3600 if summary.elapsed_s > 0 else 0.0
    lines = [
        f"triage {state} in {_clock(summary.elapsed_s)}: {summary.exams_found} exams found, "
        f"{summary.scored} scored ({rate:.0f} exams/h), {summary.skipped} skipped (already scored by "
        f"this model), {len(summary.failed)} failed",
    ]
    lines.extend(f"  failed at {failure.stage}: {failure.message}" for failure in summary.failed)
    if summary.ignored:
        lines.append(f"  {len(summary.ignored)} file(s) ignored: not DICOM")
    return "\n".join(lines)
