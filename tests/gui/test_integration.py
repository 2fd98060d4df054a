"""The workstation on the store, reader studies and triage: results and estimates survive a restart,
the study panel follows its protocol, triage fills scores and flags, database errors show."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.gui.main import configure_pyqtgraph
from app.gui.settings import Settings
from app.gui.side_panel import percent
from app.gui.window import MainWindow
from app.gui.worklist import FLAGS_COLUMN, SCORE_COLUMN
from app.reading.readings import hybrid_score
from app.store.models import OperatingPoint, Reading, ScoreCalibration
from app.store.results import load_exam_result
from app.study.cases import CaseSpec
from app.study.service import StudyService
from app.triage import HIGH_SUSPICION, LIKELY_NORMAL
from gmic_core.calibration import CalibrationFit, Calibrator, Deciles, SiteCalibration
from gmic_core.imaging import Laterality
from tests.gui.database import the_tests_own
from tests.gui.estimates import give

READER = "reader-7"


def open_views(qtbot, window: MainWindow, exams_folder: Path) -> None:
    """Start the window on the exams and wait until the first exam is shown (and analysed)."""
    with qtbot.waitSignal(window.settled, timeout=60000):
        window.start([exams_folder])
    qtbot.waitUntil(lambda: window.worklist.model.rowCount() == 3, timeout=30000)


def test_a_stored_result_survives_a_restart_without_recomputing(qtbot, make_window, checkpoint, exams_folder):
    first = make_window([checkpoint])
    open_views(qtbot, first, exams_folder)
    exam_id, stored = first.session.exam.exam_id, first.session.result
    first.close()

    second = make_window([checkpoint])
    started = []
    second.analysis_started.connect(started.append)
    open_views(qtbot, second, exams_folder)
    assert second.session.exam.exam_id == exam_id
    assert started == []
    assert second.session.result is not None
    assert second.session.result.model.key == stored.model.key
    assert (
        second.session.result.breasts[Laterality.LEFT].malignant == stored.breasts[Laterality.LEFT].malignant
    )
    assert second.worklist.model.entry(exam_id).score == pytest.approx(stored.malignancy_score)


def test_the_readers_estimate_is_committed_and_survives_a_restart(qtbot, make_window, exams_folder):
    first = make_window()
    open_views(qtbot, first, exams_folder)
    exam_id = first.session.exam.exam_id
    box = first.side.breasts[Laterality.RIGHT]
    box.birads.setCurrentIndex(4 + 1)
    give(box, 35)
    give(box, 40)  # a changed estimate: a new reading superseding the first
    box.recall.setChecked(True)
    assert first.persistence.writes.wait(10000)
    with the_tests_own(), first.store.session() as session:
        rows = session.scalars(select(Reading).order_by(Reading.id)).all()
    assert [(row.probability, row.revision, row.study_id) for row in rows] == [
        (35.0, 0, None),
        (40.0, 1, None),
        (40.0, 2, None),
    ]
    assert rows[1].supersedes_id == rows[0].id
    assert rows[0].recall is None  # not given yet: unknown, not "no recall"
    assert rows[2].recall
    assert rows[2].birads == 4
    first.close()

    second = make_window()
    open_views(qtbot, second, exams_folder)
    assert second.session.exam.exam_id == exam_id
    box = second.side.breasts[Laterality.RIGHT]
    qtbot.waitUntil(lambda: box.probability.value() == 40, timeout=10000)  # read by a worker
    assert (box.probability.value(), box.birads.currentData(), box.recall.isChecked()) == (40, 4, True)


def test_estimates_given_just_before_closing_are_stored(qtbot, make_window, exams_folder):
    """Closing waits for the estimates still being recorded, and gives one still settling."""
    window = make_window()
    open_views(qtbot, window, exams_folder)
    give(window.side.breasts[Laterality.RIGHT], 65)
    window.side.breasts[Laterality.LEFT].probability.setValue(30)  # spin arrows: still settling
    window.close()
    with the_tests_own(), window.store.session() as session:
        rows = session.scalars(select(Reading).order_by(Reading.id)).all()
        assert [(row.laterality, row.probability) for row in rows] == [("R", 65.0), ("L", 30.0)]


def start_study(qtbot, window: MainWindow, study: str, reader: str = READER) -> None:
    window.study.show_panel()
    panel = window.study_panel
    qtbot.waitUntil(lambda: panel.study.findText(study) >= 0, timeout=10000)  # listed by a worker
    panel.reader.setText(reader)
    panel.study.setCurrentText(study)
    panel.questions = []
    panel.ask = lambda question: panel.questions.append(question) or True  # the reader says yes
    with qtbot.waitSignal(window.settled, timeout=60000):
        panel.start_button.click()


def answer(panel, probability: int, birads: int, recall: bool) -> None:
    for side in panel.task.breasts:
        box = panel.breasts[side]
        assert box.recall.checkState() == Qt.CheckState.PartiallyChecked  # recall starts unanswered
        box.probability.setValue(probability)
        box.birads.setCurrentIndex(birads + 1)
        box.recall.setCheckState(Qt.CheckState.Checked if recall else Qt.CheckState.Unchecked)


def create_study(
    window: MainWindow, exams_folder: Path, protocol: str, model_key: str | None = None
) -> list[str]:
    keys = [entry.exam.exam_id for entry in window.worklist.model.entries]
    cases = [
        CaseSpec(key, {Laterality.LEFT: False, Laterality.RIGHT: index == 0}, str(exams_folder))
        for index, key in enumerate(keys)
    ]
    service = StudyService(window.store)
    with the_tests_own():
        service.create_study("pilot", cases, protocol, seed=3, model_key=model_key)
        service.enrol("pilot", READER)
    return keys


def test_a_blinded_study_hides_the_model_submits_advances_and_resumes(
    qtbot, make_window, checkpoint, exams_folder
):
    window = make_window([checkpoint])
    open_views(qtbot, window, exams_folder)
    assert window.worklist.model.entry(window.session.exam.exam_id).score is not None
    create_study(window, exams_folder, "blinded")
    start_study(qtbot, window, "pilot")
    panel = window.study_panel
    task = panel.task
    assert window.session.exam.exam_id == task.exam_key
    assert task.ai is None
    assert panel.progress.text() == "Read 0 / 3"
    # nothing of the model: no overlays or boxes, no probabilities or patches, no worklist scores
    assert all(cell.result is None for cell in window.viewer.cells.values())
    assert not window.side.isVisible()
    assert not any(action.isEnabled() for action in window.overlay_actions.values())
    model = window.worklist.model
    assert all(
        model.data(model.index(row, column)) == ""
        for row in range(model.rowCount())
        for column in (SCORE_COLUMN, FLAGS_COLUMN)
    )
    assert not window.worklist.flag_filter.isEnabled()
    for side in task.breasts:
        assert not panel.breasts[side].malignant.isVisible()
    assert not panel.back_button.isEnabled()  # blinded: no going back

    answer(panel, 20, 2, False)
    with qtbot.waitSignal(window.settled, timeout=60000):
        panel.submit_button.click()
        assert not panel.submit_button.isEnabled()  # while the submission is in flight
    assert panel.questions == ["Submit case 1? A submitted reading cannot be changed."]
    assert panel.progress.text() == "Read 1 / 3"
    assert panel.task.position == 1
    assert window.session.exam.exam_id == panel.task.exam_key
    second_case = panel.task.exam_key
    window.close()

    reopened = make_window([checkpoint])
    open_views(qtbot, reopened, exams_folder)
    start_study(qtbot, reopened, "pilot")
    assert reopened.study_panel.progress.text() == "Read 1 / 3"
    assert reopened.study_panel.task.exam_key == second_case == reopened.session.exam.exam_id
    # N, P and the worklist cannot open another exam during the study: the reason shows
    reopened.step_exam(1)
    other = next(entry.exam for entry in reopened.worklist.model.entries if entry.exam.exam_id != second_case)
    reopened.open_exam(other)
    assert reopened.session.exam.exam_id == second_case
    assert "leave the study" in reopened.messages.text.text()
    # leaving the study: the cases still to read unaided stay blinded everywhere
    reopened.study_panel.leave_button.click()
    assert not reopened.session.studying
    assert not reopened.session.model_visible(second_case)
    assert all(cell.result is None for cell in reopened.viewer.cells.values())
    assert not reopened.export_action.isEnabled()
    model = reopened.worklist.model
    assert model.data(model.index(model.row_of(second_case), SCORE_COLUMN)) == ""


def test_a_submission_without_a_probability_is_refused_in_the_window(qtbot, make_window, exams_folder):
    window = make_window()
    open_views(qtbot, window, exams_folder)
    create_study(window, exams_folder, "blinded")
    start_study(qtbot, window, "pilot")
    window.study_panel.submit_button.click()
    assert window.messages.isVisible()
    assert "probability" in window.messages.text.text()
    assert window.study_panel.progress.text() == "Read 0 / 3"
    # refused by the service (the study requires BI-RADS and recall): the answers given stay
    panel = window.study_panel
    box = panel.breasts[panel.task.breasts[0]]
    for side in panel.task.breasts:
        panel.breasts[side].probability.setValue(30)
    panel.submit_button.click()
    qtbot.waitUntil(lambda: not panel.busy and "recall" in window.messages.text.text(), timeout=10000)
    assert box.probability.value() == 30
    assert panel.progress.text() == "Read 0 / 3"


def test_triage_from_the_window_fills_scores_and_flags_and_the_flag_filter(
    qtbot, make_window, checkpoint, exams_folder
):
    window = make_window()
    # fp32: the tiny test model's bf16 scores of two exams can tie, and the filters below expect one each
    settings = Settings(
        data_dir=window.settings.data_dir, weights=[checkpoint], device="cpu", precision="fp32"
    )
    window.load_model(settings)
    qtbot.waitUntil(lambda: window.predictor is not None, timeout=60000)
    window.batch.start_triage(exams_folder)
    assert window.cancel_button.isVisibleTo(window)
    window.cancel_work()
    qtbot.waitUntil(lambda: window.batch.worker is None, timeout=60000)
    assert "Triage cancelled" in window.messages.text.text()
    window.batch.start_triage(exams_folder)
    qtbot.waitUntil(lambda: window.batch.worker is None, timeout=120000)
    model = window.worklist.model
    assert model.rowCount() == 3
    # the stored scores are read on the I/O pool after each exam and once the run ends
    qtbot.waitUntil(lambda: all(entry.score is not None for entry in model.entries), timeout=30000)
    scores = sorted(entry.score for entry in model.entries)
    key = window.predictor.identity.key
    with the_tests_own(), window.store.session() as session:
        for name, metric, threshold in (
            (HIGH_SUSPICION, "specificity", scores[2]),
            (LIKELY_NORMAL, "sensitivity", scores[1]),
        ):
            session.add(
                OperatingPoint(
                    model_key=key,
                    name=name,
                    metric=metric,
                    target=0.9,
                    threshold=threshold,
                    sensitivity=1.0,
                    specificity=1.0,
                    calibration_set="test",
                    exams=3,
                    positives=1,
                )
            )
    reading_scores = window.batch.refresh_scores()
    qtbot.waitUntil(lambda: reading_scores.done, timeout=10000)
    qtbot.wait(100)  # its result, queued to the GUI thread, is delivered
    flags = {entry.exam.exam_id: entry.flags for entry in model.entries}
    highest = max(model.entries, key=lambda entry: entry.score).exam.exam_id
    lowest = min(model.entries, key=lambda entry: entry.score).exam.exam_id
    assert flags[highest] == (HIGH_SUSPICION,)
    assert flags[lowest] == (LIKELY_NORMAL,)
    panel = window.worklist
    panel.flag_filter.setCurrentIndex(panel.flag_filter.findData(HIGH_SUSPICION))
    assert [exam.exam_id for exam in panel.exams_in_order()] == [highest]
    panel.flag_filter.setCurrentIndex(panel.flag_filter.findData(LIKELY_NORMAL))
    assert [exam.exam_id for exam in panel.exams_in_order()] == [lowest]
    panel.flag_filter.setCurrentIndex(0)
    panel.table.sortByColumn(SCORE_COLUMN, Qt.SortOrder.DescendingOrder)
    assert panel.exams_in_order()[0].exam_id == highest

    # A site calibration of the model: the worklist and the side panel show calibrated probabilities.
    def header(role: Qt.ItemDataRole = Qt.ItemDataRole.DisplayRole) -> str:
        return model.headerData(SCORE_COLUMN, Qt.Orientation.Horizontal, role)

    def score_cell(exam_id: str, role: Qt.ItemDataRole) -> str:
        return model.data(model.index(model.row_of(exam_id), SCORE_COLUMN), role)

    box = window.side.breasts[Laterality.RIGHT]
    with the_tests_own(), window.store.session() as session:
        result = load_exam_result(session, highest, key)
    window.side.set_result(result, {})
    assert header() == "Score (raw)"
    assert "uncalibrated" in header(Qt.ItemDataRole.ToolTipRole)
    assert "uncalibrated" in score_cell(highest, Qt.ItemDataRole.ToolTipRole)
    assert box.form.labelForField(box.malignant).text() == "Model, malignant (uncalibrated)"
    exam_fit = CalibrationFit(Calibrator("platt", slope=1.0, intercept=-1.0), {"platt": 0.5}, 0.2, 0.05, 3, 1)
    breast_fit = CalibrationFit(Calibrator("isotonic", knots=((0.0, 0.1), (1.0, 0.3))), {}, 0.2, 0.1, 6, 1)
    site = SiteCalibration(exam_fit, breast_fit, Deciles.of(np.array(scores)))
    with the_tests_own(), window.store.session() as session:
        session.add(
            ScoreCalibration(
                model_key=key, calibration=site.to_json(), calibration_set="t", exams=3, positives=1
            )
        )
    reading_scores = window.batch.refresh_scores()
    qtbot.waitUntil(lambda: reading_scores.done, timeout=10000)
    qtbot.wait(100)  # its result, queued to the GUI thread, is delivered
    top = model.entry(highest)
    assert (top.probability, top.decile) == (site.exam_probability(top.score), 10)
    assert header() == "Score [1-10]"
    assert "Calibrated exam probability" in header(Qt.ItemDataRole.ToolTipRole)
    assert score_cell(highest, Qt.ItemDataRole.DisplayRole) == f"{top.probability:.3f} [10]"
    assert f"raw score {top.score:.4f}" in score_cell(highest, Qt.ItemDataRole.ToolTipRole)
    assert panel.exams_in_order()[0].exam_id == highest
    raw = result.breasts[Laterality.RIGHT].malignant
    assert box.form.labelForField(box.malignant).text() == "Model, malignant (calibrated)"
    assert box.malignant.text() == percent(site.breast_probability(raw))
    assert box.malignant.toolTip() == f"raw score {percent(raw)}"


def test_an_unusable_database_shows_in_the_window_and_the_window_goes_on(qtbot, tmp_path, exams_folder):
    configure_pyqtgraph()
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    window = MainWindow(Settings(data_dir=tmp_path, db_url=f"sqlite:///{blocker}/gmic.sqlite3", device="cpu"))
    qtbot.addWidget(window)
    window.show()
    try:
        assert window.store is None
        assert window.messages.isVisible()
        assert "database could not be opened" in window.messages.text.text()
        open_views(qtbot, window, exams_folder)
        box = window.side.breasts[Laterality.LEFT]
        give(box, 70)
        assert window.readings.get(window.session.exam.exam_id, Laterality.LEFT).probability == pytest.approx(
            0.7
        )
    finally:
        window.close()


def test_a_failing_save_keeps_the_estimate_and_says_so(qtbot, make_window, exams_folder, monkeypatch):
    window = make_window()
    open_views(qtbot, window, exams_folder)

    def broken_session():
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(window.store, "session", broken_session)
    give(window.side.breasts[Laterality.RIGHT], 55)
    qtbot.waitUntil(lambda: "not saved" in window.messages.text.text(), timeout=10000)
    assert window.messages.isVisible()
    assert window.readings.get(window.session.exam.exam_id, Laterality.RIGHT).probability == pytest.approx(
        0.55
    )


def test_a_sequential_study_shows_the_model_only_in_the_aided_phase(
    qtbot, make_window, checkpoint, exams_folder
):
    window = make_window([checkpoint])
    open_views(qtbot, window, exams_folder)
    window.batch.start_triage(exams_folder)  # the study's model needs a stored result for every case
    qtbot.waitUntil(lambda: window.batch.worker is None, timeout=120000)
    create_study(window, exams_folder, "sequential", model_key=window.predictor.identity.key)
    start_study(qtbot, window, "pilot")
    panel = window.study_panel
    exam_key = panel.task.exam_key
    assert panel.task.ai is None
    assert all(cell.result is None for cell in window.viewer.cells.values())
    model = window.worklist.model
    assert all(model.data(model.index(row, SCORE_COLUMN)) == "" for row in range(model.rowCount()))
    answer(panel, 50, 2, False)  # contradicting answers: the reader is asked and confirms
    with qtbot.waitSignal(window.settled, timeout=60000):
        panel.submit_button.click()
    assert "50 % with BI-RADS 2" in panel.questions[-1]
    task = panel.task
    assert "Your unaided" in panel.case_label.text()
    assert task.exam_key == exam_key
    assert task.ai is not None
    assert panel.progress.text() == "Read 0 / 3"
    assert all(cell.result is not None for cell in window.viewer.cells.values())
    assert any(action.isEnabled() for action in window.overlay_actions.values())
    # the worklist in the aided phase: the score of the case read aided, none of the cases still to read
    scores = {
        entry.exam.exam_id: model.data(model.index(row, SCORE_COLUMN))
        for row, entry in enumerate(model.entries)
    }
    assert scores[exam_key] != ""
    assert all(score == "" for key, score in scores.items() if key != exam_key)
    side = task.breasts[0]
    box = panel.breasts[side]
    assert box.malignant.isVisible()
    assert box.malignant.text() == f"{100 * task.ai.scores[side]:.1f} %"
    box.probability.setValue(80)
    assert (
        box.hybrid.text() == f"{100 * hybrid_score(0.8, task.ai.scores[side], task.ai.hybrid_weight):.1f} %"
    )
