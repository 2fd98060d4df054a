"""Reader studies on SQLite and PostgreSQL: case lists, orders, protocols, immutability, resume,
reading time and blinding between readers."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import func, select

from app.cli import main
from app.reading.readings import Estimate
from app.store.models import Exclusion, Phase, Protocol, Reader, Reading
from app.store.results import save_exam_result
from app.study.cases import CaseListError, CaseSpec, read_case_list
from app.study.design import balanced_order, williams_rows
from app.study.oversight import overview
from app.study.service import (
    AlreadySubmittedError,
    ContradictionError,
    InvalidReadingError,
    NotEnrolledError,
    ProtocolError,
    StaleCaseError,
    StudyError,
    StudyService,
    WashoutError,
)
from gmic_core.imaging.views import Laterality
from tests.app.factories import IDENTITY, fake_exam_result

L, R = Laterality.LEFT, Laterality.RIGHT
CASES = [CaseSpec(f"exam-{index}", {L: index % 3 == 0, R: False}) for index in range(6)]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _with_model_results(store, cases=CASES):
    with store.session() as session:
        for index, case in enumerate(cases):
            save_exam_result(
                session, fake_exam_result(case.case_key, seed=index, malignant={L: 0.1 * index, R: 0.05})
            )


def _estimate(probability=30.0, recall=None, birads=None):
    """Answers that agree with each other unless given otherwise."""
    high = probability >= 50
    birads = (4 if high else 2) if birads is None else birads
    return {
        L: Estimate(probability / 100, birads, high if recall is None else recall),
        R: Estimate(0.1, 1, False),
    }


def _blinded_session(service, study, reader="ann", **options):
    """A blinded study over CASES with ``reader`` enrolled, and their session."""
    service.create_study(study, CASES, Protocol.BLINDED, seed=1, **options)
    service.enrol(study, reader)
    return service.open_session(study, reader)


def _shown(session):
    """The case to read, with every view on screen (its reading clock started)."""
    task = session.current()
    session.views_shown(task)
    return task


def test_case_lists_from_csv_and_from_a_synthetic_manifest(tmp_path):
    listing = tmp_path / "cases.csv"
    listing.write_text("exam_id,left_malignant,right_malignant,path\na,1,0,exams/a\nb,,0,\n")
    cases = read_case_list(listing)
    assert [case.case_key for case in cases] == ["a", "b"]
    assert cases[0].truth == {L: True, R: False}
    assert cases[0].source == str(tmp_path / "exams" / "a")
    assert cases[1].breasts == (R,)
    manifest = tmp_path / "synth" / "manifest.csv"
    manifest.parent.mkdir()
    manifest.write_text(
        "exam_id,view,file,split,benign,malignant\n"
        "e1,L-CC,exam_0000/L-CC.dcm,test,0,1\ne1,L-MLO,exam_0000/L-MLO.dcm,test,0,1\n"
        "e1,R-CC,exam_0000/R-CC.dcm,test,1,0\n"
    )
    (case,) = read_case_list(manifest.parent)
    assert case.truth == {L: True, R: False}
    assert case.source == str(manifest.parent / "exam_0000")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("exam_id,left_malignant,right_malignant\na,2,0\n", "0, 1 or empty"),
        ("exam_id,left_malignant,right_malignant\na,1,0\na,0,0\n", "listed twice"),
        ("exam_id,left_malignant,right_malignant\na,,\n", "no breast"),
        ("exam_id,left_malignant,right_malignant\n", "no cases"),
        ("case,label\nx,1\n", "expected the columns"),
    ],
)
def test_bad_case_lists_say_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "cases.csv"
    path.write_text(content)
    with pytest.raises(CaseListError, match=message):
        read_case_list(path)


@pytest.mark.parametrize("cases", [1, 2, 3, 4, 7, 10])
@pytest.mark.parametrize("readers", [2, 5, 9, 21])
def test_reading_orders_are_balanced_seeded_and_differ_between_readers(cases, readers):
    orders = [balanced_order(7, position, cases) for position in range(readers)]
    assert all(sorted(order) == list(range(cases)) for order in orders)
    at = np.zeros((cases, cases), dtype=int)  # [case, position]: how many readers read it there
    for order in orders:
        at[order, np.arange(cases)] += 1
    assert at.max() - at.min() <= 1
    assert orders == [balanced_order(7, position, cases) for position in range(readers)]
    if cases > 1:
        assert orders[0] != orders[1]
    if cases > 3:
        assert orders != [balanced_order(8, position, cases) for position in range(readers)]


@pytest.mark.parametrize("cases", [2, 3, 4, 7, 10])
@pytest.mark.parametrize("readers", [2, 5, 9, 21])
def test_a_crossover_second_session_has_its_own_balanced_order(cases, readers):
    first = [balanced_order(7, position, cases) for position in range(readers)]
    second = [balanced_order(7, position, cases, second_session=True) for position in range(readers)]
    assert all(sorted(order) == list(range(cases)) for order in second)
    assert all(one != other for one, other in zip(first, second, strict=True))
    at = np.zeros((cases, cases), dtype=int)  # [case, position] in the second sessions
    for order in second:
        at[order, np.arange(cases)] += 1
    assert at.max() - at.min() <= 1


def test_williams_rows_follow_each_case_by_each_other_once():
    rows = williams_rows(6)
    pairs = [(row[k], row[k + 1]) for row in rows for k in range(5)]
    assert len(pairs) == len(set(pairs)) == 6 * 5


def test_a_blinded_study_hides_the_model_and_keeps_truth_apart(store):
    service = StudyService(store)
    service.create_study("pilot", CASES, Protocol.BLINDED, seed=3)
    service.enrol("pilot", "reader-1")
    assert service.study_names() == ["pilot"]
    session = service.open_session("pilot", "reader-1")
    task = session.current()
    assert task.ai is None
    assert task.phase is Phase.UNAIDED
    assert not task.may_go_back
    assert task.breasts == (L, R)
    assert task.total == 6
    assert not any("truth" in field.name or "malignant" in field.name for field in dataclasses.fields(task))
    order = [CASES.index(next(c for c in CASES if c.case_key == task.case_key))]
    session.submit(session.current(), _estimate(), model_shown=True)
    while (task := session.current()) is not None:
        order.append(int(task.case_key.split("-")[1]))
        session.submit(session.current(), _estimate(), model_shown=True)
    assert order == balanced_order(3, 0, 6)
    assert session.progress().done == 6
    with pytest.raises(ProtocolError):
        session.go_back()
    with pytest.raises(AlreadySubmittedError):
        session.submit(session.current(), _estimate(), model_shown=True)


def test_the_ai_protocols_need_a_model_result_for_every_case(store):
    service = StudyService(store)
    with pytest.raises(StudyError, match="give the model's key"):
        service.create_study("s", CASES, Protocol.SEQUENTIAL, seed=1)
    with pytest.raises(StudyError, match="no stored result"):
        service.create_study("s", CASES, Protocol.SEQUENTIAL, seed=1, model_key=IDENTITY.key)
    _with_model_results(store)
    service.create_study("s", CASES, Protocol.SEQUENTIAL, seed=1, model_key=IDENTITY.key)
    with pytest.raises(StudyError, match="exists already"):
        service.create_study("s", CASES, Protocol.BLINDED, seed=1)


def test_a_sequential_read_logs_a_blinded_then_an_aided_reading(store):
    _with_model_results(store)
    clock = Clock()
    service = StudyService(store, clock)
    service.create_study(
        "seq", CASES, Protocol.SEQUENTIAL, seed=5, model_key=IDENTITY.key, hybrid_weight=0.25
    )
    service.enrol("seq", "reader-1")
    session = service.open_session("seq", "reader-1")
    first = session.current()
    assert first.phase is Phase.UNAIDED
    assert first.ai is None
    assert first.earlier == {}
    clock.advance(2.5)  # loading the images is not reading time
    session.views_shown(first)
    clock.advance(42)
    (left, _right) = session.submit(first, _estimate(probability=80.0), model_shown=True)
    assert left.duration_s == 42.0
    assert not left.ai_shown
    assert left.hybrid is None
    second = session.current()
    assert second.case_key == first.case_key
    assert second.phase is Phase.AIDED
    index = int(first.case_key.split("-")[1])
    assert second.ai.scores == {L: pytest.approx(0.1 * index), R: pytest.approx(0.05)}
    assert second.earlier == {L: Estimate(0.8, 4, True), R: Estimate(0.1, 1, False)}  # shown beside the model
    session.views_shown(second)
    clock.advance(7.5)
    aided_left, _ = session.submit(second, _estimate(probability=60.0), model_shown=True)
    assert aided_left.ai_shown
    assert aided_left.phase is Phase.AIDED
    assert aided_left.duration_s == 7.5
    assert aided_left.model_score == pytest.approx(0.1 * index)
    assert aided_left.hybrid == pytest.approx(0.25 * 0.6 + 0.75 * 0.1 * index)
    assert session.progress().done == 1
    assert session.current().phase is Phase.UNAIDED
    with pytest.raises(ProtocolError, match="does not allow going back"):
        session.go_back()


def test_an_ai_assisted_read_may_go_back_and_supersede(store):
    _with_model_results(store)
    clock = Clock()
    service = StudyService(store, clock)
    service.create_study("assist", CASES, Protocol.AI_ASSISTED, seed=2, model_key=IDENTITY.key)
    service.enrol("assist", "reader-1")
    session = service.open_session("assist", "reader-1")
    with pytest.raises(ProtocolError, match="first case"):
        session.go_back()
    first = _shown(session)
    assert first.ai is not None
    assert first.may_go_back
    clock.advance(30)
    (original, _) = session.submit(session.current(), _estimate(probability=20.0), model_shown=True)
    revisit = session.go_back()
    assert revisit.case_key == first.case_key
    assert revisit.revisiting
    session.views_shown(revisit)
    clock.advance(5)
    (replacement, _) = session.submit(session.current(), _estimate(probability=70.0), model_shown=True)
    assert replacement.revision == 1
    assert replacement.duration_s == 5.0  # timed from going back, not from the first reading
    assert session.current().position == 1
    mine = session.my_readings()
    assert [(r.laterality, r.probability, r.revision) for r in mine] == [(L, 70.0, 1), (R, 10.0, 1)]
    with store.session() as db:
        first_reading = db.get(Reading, original.id)
        assert first_reading.probability == 20.0  # never edited
        assert db.scalar(select(Reading.supersedes_id).where(Reading.id == replacement.id)) == original.id


def test_sessions_resume_where_the_reader_was(store):
    clock = Clock()
    service = StudyService(store, clock)
    service.create_study("resume", CASES, Protocol.BLINDED, seed=9)
    service.enrol("resume", "reader-1")
    session = service.open_session("resume", "reader-1")
    for _ in range(2):
        session.current()
        session.submit(session.current(), _estimate(), model_shown=True)
    pending = _shown(session)
    clock.advance(3600)  # the application is closed for an hour with a case open
    reopened = StudyService(store, clock).open_session("resume", "Reader-1 ")  # the same reader
    assert reopened.progress().done == 2
    task = _shown(reopened)
    assert task.case_key == pending.case_key
    assert task.position == 2
    clock.advance(12)
    (reading, _) = reopened.submit(reopened.current(), _estimate(), model_shown=True)
    assert reading.duration_s == 12.0  # the clock restarts when the case is shown again


def test_readers_never_see_each_others_readings(store):
    service = StudyService(store)
    service.create_study("two", CASES, Protocol.BLINDED, seed=4)
    service.enrol("two", "reader-1")
    service.enrol("two", "reader-2")
    first = service.open_session("two", "reader-1")
    first.current()
    first.submit(first.current(), _estimate(probability=99.0), model_shown=True)
    second = service.open_session("two", "reader-2")
    assert second.my_readings() == []
    assert second.progress().done == 0
    assert second.current().position == 0
    second.submit(second.current(), _estimate(probability=1.0), model_shown=True)
    assert [r.probability for r in first.my_readings() if r.laterality is L] == [99.0]
    assert [r.probability for r in second.my_readings() if r.laterality is L] == [1.0]


def test_bad_readings_are_refused_and_nothing_is_stored(store):
    service = StudyService(store)
    service.create_study("bad", CASES, Protocol.BLINDED, seed=4)
    service.enrol("bad", "reader-1")
    session = service.open_session("bad", "reader-1")
    session.current()
    with pytest.raises(InvalidReadingError, match="0-100 %"):
        session.submit(session.current(), _estimate(probability=120.0), model_shown=True)
    with pytest.raises(InvalidReadingError, match="BI-RADS"):
        session.submit(session.current(), _estimate(birads=7), model_shown=True)
    with pytest.raises(InvalidReadingError, match="breast"):
        session.submit(session.current(), {L: Estimate(0.1)}, model_shown=True)
    with pytest.raises(StudyError, match="no study"):
        service.open_session("missing", "reader-1")
    assert session.my_readings() == []


def test_a_retried_submission_is_stored_once(store):
    service = StudyService(store)
    service.create_study("retry", CASES, Protocol.BLINDED, seed=4)
    service.enrol("retry", "reader-1")
    session = service.open_session("retry", "reader-1")
    session.current()
    first = session.submit(session.current(), _estimate(), model_shown=True, submission_key="key-1")
    again = session.submit(session.current(), _estimate(), model_shown=True, submission_key="key-1")
    assert [r.id for r in again] == [r.id for r in first]
    assert session.progress().done == 1


def test_a_stale_window_cannot_file_its_reading_on_another_case(store):
    service = StudyService(store)
    _with_model_results(store)
    service.create_study("two", CASES, Protocol.SEQUENTIAL, seed=5, model_key=IDENTITY.key)
    service.enrol("two", "ann")
    first, second = service.open_session("two", "ann"), service.open_session("two", "ann")
    seen_by_both = first.current()
    assert second.current() == seen_by_both
    first.submit(seen_by_both, _estimate(), model_shown=True)
    with pytest.raises(StaleCaseError, match=f"case {seen_by_both.case_key} \\(unaided\\) was already read"):
        second.submit(seen_by_both, _estimate(probability=77.0), model_shown=True)
    assert [reading.probability for reading in second.my_readings()] == [30.0, 10.0]


def test_ai_shown_records_what_was_on_screen(store):
    service = StudyService(store)
    _with_model_results(store)
    service.create_study("aided", CASES, Protocol.AI_ASSISTED, seed=5, model_key=IDENTITY.key)
    service.enrol("aided", "ann")
    session = service.open_session("aided", "ann")
    left, _ = session.submit(session.current(), _estimate(), model_shown=False)
    assert (left.ai_shown, left.model_score, left.hybrid) == (False, None, None)


def test_blinded_and_sequential_cases_stay_hidden_until_read_unaided(store):
    service = StudyService(store)
    _with_model_results(store)
    service.create_study("seq", CASES, Protocol.SEQUENTIAL, seed=5, model_key=IDENTITY.key)
    assert service.exams_to_read_unaided("ann") == frozenset()  # not a reader of the study yet
    service.enrol("seq", "ann")
    assert service.exams_to_read_unaided("ann") == {case.case_key for case in CASES}  # from enrolment
    session = service.open_session("seq", "ann")
    task = session.current()
    assert service.exams_to_read_unaided("ann") == {case.case_key for case in CASES}
    session.submit(task, _estimate(), model_shown=False)
    assert service.exams_to_read_unaided("ann") == {case.case_key for case in CASES} - {task.case_key}
    assert service.exams_to_read_unaided("bob") == frozenset()


def test_case_paths_are_stored_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cases.csv").write_text("exam_id,left_malignant,right_malignant,path\na,1,0,exams/a\n")
    (case,) = read_case_list("cases.csv")
    assert case.source == str(tmp_path / "exams" / "a")


def test_only_enrolled_readers_read_and_a_typo_is_not_a_new_reader(store):
    service = StudyService(store)
    service.create_study("roster", CASES, Protocol.BLINDED, seed=1)
    service.enrol("roster", "Edge-1")
    assert service.open_session("roster", " edge-1 ").reader == "Edge-1"
    with pytest.raises(NotEnrolledError, match=r"not enrolled.*gmic study readers"):
        service.open_session("roster", "Edge-l")
    with pytest.raises(StudyError, match="enrolled in study 'roster' already"):
        service.enrol("roster", "EDGE-1")
    with pytest.raises(InvalidReadingError, match="not a usable reader id"):
        service.enrol("roster", "ann;drop")
    with store.session() as db:
        assert db.scalar(select(func.count()).select_from(Reader)) == 1


def test_an_excluded_reader_keeps_their_readings_but_reads_no_more(store):
    service = StudyService(store)
    session = _blinded_session(service, "ex", "rad-a")
    session.submit(session.current(), _estimate(), model_shown=False)
    with pytest.raises(StudyError, match="reason"):
        service.exclude_reader("ex", "rad-a", "  ")
    service.exclude_reader("ex", "RAD-A", "enrolled by mistake")
    with pytest.raises(NotEnrolledError, match=r"excluded.*enrolled by mistake"):
        service.open_session("ex", "rad-a")
    with pytest.raises(NotEnrolledError):
        service.exclude_reader("ex", "rad-b", "never enrolled")
    with store.session() as db:
        assert db.scalar(select(func.count()).select_from(Reading)) == 2
        (exclusion,) = db.scalars(select(Exclusion))
        assert (exclusion.reason, exclusion.reading_id) == ("enrolled by mistake", None)


def test_a_crossover_reader_waits_out_the_washout_and_half_read_aided_first(store):
    _with_model_results(store)
    clock = Clock()
    service = StudyService(store, clock)
    with pytest.raises(StudyError, match="washout"):
        service.create_study("x", CASES, Protocol.CROSSOVER, seed=1, model_key=IDENTITY.key)
    service.create_study("x", CASES, Protocol.CROSSOVER, seed=1, model_key=IDENTITY.key, washout_days=28)
    service.enrol("x", "ann")
    service.enrol("x", "bob")
    ann, bob = service.open_session("x", "ann"), service.open_session("x", "bob")
    assert bob.current().phase is Phase.AIDED  # every second reader reads aided first
    assert bob.current().ai is not None
    for _ in CASES:
        task = ann.current()
        assert (task.phase, task.ai) == (Phase.UNAIDED, None)
        clock.advance(60)
        ann.submit(task, _estimate(), model_shown=False)
    with pytest.raises(WashoutError, match="opens after the washout, on 2026-03-29") as waiting:
        ann.current()
    clock.now = waiting.value.opens_at - timedelta(seconds=1)
    with pytest.raises(WashoutError):
        ann.current()
    clock.advance(1)
    second = ann.current()
    assert (second.phase, second.earlier) == (Phase.AIDED, {})  # nothing of the first session
    assert second.ai is not None
    assert ann.progress().done == 0


def test_a_crossover_reader_reads_the_second_session_in_the_order_the_coordinator_sees(store, capsys):
    _with_model_results(store)
    clock = Clock()
    service = StudyService(store, clock)
    service.create_study("x", CASES, Protocol.CROSSOVER, seed=5, model_key=IDENTITY.key, washout_days=1)
    for reader in ("ann", "bob"):
        service.enrol("x", reader)
    shown = {reader.reader: reader for reader in overview(store, "x").readers}
    assert main(["study", "show", "x", "--db", store.engine.url.render_as_string(hide_password=False)]) == 0
    assert f"  second session: {' '.join(shown['bob'].second_order)}" in capsys.readouterr().out
    for name in ("ann", "bob"):
        assert shown[name].second_order != shown[name].order
        assert sorted(shown[name].second_order) == sorted(shown[name].order)
        session = service.open_session("x", name)
        for phase, order in zip(session.phases, (shown[name].order, shown[name].second_order), strict=True):
            read = []
            for place in range(len(CASES)):
                task = session.current()
                assert (task.phase, task.position) == (phase, place)
                read.append(task.case_key)
                clock.advance(60)
                session.submit(task, _estimate(), model_shown=task.ai is not None)
            assert tuple(read) == order
            clock.advance(86400)
        assert session.current() is None


def test_reading_time_excludes_loading_and_pauses(store):
    clock = Clock()
    service = StudyService(store, clock)
    session = _blinded_session(service, "time")
    task = session.current()
    clock.advance(2.5)  # the images load
    session.views_shown(task)
    clock.advance(10)
    session.pause()
    clock.advance(300)
    session.resume()
    clock.advance(5)
    session.pause()
    clock.advance(20)  # submitted while paused: the pause ends at the submission
    (left, _) = session.submit(task, _estimate(), model_shown=False)
    assert (left.duration_s, left.paused_s) == (15.0, 320.0)
    task = _shown(session)
    clock.advance(4)
    (left, _) = session.submit(task, _estimate(), model_shown=False)
    assert (left.duration_s, left.paused_s) == (4.0, 0.0)


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (Estimate(0.3), "give your BI-RADS and recall"),
        (Estimate(0.3, 2), "give your recall"),
        (Estimate(None, 2, False), "give your probability"),
    ],
)
def test_the_form_requires_every_answer(store, answers, message):
    service = StudyService(store)
    session = _blinded_session(service, "form")
    with pytest.raises(InvalidReadingError, match=message):
        session.submit(session.current(), {L: answers, R: Estimate(0.1, 1, False)}, model_shown=False)
    assert session.my_readings() == []


def test_a_study_may_ask_for_the_probability_only(store):
    service = StudyService(store)
    session = _blinded_session(service, "loose", require_assessment=False)
    (left, _) = session.submit(session.current(), {L: Estimate(0.3), R: Estimate(0.1)}, model_shown=False)
    assert (left.birads, left.recall) == (None, None)  # not given: unknown, never "no"


@pytest.mark.parametrize(
    ("answers", "contradictions"),
    [
        (Estimate(0.95, 1, False), ["95 % with BI-RADS 1", "95 % without recall"]),
        (Estimate(0.5, 2, True), ["50 % with BI-RADS 2"]),
        (Estimate(0.1, 0, False), ["BI-RADS 0 without recall"]),
        (Estimate(0.4, 4, False), ["BI-RADS 4 without recall"]),
    ],
)
def test_contradictions_need_the_readers_confirmation_which_is_recorded(store, answers, contradictions):
    service = StudyService(store)
    session = _blinded_session(service, "contra")
    estimates = {L: answers, R: Estimate(0.1, 1, False)}
    with pytest.raises(ContradictionError) as refused:
        session.submit(session.current(), estimates, model_shown=False)
    assert [any(text in found for found in refused.value.contradictions) for text in contradictions] == [
        True
    ] * len(contradictions)
    assert session.my_readings() == []
    (left, right) = session.submit(session.current(), estimates, model_shown=False, confirmed=True)
    assert all(text in left.confirmed for text in contradictions)
    assert right.confirmed == left.confirmed  # one confirmation for the submission, on each breast's row


@pytest.mark.parametrize(
    "values",
    [{"probability": True}, {"probability": 0.3, "birads": True}, {"probability": 0.3, "recall": 1}],
)
def test_values_of_the_wrong_type_are_refused(values):
    with pytest.raises(InvalidReadingError, match=r"got (True|1)"):
        Estimate(**values)
