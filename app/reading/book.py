"""The reader's estimates and the results the model produced, as the workstation holds them in memory.

:class:`MemoryResultCache` keeps results by exam and model identity, so that reopening an exam does not
recompute unless the model changed. :class:`ReadingBook` keeps, per exam and breast, the reader's
probability of malignancy, BI-RADS category and recall decision the moment they are given (Enter,
leaving the field, moving on), and hands each new estimate with a probability to its ``record``
callback. Both are only ever touched on the GUI thread; the workstation reads and writes the store
behind them on worker threads (``app.gui.persistence``), so nothing here waits for the database.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from app.reading.readings import Estimate, ModelShown
from gmic_core.imaging import Laterality
from gmic_core.inference import ExamResult

Recorder = Callable[[str, Laterality, Estimate, ModelShown | None], None]


class MemoryResultCache:
    """Results of this session, keyed by exam and model identity."""

    def __init__(self) -> None:
        self._results: dict[tuple[str, str], ExamResult] = {}

    def get(self, exam_id: str, model_key: str) -> ExamResult | None:
        return self._results.get((exam_id, model_key))

    def put(self, result: ExamResult) -> None:
        self._results[(result.exam_id, result.model.key)] = result


class ReadingBook:
    """The reader's estimates of this session. ``record`` (if given) is called with each estimate given
    that has a probability and differs from the one before: the store's readings need a probability, so
    a BI-RADS or recall given before it is recorded with the probability."""

    def __init__(self, record: Recorder | None = None) -> None:
        self._readings: dict[tuple[str, Laterality], Estimate] = {}
        self._record = record

    def get(self, exam_id: str, side: Laterality) -> Estimate:
        return self._readings.get((exam_id, side), Estimate())

    def set(
        self, exam_id: str, side: Laterality, reading: Estimate, model: ModelShown | None = None
    ) -> Estimate:
        """Keep ``reading``; ``model`` is what the reader saw of the model next to it, if anything."""
        if reading == self.get(exam_id, side):
            return reading
        self._readings[(exam_id, side)] = reading
        if reading.probability is not None and self._record is not None:
            self._record(exam_id, side, reading, model)
        return reading

    def fill(self, exam_id: str, stored: Mapping[Laterality, Estimate]) -> list[Laterality]:
        """Take the estimates stored in an earlier session for the breasts given none in this one (one
        given since is newer); returns the breasts filled."""
        filled = [side for side in stored if (exam_id, side) not in self._readings]
        for side in filled:
            self._readings[(exam_id, side)] = stored[side]
        return filled

    def set_probability(self, exam_id: str, side: Laterality, probability: float | None) -> Estimate:
        return self.set(exam_id, side, replace(self.get(exam_id, side), probability=probability))

    def set_birads(self, exam_id: str, side: Laterality, birads: int | None) -> Estimate:
        return self.set(exam_id, side, replace(self.get(exam_id, side), birads=birads))

    def is_read(self, exam_id: str, sides: tuple[Laterality, ...]) -> bool:
        """Whether the reader has given a probability for every one of ``sides``."""
        return bool(sides) and all(self.get(exam_id, side).probability is not None for side in sides)
