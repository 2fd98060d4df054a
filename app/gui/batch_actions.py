"""The window's batch actions: triage of a folder (scores and flags fill the worklist as results are
stored), the worklist's stored scores, and the export of the result on screen as DICOM. Each runs as one worker on the window's
pools; this module only wires them, and asks the reading session what of the model may be exported."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFileDialog

from app.gui import tasks
from app.gui.workers import Worker
from app.gui.worklist import ExamStatus
from app.triage import TriageSummary
from gmic_core.reporting.identity import Algorithm

if TYPE_CHECKING:
    from app.gui.window import MainWindow


class BatchActions:
    """Triage and export for ``window``; ``worker`` is the triage run in progress, if any."""

    def __init__(self, window: MainWindow) -> None:
        self._window = window
        self.worker: Worker | None = None

    def choose_triage_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self._window, "Triage a folder of exams")
        if folder:
            self.start_triage(Path(folder))

    def start_triage(self, folder: Path) -> None:
        """List the exams of ``folder`` and score, in the background, those the model has not scored;
        scores and flags fill the worklist as results are stored. Cancel stops after the exam in hand."""
        window = self._window
        if window.store is None:
            window.messages.show_message(
                "Triage stores its results in the database, which could not be opened."
            )
            return
        if window.predictor is None:
            window.messages.show_message("Triage needs a model: choose one in Settings > Model and device.")
            return
        if self.worker is not None:
            window.messages.show_message("A triage run is in progress already.", error=False)
            return
        window.add_paths([folder])
        worker = Worker("Triage", tasks.triage, window.store, window.predictor, [folder])
        worker.signals.partial.connect(lambda _: self.refresh_scores())
        worker.signals.result.connect(self._triage_done)
        worker.signals.cancelled.connect(
            lambda: window.messages.show_message("Triage cancelled; starting it again resumes.", error=False)
        )
        worker.signals.finished.connect(self._triage_finished)
        self.worker = window.run_worker(window.compute_pool, worker)
        window.update_cancel_button()

    def _triage_done(self, summary: TriageSummary) -> None:
        failed = f", {len(summary.failed)} could not be scored" if summary.failed else ""
        self._window.messages.show_message(
            f"Triage: {summary.scored} exams scored, {summary.skipped} scored before{failed}.", error=False
        )

    def _triage_finished(self) -> None:
        self.worker = None
        self.refresh_scores()
        self._window.update_cancel_button()
        self._window.analyse_if_needed()

    def refresh_scores(self) -> Worker | None:
        """Read, on the I/O pool, the stored scores, flags and site calibration of the current model
        for the exams listed (triage results, results of earlier sessions)."""
        window = self._window
        if window.store is None or window.predictor is None or window.closed:
            return None
        key = window.predictor.identity.key
        worker = Worker("Reading the stored scores", tasks.stored_scores, window.store, key)
        worker.signals.result.connect(self._scores_read)
        return window.run_worker(window.io_pool, worker)

    def _scores_read(self, scores: tasks.StoredScores) -> None:
        window = self._window
        if window.predictor is None or scores.model_key != window.predictor.identity.key:
            return
        window.side.set_calibration(scores.calibration)
        worklist = window.worklist.model
        worklist.set_calibrated(scores.calibration is not None)
        for row in scores.rows:
            entry = row.exam_id is not None and worklist.entry(row.exam_id)
            if not entry:
                continue
            if row.score is None:
                if entry.status is ExamStatus.NEW:
                    worklist.update(row.exam_id, ExamStatus.FAILED)
                continue
            status = ExamStatus.ANALYSED if entry.status in (ExamStatus.NEW, ExamStatus.FAILED) else None
            worklist.update(row.exam_id, status, row.score, row.flags, row.probability, row.decile)

    def choose_export_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self._window, "Export the results as DICOM into a folder")
        if folder:
            self.export_results(Path(folder))

    def export_results(self, folder: Path) -> Worker | None:
        """Write the result on screen as DICOM objects (CAD SR, TID 1500 report, segmentations,
        Secondary Capture) into ``folder``, in the background; refused while the exam is blinded."""
        window = self._window
        session, predictor, messages = window.session, window.predictor, window.messages
        result = session.model_result
        if result is None or predictor is None:
            if session.result is not None:
                messages.show_message("The model's output of this exam is hidden while you read it blinded.")
            return None
        if result.model.key != predictor.identity.key:
            messages.show_message("The result on screen is of another model: analyse the exam again first.")
            return None
        algorithm = Algorithm.of(predictor.checkpoints)
        worker = Worker(
            "Export as DICOM",
            tasks.export_dicom,
            window.store,
            result,
            dict(session.images),
            algorithm,
            folder,
        )
        worker.signals.result.connect(
            lambda paths: messages.show_message(
                f"Results written as {len(paths)} DICOM objects to {folder}.", error=False
            )
        )
        return window.run_worker(window.io_pool, worker)
