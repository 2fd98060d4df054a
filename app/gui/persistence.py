"""The window's database work, every piece of it a worker (the GUI thread never waits for the database):
the reader's stored estimates are read when an exam opens, each estimate given is recorded, each
result computed is stored, and the stored result of an exam is looked up before the model runs.

Reads run on the window's I/O pool. Writes, and the reader-study calls (:mod:`app.gui.study_panel`),
run on a pool of one thread of their own, :attr:`Persistence.writes`: they reach the database in the
order given (a superseding reading after the one it supersedes; one study call at a time), and closing
the window waits for them, with a bound, where it cancels the rest (a reading given just before closing
is stored). Without a database everything stays in memory. A database error never loses what is in
hand: it stays in memory, and the window's message bar says why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.gui import tasks
from app.gui.workers import Worker, WorkerPool
from app.reading.readings import Estimate, ModelShown
from gmic_core.imaging import Laterality
from gmic_core.inference import ExamResult

if TYPE_CHECKING:
    from app.gui.window import MainWindow

CLOSING_WAIT_MS = 30000  # the most that closing the window waits for the writes still pending


class Persistence:
    def __init__(self, window: MainWindow) -> None:
        self._window = window
        self.writes = WorkerPool(1, window)
        self._not_stored: tuple[str, str] | None = None  # (exam, model) looked up and not in the store

    def run(self, worker: Worker) -> Worker:
        """Run ``worker`` on :attr:`writes`: after the writes before it, and waited for at closing."""
        return self._window.run_worker(self.writes, worker)

    def exam_opened(self, exam_id: str) -> None:
        """Read the reader's stored estimates of the exam into the reading book (and the side panel)."""
        window = self._window
        self._not_stored = None  # looked up again: triage may have stored it since
        if window.store is None:
            return
        worker = Worker(
            "Reading your estimates", tasks.stored_readings, window.store, window.session.reader, exam_id
        )
        worker.signals.result.connect(lambda stored: self._readings_read(exam_id, stored))
        window.run_worker(window.io_pool, worker)

    def _readings_read(self, exam_id: str, stored: dict[Laterality, Estimate]) -> None:
        self._window.side.readings_filled(exam_id, self._window.readings.fill(exam_id, stored))

    def record_reading(
        self, exam_id: str, side: Laterality, estimate: Estimate, model: ModelShown | None
    ) -> None:
        """The reading book's recorder: the estimate the reader gave, committed as a reading."""
        window = self._window
        if window.store is not None:
            reading = (window.store, window.session.reader, exam_id, side, estimate, model)
            self.run(Worker("Saving your estimate", tasks.record_reading, *reading))

    def store_result(self, result: ExamResult) -> None:
        if self._window.store is not None:
            self.run(Worker("Storing the result", tasks.store_result, self._window.store, result))

    def looked_up(self, exam_id: str, model_key: str) -> bool:
        """Whether the store was asked for the exam's result of the model since the exam opened (and
        had none), or there is no store to ask."""
        return self._window.store is None or self._not_stored == (exam_id, model_key)

    def result_lookup(self, exam_id: str, model_key: str) -> Worker:
        """A worker, for the I/O pool, that looks up the stored result: found, it goes into the window's
        cache; not found (or not readable), :meth:`looked_up` says so."""
        worker = Worker(
            "Reading the stored result", tasks.stored_result, self._window.store, exam_id, model_key
        )
        worker.signals.result.connect(lambda result: self._result_read(exam_id, model_key, result))
        worker.signals.error.connect(lambda _message: self._result_read(exam_id, model_key, None))
        return worker

    def _result_read(self, exam_id: str, model_key: str, result: ExamResult | None) -> None:
        if result is None:
            self._not_stored = (exam_id, model_key)
        else:
            self._window.cache.put(result)

    def finish(self) -> bool:
        """Closing: wait for the writes pending; True when all are done."""
        return self.writes.wait(CLOSING_WAIT_MS)
