"""The reader's estimates and the results the model produced.

Both sit behind small interfaces: :class:`ResultCache` (results keyed by exam and model identity, so
reopening an exam does not recompute unless the model changed) and :class:`ReadingBook` (per exam and
breast, the reader's probability of malignancy, BI-RADS category and recall decision, kept the moment
they are given: Enter, leaving the field, moving on). The in-memory versions serve a session without a database; :class:`StoreResultCache`
and :class:`StoreReadingBook` keep them in ``app.store`` so that they survive a restart. A database
error never loses what is in hand: the in-memory layer keeps it and ``on_error`` reports the problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from app.reading.readings import Estimate, ModelShown, load_readings, save_reading
from app.store import Store, StoreError
from app.store.results import load_exam_result, save_exam_result
from gmic_core.errors import GMICError
from gmic_core.imaging import Laterality
from gmic_core.inference import ExamResult

ErrorReporter = Callable[[str], None]


class ResultCache(Protocol):
    def get(self, exam_id: str, model_key: str) -> ExamResult | None: ...

    def put(self, result: ExamResult) -> None: ...


class MemoryResultCache:
    """:class:`ResultCache` in memory, for one session."""

    def __init__(self) -> None:
        self._results: dict[tuple[str, str], ExamResult] = {}

    def get(self, exam_id: str, model_key: str) -> ExamResult | None:
        return self._results.get((exam_id, model_key))

    def put(self, result: ExamResult) -> None:
        self._results[(result.exam_id, result.model.key)] = result


class StoreResultCache(MemoryResultCache):
    """:class:`ResultCache` in the store (``app.store.results``), in front of it the results of this
    session. A result the store cannot take stays in memory and ``on_error`` says why."""

    def __init__(self, store: Store, on_error: ErrorReporter) -> None:
        super().__init__()
        self.store = store
        self._on_error = on_error

    def get(self, exam_id: str, model_key: str) -> ExamResult | None:
        result = super().get(exam_id, model_key)
        if result is None:
            try:
                with self.store.session() as session:
                    result = load_exam_result(session, exam_id, model_key)
            except SQLAlchemyError as error:
                self._on_error(f"Stored results could not be read: {error}")
                return None
            if result is not None:
                super().put(result)
        return result

    def put(self, result: ExamResult) -> None:
        super().put(result)
        try:
            with self.store.session() as session:
                save_exam_result(session, result)
        except SQLAlchemyError as error:
            self._on_error(
                f"The result could not be stored (it is kept until the application closes): {error}"
            )


class ReadingBook:
    """The reader's estimates in memory, for one session."""

    def __init__(self) -> None:
        self._readings: dict[tuple[str, Laterality], Estimate] = {}

    def get(self, exam_id: str, side: Laterality) -> Estimate:
        return self._readings.get((exam_id, side), Estimate())

    def set(
        self, exam_id: str, side: Laterality, reading: Estimate, model: ModelShown | None = None
    ) -> Estimate:
        """Keep ``reading``; ``model`` is what the reader saw of the model next to it, if anything."""
        self._readings[(exam_id, side)] = reading
        return reading

    def set_probability(self, exam_id: str, side: Laterality, probability: float | None) -> Estimate:
        return self.set(exam_id, side, replace(self.get(exam_id, side), probability=probability))

    def set_birads(self, exam_id: str, side: Laterality, birads: int | None) -> Estimate:
        return self.set(exam_id, side, replace(self.get(exam_id, side), birads=birads))

    def is_read(self, exam_id: str, sides: tuple[Laterality, ...]) -> bool:
        """Whether the reader has given a probability for every one of ``sides``."""
        return bool(sides) and all(self.get(exam_id, side).probability is not None for side in sides)


class StoreReadingBook(ReadingBook):
    """:class:`ReadingBook` in the store (:mod:`app.reading.readings`): an estimate with a probability
    is committed as a reading of ``reader`` the moment it is entered; a changed one supersedes it.
    The store's readings need a probability, so a BI-RADS or recall given before it is kept in memory
    and stored with the probability. What the store cannot take stays in memory; ``on_error`` says so."""

    def __init__(self, store: Store, reader: str, on_error: ErrorReporter) -> None:
        super().__init__()
        self.store = store
        self.reader = reader
        self._on_error = on_error
        self._loaded: set[str] = set()

    def get(self, exam_id: str, side: Laterality) -> Estimate:
        if exam_id not in self._loaded:
            self._loaded.add(exam_id)
            try:
                stored = load_readings(self.store, self.reader, exam_id)
            except StoreError as error:
                self._on_error(str(error))
                stored = {}
            for stored_side, estimate in stored.items():
                super().set(exam_id, stored_side, estimate)
        return super().get(exam_id, side)

    def set(
        self, exam_id: str, side: Laterality, reading: Estimate, model: ModelShown | None = None
    ) -> Estimate:
        if reading == self.get(exam_id, side):
            return reading
        super().set(exam_id, side, reading)
        if reading.probability is not None:
            try:
                save_reading(self.store, self.reader, exam_id, side, reading, model)
            except GMICError as error:
                self._on_error(f"Your estimate is kept on screen but was not saved: {error}")
        return reading
