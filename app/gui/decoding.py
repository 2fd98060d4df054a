"""Decoding views for the screen in worker processes (Qt-free, and light to import: no torch).

The JPEG 2000 decoder holds the GIL while it works (about a second per full-size view), so in
threads the four views would decode one after another and starve the GUI thread. Worker processes
decode them in parallel where there are cores, and the GUI thread keeps running.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor

from app.gui.imagery import DisplayImage, prepare_display
from gmic_core.imaging import Exam, View, decode_view

MAX_PROCESSES = 4  # one per standard view


def decoding_pool() -> Executor:
    """A pool of worker processes, started afresh ("spawn": never a fork of a process that runs
    Qt and torch threads) and warmed up at once, so that the first exam does not wait for them to
    start and import the readers."""
    workers = max(1, min(MAX_PROCESSES, os.cpu_count() or 1))
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    for _ in range(workers):
        pool.submit(ready)
    return pool


def ready() -> bool:
    """Nothing: running it in a worker process imports this module, and so the readers, there."""
    return True


def decode_for_display(exam: Exam, view: View) -> DisplayImage:
    """One standard view decoded (with the duplicate rule's fallback) and its display pyramid."""
    return prepare_display(view, decode_view(exam, view))
