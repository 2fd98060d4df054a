"""Decoding views for the screen in worker processes (Qt-free, and light to import: no torch).

The JPEG 2000 decoder holds the GIL while it works (about a second per full-size view), so in
threads the four views would decode one after another and starve the GUI thread. Worker processes
decode them in parallel where there are cores, and the GUI thread keeps running.

A decoded view's pixels (its pyramid, about 36 MB at full size) do not travel back through the
process pool's pipe: unpickling them there holds the GIL for up to 100 ms, and the GUI thread with
it. The worker writes them to a file in shared memory and sends its layout (:class:`SharedView`);
the GUI process maps the file, which costs no copy, and deletes its name at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.gui.imagery import DisplayImage, prepare_display
from gmic_core.imaging import Exam, Mammogram, View, decode_view

MAX_PROCESSES = 4  # one per standard view
SHARED_FOLDER = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
FILE_PREFIX = "gmic-reader-view-"
STALE_AFTER_S = 3600  # a view's file lives for a second or two; older ones a killed workstation left
ALIGNMENT = 64  # bytes; each pyramid level starts on such a boundary in the file


def decoding_pool() -> Executor:
    """A pool of worker processes, started afresh ("spawn": never a fork of a process that runs
    Qt and torch threads) and warmed up at once, so that the first exam does not wait for them to
    start and import the readers. Files that a killed workstation left in shared memory go."""
    for stale in SHARED_FOLDER.glob(f"{FILE_PREFIX}*"):
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > STALE_AFTER_S:
                stale.unlink()
    workers = max(1, min(MAX_PROCESSES, os.cpu_count() or 1))
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    for _ in range(workers):
        pool.submit(ready)
    return pool


def ready() -> bool:
    """Nothing: running it in a worker process imports this module, and so the readers, there."""
    return True


@dataclass(frozen=True)
class SharedView:
    """A decoded view whose pyramid waits in the file ``path``: each level's byte offset, shape
    and dtype. The mammogram travels without its pixels (they are the pyramid's first level)."""

    view: View
    mammogram: Mammogram
    path: Path
    levels: tuple[tuple[int, tuple[int, ...], str], ...]

    def open(self) -> DisplayImage:
        """The view, its pixels mapped read-only from the file, whose name is deleted (the mapping
        lives on until the image is dropped)."""
        try:
            whole = np.memmap(self.path, dtype=np.uint8, mode="r")
        finally:
            self.discard()
        pyramid = tuple(
            np.ndarray(shape, dtype=np.dtype(dtype), buffer=whole, offset=offset)
            for offset, shape, dtype in self.levels
        )
        return DisplayImage(self.view, dataclasses.replace(self.mammogram, pixels=pyramid[0]), pyramid)

    def discard(self) -> None:
        # Windows refuses to delete a mapped file: the sweep of a later start takes it
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)


def decode_shared(exam: Exam, view: View) -> SharedView:
    """One standard view decoded (with the duplicate rule's fallback) in a worker process, its
    display pyramid written to shared memory."""
    image = prepare_display(view, decode_view(exam, view))
    levels, offset = [], 0
    for level in image.pyramid:
        levels.append((offset, level.shape, level.dtype.str))
        offset += -(-level.nbytes // ALIGNMENT) * ALIGNMENT
    descriptor, name = tempfile.mkstemp(prefix=FILE_PREFIX, dir=SHARED_FOLDER)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            for (start, _, _), level in zip(levels, image.pyramid, strict=True):
                stream.seek(start)
                stream.write(np.ascontiguousarray(level).data)
            stream.truncate(offset)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    empty = np.empty((0, 0), dtype=image.mammogram.pixels.dtype)
    return SharedView(view, dataclasses.replace(image.mammogram, pixels=empty), Path(name), tuple(levels))


def discard_when_done(future: Future) -> None:
    """Delete the file of a view nobody will open, once (or if) its worker has written it."""

    def discard(done: Future) -> None:
        if not done.cancelled() and done.exception() is None:
            done.result().discard()

    future.add_done_callback(discard)
