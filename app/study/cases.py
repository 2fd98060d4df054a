"""Case lists for reader studies: which exams are read, and their ground truth (kept apart from what
readers see once the study is created).

Two formats, found from the file's columns:

* a **case list** CSV, one row per exam::

      exam_id,left_malignant,right_malignant[,path]

  with 0/1 (empty for a breast that is not read, for example after a mastectomy) and an optional
  exam folder or ``exam.json`` (relative to the case list);
* the **manifest** that ``gmic synth`` writes (one row per image, ``exam_id,view,file,...,malignant``),
  whose per-breast labels give the ground truth.

A folder stands for the ``manifest.csv`` in it. Exam locations come back absolute, so that a study
created from one folder finds its exams from any other.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gmic_core.errors import ExamError, GMICError
from gmic_core.imaging.views import Laterality
from gmic_core.synthetic import MANIFEST_NAME

CASE_LIST_COLUMNS = ("exam_id", "left_malignant", "right_malignant")


class CaseListError(GMICError):
    """A case list that cannot be read or contradicts itself."""


@dataclass(frozen=True)
class CaseSpec:
    """One exam of a study: its key, where it lies, and per breast read whether it is malignant."""

    case_key: str
    truth: Mapping[Laterality, bool]
    source: str | None = None

    @property
    def breasts(self) -> tuple[Laterality, ...]:
        return tuple(side for side in (Laterality.LEFT, Laterality.RIGHT) if side in self.truth)


def read_case_list(path: str | Path) -> list[CaseSpec]:
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            header = next(csv.reader(stream), [])
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise CaseListError(f"{path}: cannot read the case list ({error})") from error
    if all(column in header for column in CASE_LIST_COLUMNS):
        cases = _read_case_rows(path)
    elif "view" in header and "malignant" in header:
        cases = _read_manifest(path)
    else:
        raise CaseListError(
            f"{path}: expected the columns {', '.join(CASE_LIST_COLUMNS)} (a case list) or a gmic synth manifest"
        )
    if not cases:
        raise CaseListError(f"{path}: the case list has no cases")
    return cases


def _read_case_rows(path: Path) -> list[CaseSpec]:
    cases: dict[str, CaseSpec] = {}
    with path.open(newline="", encoding="utf-8") as stream:
        for number, row in enumerate(csv.DictReader(stream), start=2):
            key = (row["exam_id"] or "").strip()
            if not key:
                raise CaseListError(f"{path}, line {number}: the exam_id is empty")
            if key in cases:
                raise CaseListError(f"{path}, line {number}: exam {key} is listed twice")
            truth = {}
            for side, column in ((Laterality.LEFT, "left_malignant"), (Laterality.RIGHT, "right_malignant")):
                value = (row[column] or "").strip()
                if value not in ("", "0", "1"):
                    raise CaseListError(f"{path}, line {number}: {column} is 0, 1 or empty, got {value!r}")
                if value:
                    truth[side] = value == "1"
            if not truth:
                raise CaseListError(f"{path}, line {number}: exam {key} has no breast to read")
            source = (row.get("path") or "").strip() or None
            if source:
                source = str((path.parent / source).resolve())
            cases[key] = CaseSpec(key, truth, source)
    return list(cases.values())


def _read_manifest(path: Path) -> list[CaseSpec]:
    from gmic_core.training.data import read_manifest

    try:
        exams = read_manifest(path)
    except ExamError as error:
        raise CaseListError(str(error)) from error
    cases = []
    for exam in exams:
        truth = {}
        for side in (Laterality.LEFT, Laterality.RIGHT):
            labels = exam.breast_labels(side)
            if labels is not None:
                truth[side] = bool(labels[1])
        source = next(iter(exam.images.values())).path.parent.resolve()
        cases.append(CaseSpec(exam.exam_id, truth, str(source)))
    return cases
