"""One worker abstraction for long work (STYLE.md 9): a task function from :mod:`app.gui.tasks`
runs on a thread pool; typed signals report progress, partial results, the result, an error or the
cancellation, and always ``finished`` last. Signals are delivered on the GUI thread (queued), so
receivers may touch widgets; the task itself never does."""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from gmic_core.errors import GMICError

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    """How a worker's run ended: the signal it sent before ``finished``."""

    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class WorkerSignals(QObject):
    progress = Signal(str, int, int)  # message, done, total
    partial = Signal(object)
    result = Signal(object)
    error = Signal(str)  # a message for the reader
    cancelled = Signal()
    finished = Signal()


class Worker(QRunnable):
    """Runs ``function(context, *args)``; ``cancel()`` asks it to stop at its next check. ``outcome``
    is set before ``finished`` is sent (None until then)."""

    def __init__(self, name: str, function: Callable[..., Any], *args: Any) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.name = name
        self.signals = WorkerSignals()
        self._function = function
        self._args = args
        self._cancel = threading.Event()
        self._done = threading.Event()
        self.outcome: Outcome | None = None

    # The TaskContext protocol of app.gui.tasks, for the task function.
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def progress(self, message: str, done: int, total: int) -> None:
        self.signals.progress.emit(message, done, total)

    def partial(self, value: Any) -> None:
        self.signals.partial.emit(value)

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def run(self) -> None:
        try:
            value = None if self.cancelled() else self._function(self, *self._args)
        except InterruptedError:
            self.outcome = Outcome.CANCELLED
            self.signals.cancelled.emit()
        except GMICError as error:
            self.outcome = Outcome.FAILED
            self.signals.error.emit(str(error))
        except Exception as error:  # a bug or an environment problem: keep the application alive
            log.exception("%s failed", self.name)
            self.outcome = Outcome.FAILED
            self.signals.error.emit(f"{self.name} failed unexpectedly: {type(error).__name__}: {error}")
        else:
            if self.cancelled():
                self.outcome = Outcome.CANCELLED
                self.signals.cancelled.emit()
            else:
                self.outcome = Outcome.DONE
                self.signals.result.emit(value)
        finally:
            self._done.set()
            self.signals.finished.emit()


class WorkerPool:
    """Starts workers on a thread pool of its own and keeps each alive until it has finished."""

    def __init__(self, threads: int, parent: QObject | None = None) -> None:
        self._pool = QThreadPool(parent)
        self._pool.setMaxThreadCount(threads)
        self._running: set[Worker] = set()

    def start(self, worker: Worker) -> Worker:
        self._running.add(worker)
        worker.signals.finished.connect(lambda: self._running.discard(worker))
        self._pool.start(worker)
        return worker

    @property
    def active(self) -> int:
        return sum(not worker.done for worker in self._running)

    @property
    def idle(self) -> bool:
        """True once every worker started has delivered its ``finished`` signal, and so all its
        other signals (``active`` drops a moment earlier, while they may still be queued)."""
        return not self._running

    def shut_down(self, timeout_ms: int = 30000) -> bool:
        """Cancel every worker and wait for the threads; True when all have stopped."""
        for worker in self._running:
            worker.cancel()  # one not started yet runs at once to its cancelled and finished signals
        return self.wait(timeout_ms)

    def wait(self, timeout_ms: int) -> bool:
        """Wait, cancelling nothing, until every worker started has finished; True when all have."""
        return self._pool.waitForDone(timeout_ms)
