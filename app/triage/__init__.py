"""Second-reader triage (headless): batch scoring of a worklist, ranking and operating points.

**Scoring** (:func:`run_triage`, ``gmic triage``). The paths (folders, DICOM files, exam.json
manifests) are scanned by :func:`gmic_core.imaging.find_exams` (headers only); every exam
that the predictor's model (``ModelIdentity.key``: checkpoint hashes, precision, TTA) has not scored
yet is read, preprocessed and run, and its ``ExamResult`` is stored in its own transaction the moment
it is known, so an interrupted run loses at most the exam in hand and a new run continues without
duplicates. Reading and preprocessing run ahead of the model in worker threads (``overlap="threads"``,
two by default) or processes (``"processes"``); ``"none"`` does one thing at a time. An exam that cannot
be read or preprocessed, a file the scan cannot use (corrupt, not a mammogram, not a screening view)
and an image kept but not scored (a spot compression view, ...) is stored as a
:class:`~app.store.models.TriageFailure` with its stage and reason, and the run goes on; a later run
retries it and forgets the failure once it scores. Files that are not DICOM at all are counted as
ignored. Each run is a :class:`~app.store.models.TriageRun` row (model, paths, counts, status). With
``dicom_out`` (``gmic triage --dicom-out DIR``) each exam scored in this run is also written as DICOM
objects (:mod:`gmic_core.reporting`); an exam that cannot be exported stays scored and gets a failure
of stage "export".

**Calibration and operating points** (:func:`calibrate`, ``gmic calibrate``): on a labelled
calibration set (a ``gmic synth`` manifest), a site calibration of the exam and breast malignancy
scores with the deciles of the exam scores (:func:`save_calibration`, :func:`stored_calibration`), and
raw-score thresholds for a target sensitivity (``likely_normal``), specificity (``high_suspicion``)
and fraction of exams flagged (``flag_top``), stored with the model key; see
:mod:`app.triage.operating_points`.

**Worklist** (:func:`worklist`, ``gmic worklist``): the exams the model scored, ranked by the
exam-level malignancy score (the highest of the breasts' scores), with their flags and, where the
model is calibrated, the calibrated probability and the 1-10 score, followed by the failures and their
reasons.

For the workstation (from a worker thread, with its own :class:`~app.store.Store` sessions; nothing
here touches Qt)::

    from app.triage import run_triage, worklist, latest_model_key

    summary = run_triage(
        store, predictor, [folder],
        progress=lambda p: emit(p.done, p.total, p.rate, p.eta_s),   # TriageProgress, after each exam
        cancelled=lambda: stop_requested,                            # checked between and inside exams
    )                                                                # -> TriageSummary
    with store.session() as session:
        rows = worklist(session, predictor.identity.key, sort="score", flags=("high_suspicion",))
    # rows: [WorklistRow(exam_id, score, flags, status, error, probability, decile)], in rank order

Cancelling stops after the exam in hand (not stored) and returns the summary with ``cancelled``
set; running again resumes. Progress and summaries name exams by their key and files by their path,
never by patient identifiers.
"""

from app.defaults import (
    DEFAULT_OVERLAP,
    DEFAULT_WORKERS,
    FLAG_TOP,
    FLAGS,
    HIGH_SUSPICION,
    LIKELY_NORMAL,
    OVERLAPS,
    SORTS,
    Overlap,
)
from app.triage.operating_points import (
    Calibration,
    CalibrationError,
    calibrate,
    flags_for,
    operating_points,
    save_calibration,
    save_operating_points,
    stored_calibration,
)
from app.triage.pipeline import Failure
from app.triage.run import TriageProgress, TriageSummary, find_exams, run_triage
from app.triage.worklist import WorklistRow, latest_model_key, worklist

__all__ = [
    "DEFAULT_OVERLAP",
    "DEFAULT_WORKERS",
    "FLAGS",
    "FLAG_TOP",
    "HIGH_SUSPICION",
    "LIKELY_NORMAL",
    "OVERLAPS",
    "SORTS",
    "Calibration",
    "CalibrationError",
    "Failure",
    "Overlap",
    "TriageProgress",
    "TriageSummary",
    "WorklistRow",
    "calibrate",
    "find_exams",
    "flags_for",
    "latest_model_key",
    "operating_points",
    "run_triage",
    "save_calibration",
    "save_operating_points",
    "stored_calibration",
    "worklist",
]
