"""VinDr-Mammo as PhysioNet distributes it: ``images/<study_id>/<image_id>.dicom``, with
``breast-level_annotations.csv`` and ``finding_annotations.csv`` beside ``images/`` (or anywhere under
the root).

* **Exam**: a study (the ``<study_id>`` folder). Laterality and view come from the header where it
  says them, else from ``breast-level_annotations.csv`` (hints, source "VinDr-Mammo
  breast-level_annotations.csv"); without the table, an image whose header names no view is an
  extra image, not fed to the model.
* **Split**: the table's ``training`` is ``train``, ``test`` is ``test``.
* **Labels** (the rule of this project; VinDr-Mammo has no biopsy results): a breast is malignant
  when its ``breast_birads`` is BI-RADS 4 or 5, benign when it is BI-RADS 2 or 3, normal at BI-RADS 1.
* **Masks**: each finding's box (pixels of the DICOM file's own grid) becomes a box mask: malignant
  for a ``finding_birads`` of 4 or 5, benign for 2 or 3; findings without a box or a BI-RADS (No
  Finding) draw nothing. ``finding_categories`` (``['Mass']``, ...) name the manifest's lesions.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from gmic_core.errors import ExamError
from gmic_core.imaging.image import Hints
from gmic_core.imaging.layouts.common import (
    TEST,
    TRAIN,
    Box,
    Finding,
    LayoutDataset,
    files_under,
    find_label_file,
    layout_exam,
    read_headers,
    read_table,
)
from gmic_core.imaging.views import Laterality, View, ViewCode, ViewPosition

KIND = "vindr-mammo"
BREAST_TABLE = "breast-level_annotations.csv"
FINDING_TABLE = "finding_annotations.csv"
HINT_SOURCE = f"VinDr-Mammo {BREAST_TABLE}"
BREAST_COLUMNS = ("study_id", "image_id", "laterality", "view_position", "breast_birads", "split")
FINDING_COLUMNS = (
    "study_id",
    "image_id",
    "laterality",
    "view_position",
    "finding_categories",
    "finding_birads",
    "xmin",
    "ymin",
    "xmax",
    "ymax",
)
SPLITS = {"training": TRAIN, "test": TEST}
MALIGNANT_BIRADS = frozenset({"4", "5"})
BENIGN_BIRADS = frozenset({"2", "3"})
NORMAL_BIRADS = frozenset({"1"})
SUFFIXES = (".dicom", ".dcm")


def read(root: Path) -> LayoutDataset:
    """The VinDr-Mammo tree under ``root``, labelled where ``breast-level_annotations.csv`` is there."""
    images_folder = root / "images" if (root / "images").is_dir() else root
    breast_tables = find_label_file(root, BREAST_TABLE)
    rows = {
        row["image_id"]: (table, row) for table in breast_tables for row in read_table(table, BREAST_COLUMNS)
    }
    left_out: list[tuple[Path, str]] = []
    studies: dict[str, list] = defaultdict(list)
    for file in files_under(images_folder, SUFFIXES):
        listed = rows.get(file.stem)
        hints = None if listed is None else Hints(*_side_and_view(*listed), HINT_SOURCE)
        studies[file.parent.name].append((file, hints))
    breast_labels: dict[str, dict[Laterality, tuple[int, int]]] = defaultdict(dict)
    splits: dict[str, str] = {}
    for table, row in rows.values():
        side, _ = _side_and_view(table, row)
        breast_labels[row["study_id"]][side] = _labels(table, row["breast_birads"])
        splits[row["study_id"]] = SPLITS.get(row["split"].lower(), TEST)
    findings: dict[str, list[Finding]] = defaultdict(list)
    for table in find_label_file(root, FINDING_TABLE):
        for row in read_table(table, FINDING_COLUMNS):
            finding = _finding(table, row)
            if finding is not None:
                findings[row["study_id"]].append(finding)
    exams = []
    for study, files in sorted(studies.items()):
        refs = read_headers(files, left_out)
        if refs:
            exams.append(
                layout_exam(study, refs, root, splits.get(study, TEST), breast_labels[study], findings[study])
            )
    left_out.sort(key=lambda item: item[0])
    return LayoutDataset(KIND, root, exams, tuple(breast_tables), left_out)


def _side_and_view(table: Path, row: dict[str, str]) -> tuple[Laterality, ViewCode]:
    side, view = row["laterality"].upper(), row["view_position"].upper()
    if side not in ("L", "R") or view not in ("CC", "MLO"):
        raise ExamError(
            f"{table}: image {row['image_id']}: laterality {side!r}, view {view!r}; expected L or R and "
            "CC or MLO"
        )
    return Laterality(side), ViewCode(view)


def _birads(table: Path, text: str) -> str:
    """``BI-RADS 4`` -> ``4``; empty text stays empty."""
    match = re.fullmatch(r"(?:BI-?RADS)?\s*([0-6])", text.strip(), re.IGNORECASE)
    if text.strip() and match is None:
        raise ExamError(f"{table}: BI-RADS category {text!r} is not BI-RADS 0-6")
    return match[1] if match else ""


def _labels(table: Path, text: str) -> tuple[int, int]:
    category = _birads(table, text)
    if category not in MALIGNANT_BIRADS | BENIGN_BIRADS | NORMAL_BIRADS:
        raise ExamError(f"{table}: breast BI-RADS {text!r}: a screening label needs BI-RADS 1-5")
    return int(category in BENIGN_BIRADS), int(category in MALIGNANT_BIRADS)


def _finding(table: Path, row: dict[str, str]) -> Finding | None:
    category = _birads(table, row["finding_birads"])
    coordinates = [row[key] for key in ("xmin", "ymin", "xmax", "ymax")]
    if category not in MALIGNANT_BIRADS | BENIGN_BIRADS or not all(coordinates):
        return None
    try:
        xmin, ymin, xmax, ymax = map(float, coordinates)
    except ValueError as error:
        raise ExamError(f"{table}: image {row['image_id']}: a box coordinate is not a number") from error
    side, view = _side_and_view(table, row)
    kinds = [kind.strip(" '\"").lower() for kind in row["finding_categories"].strip("[]").split(",")]
    kind = "+".join(kind for kind in kinds if kind and kind != "no finding") or "finding"
    return Finding(
        View.of(side, ViewPosition(view.value)),
        category in MALIGNANT_BIRADS,
        kind,
        Box(ymin, xmin, ymax, xmax),
    )
