"""The reader's estimates and the results the model produced, kept while the application runs.

Both sit behind small interfaces so that issue 6/7 can move them into ``app.store`` unchanged for
their users: :class:`ResultCache` (results keyed by exam and model identity, so reopening an exam
does not recompute unless the model changed) and :class:`ReadingBook` (per exam and breast, the
reader's probability of malignancy and BI-RADS category, kept the moment they are entered).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from gmic_core.imaging import Laterality
from gmic_core.inference import ExamResult
from gmic_core.metrics import hybrid

BIRADS_CATEGORIES = range(7)  # BI-RADS 0-6


class ResultCache(Protocol):
    def get(self, exam_id: str, model_key: str) -> ExamResult | None: ...

    def put(self, result: ExamResult) -> None: ...


class MemoryResultCache:
    """:class:`ResultCache` in memory, for one session (until the database of issue 6/7 holds it)."""

    def __init__(self) -> None:
        self._results: dict[tuple[str, str], ExamResult] = {}

    def get(self, exam_id: str, model_key: str) -> ExamResult | None:
        return self._results.get((exam_id, model_key))

    def put(self, result: ExamResult) -> None:
        self._results[(result.exam_id, result.model.key)] = result


@dataclass(frozen=True)
class Reading:
    """One reader's estimate for one breast: probability of malignancy in [0, 1] and BI-RADS 0-6;
    either may be unset."""

    probability: float | None = None
    birads: int | None = None

    def __post_init__(self) -> None:
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"a probability is in [0, 1], got {self.probability}")
        if self.birads is not None and self.birads not in BIRADS_CATEGORIES:
            raise ValueError(f"BI-RADS is 0-6, got {self.birads}")


class ReadingBook:
    def __init__(self) -> None:
        self._readings: dict[tuple[str, Laterality], Reading] = {}

    def get(self, exam_id: str, side: Laterality) -> Reading:
        return self._readings.get((exam_id, side), Reading())

    def set_probability(self, exam_id: str, side: Laterality, probability: float | None) -> Reading:
        return self._set(exam_id, side, replace(self.get(exam_id, side), probability=probability))

    def set_birads(self, exam_id: str, side: Laterality, birads: int | None) -> Reading:
        return self._set(exam_id, side, replace(self.get(exam_id, side), birads=birads))

    def _set(self, exam_id: str, side: Laterality, reading: Reading) -> Reading:
        self._readings[(exam_id, side)] = reading
        return reading

    def is_read(self, exam_id: str, sides: tuple[Laterality, ...]) -> bool:
        """Whether the reader has given a probability for every one of ``sides``."""
        return bool(sides) and all(self.get(exam_id, side).probability is not None for side in sides)


def hybrid_score(reading: Reading, model_malignant: float | None, weight: float) -> float | None:
    """``weight * reader + (1 - weight) * model`` (DESIGN.md, data flow 5); None until both exist."""
    if reading.probability is None or model_malignant is None:
        return None
    return float(hybrid(reading.probability, model_malignant, weight))
