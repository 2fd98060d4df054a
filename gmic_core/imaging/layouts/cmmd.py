"""CMMD (the Chinese Mammography Database, TCIA): ``CMMD/<ID1>/<study>/<series>/<n>.dcm``, with the
clinical table ``CMMD_clinicaldata_revision`` exported as CSV (anywhere under the root).

* **Exam**: a patient (``<ID1>``, such as ``D1-0001``). Laterality is in the headers (ImageLaterality).
  Where a header names no view, the reader's evidence chain decides (docs/imaging.md: text patterns,
  then the pectoral muscle in the pixels); this layout never guesses CC or MLO from the order of the
  files, and an image that no evidence places stays an extra image with that reason.
* **Split**: CMMD has none; every exam is ``test``.
* **Labels**: the table's ``classification`` per ``ID1`` and ``LeftRight``: Malignant is malignant,
  Benign benign. A breast without a row has no label (it is not known to be normal) and is not
  imported. No masks (CMMD has no lesion outlines).

The table is published as an Excel workbook (``.xlsx``); save it as CSV (in Excel or LibreOffice:
Save As, CSV UTF-8) beside the images.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from gmic_core.errors import ExamError
from gmic_core.imaging.layouts.common import (
    LayoutDataset,
    files_under,
    find_label_file,
    layout_exam,
    read_headers,
    read_table,
)
from gmic_core.imaging.views import Laterality

KIND = "cmmd"
PATIENT_FOLDER = re.compile(r"^D\d-\d{4}$", re.IGNORECASE)
LABEL_FILES = "*clinicaldata*.csv"
COLUMNS = ("ID1", "LeftRight", "classification")
CLASSES = {"benign": (1, 0), "malignant": (0, 1)}


def read(root: Path) -> LayoutDataset:
    """The CMMD tree under ``root``, labelled where the clinical table (CSV) is there."""
    left_out: list[tuple[Path, str]] = []
    label_files = tuple(find_label_file(root, LABEL_FILES))
    labels: dict[str, dict[Laterality, tuple[int, int]]] = defaultdict(dict)
    for table in label_files:
        for line, row in enumerate(read_table(table, COLUMNS), start=2):
            side, kind = row["LeftRight"].upper(), row["classification"].lower()
            if side not in ("L", "R") or kind not in CLASSES:
                raise ExamError(
                    f"{table}, line {line}: LeftRight {row['LeftRight']!r}, classification "
                    f"{row['classification']!r}; expected L or R, and Benign or Malignant"
                )
            before = labels[row["ID1"].upper()].get(Laterality(side), (0, 0))
            labels[row["ID1"].upper()][Laterality(side)] = tuple(map(max, before, CLASSES[kind]))
    exams = []
    patients = [
        folder for folder in sorted(root.rglob("*")) if folder.is_dir() and PATIENT_FOLDER.match(folder.name)
    ]
    for folder in patients:
        refs = read_headers(((file, None) for file in files_under(folder)), left_out)
        if refs:
            patient = folder.name.upper()
            exams.append(layout_exam(patient, refs, root, breast_labels=labels.get(patient, {})))
    left_out.sort(key=lambda item: item[0])
    return LayoutDataset(KIND, root, exams, label_files, left_out)
