"""The reading session's rules without a window: what of the model may be shown on every route
(leaving the study, reopening from the worklist, N/P, a restart, both phases of a sequential study),
which exams may be opened in study mode, and when a reading may be submitted."""

from __future__ import annotations

import dataclasses

from app.reading.readings import ModelShown
from app.reading.session import Change, ReadingSession
from app.store.models import Phase
from app.study.service import AIDisplay, CaseTask
from gmic_core.imaging import Exam
from gmic_core.imaging.views import PUBLISHED_VIEW_ORDER, Laterality
from tests.app.factories import IDENTITY, fake_exam_result

L, R = Laterality.LEFT, Laterality.RIGHT


def _exam(key: str) -> Exam:
    return Exam(key, dict.fromkeys(PUBLISHED_VIEW_ORDER))


def _task(exam_key: str, phase: Phase = Phase.UNAIDED) -> CaseTask:
    ai = AIDisplay(IDENTITY.key, {L: 0.7, R: 0.1}, 0.5) if phase is Phase.AIDED else None
    return CaseTask("s", "ann", 0, 3, exam_key, exam_key, None, (L, R), phase, ai, False, False)


def _on_screen(session: ReadingSession, key: str, views=PUBLISHED_VIEW_ORDER) -> None:
    session.open(_exam(key))
    session.views_loaded(key, {view: object() for view in views})
    session.set_result(fake_exam_result(key, malignant={L: 0.7, R: 0.1}))


def test_blinded_exams_stay_hidden_on_every_route():
    session = ReadingSession("ann")
    unaided = frozenset({"a", "b"})
    session.enter_study(unaided)
    session.set_task(_task("a"), unaided)
    _on_screen(session, "a")
    assert session.model_result is None  # the case read blinded
    assert session.model_shown(L, 0.5) is None
    assert session.refusal_to_open("b") is not None  # worklist, N/P: no other exam in study mode
    session.leave_study()
    assert session.refusal_to_open("b") is None
    for key in ("a", "b"):  # reopened from the worklist after leaving: still hidden
        _on_screen(session, key)
        assert not session.model_visible(key)
        assert session.model_result is None
    _on_screen(session, "c")  # an exam of no blinded study
    assert session.model_result is not None
    restarted = ReadingSession("ann")  # a restart: the list comes from the database again
    restarted.set_unaided(unaided)
    _on_screen(restarted, "a")
    assert restarted.model_result is None
    assert restarted.blinding


def test_a_sequential_aided_phase_shows_the_model_for_its_case_only():
    session = ReadingSession("ann")
    still_unaided = frozenset({"b"})  # "a" read unaided, "b" not yet
    session.enter_study(still_unaided)
    session.set_task(_task("a", Phase.AIDED), still_unaided)
    _on_screen(session, "a")
    assert session.model_shown(L, 0.5) == ModelShown(0.7, 0.5)
    assert not session.model_visible("b")  # the worklist's score of a case still to read unaided
    assert session.model_visible("c")


def test_an_aided_phase_shows_only_the_study_models_result():
    session = ReadingSession("ann")
    session.enter_study(frozenset())
    session.set_task(_task("a", Phase.AIDED), frozenset())
    session.open(_exam("a"))
    session.views_loaded("a", {view: object() for view in PUBLISHED_VIEW_ORDER})
    other = fake_exam_result("a", identity=dataclasses.replace(IDENTITY, tta=4))
    session.set_result(other)
    assert session.model_result is None
    assert not session.may_submit  # ai_shown would be false: the aided phase waits for the model


def test_submit_waits_for_every_view_of_the_case_in_hand():
    session = ReadingSession("ann")
    changes: list[Change] = []
    session.subscribe(changes.append)
    session.enter_study(frozenset({"a"}))
    session.set_task(_task("a"), frozenset({"a"}))
    assert not session.may_submit  # nothing open
    session.open(_exam("a"))
    assert not session.may_submit  # opened, nothing decoded
    session.views_loaded("a", {})  # loading ended with no image (the case's files were not found)
    assert not session.may_submit
    session.open(_exam("a"))
    session.views_loaded("a", {view: object() for view in PUBLISHED_VIEW_ORDER[:3]})
    assert not session.may_submit  # one view missing
    _on_screen(session, "a")
    assert session.may_submit
    assert Change.SUBMITTABLE in changes
    session.set_task(_task("b"), frozenset({"b"}))  # moved on: the exam on screen is not the case
    assert not session.may_submit
