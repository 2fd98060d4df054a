"""INbreast: ``AllDICOMs/<id>_<hash>_MG_<L|R>_<CC|ML>_ANON.dcm``, the ROI outlines
``AllXML/<id>.xml`` (Apple property lists) and the table ``INbreast.csv`` (semicolon separated),
anywhere under the root.

* **Laterality and view** come from the file name (hints, source "INbreast file name"); INbreast's
  ``ML`` is the medio-lateral oblique view (MLO).
* **Exam**: the patient (``<hash>``), and with the table the acquisition date as well
  (``<hash>_<date>``): a patient's images of one date.
* **Split**: INbreast has none; every exam is ``test``.
* **Labels** (the rule of this project; INbreast gives BI-RADS per image, biopsy results only for
  some): a breast's category is the highest of its images' ``Bi-Rads``; 4a, 4b, 4c, 5 and 6 are
  malignant, 2 and 3 benign, 1 normal. A breast none of whose images has a row has no label.
* **Masks**: every ROI outline (``Point_px``, ``(x, y)`` in the DICOM's pixel grid) rasterised, in
  the mask of its image's class (malignant for an image of 4a-6, benign for 2-3; none at 1). A ROI of
  one or two points (a single calcification) marks those pixels.
"""

from __future__ import annotations

import plistlib
import re
from collections import defaultdict
from pathlib import Path
from xml.parsers.expat import ExpatError

from gmic_core.errors import ExamError
from gmic_core.imaging.image import Hints
from gmic_core.imaging.layouts.common import (
    Finding,
    LayoutDataset,
    Polygon,
    files_under,
    find_label_file,
    layout_exam,
    read_headers,
    read_table,
)
from gmic_core.imaging.views import Laterality, View, ViewCode, ViewPosition

KIND = "inbreast"
HINT_SOURCE = "INbreast file name"
FILE_NAME = re.compile(
    r"^(?P<id>\d+)_(?P<patient>[0-9a-z]+)_MG_(?P<side>[LR])_(?P<view>CC|ML)_ANON\.dcm$", re.IGNORECASE
)
VIEWS = {"CC": ViewPosition.CC, "ML": ViewPosition.MLO}
TABLE = "INbreast.csv"
COLUMNS = ("File Name", "Bi-Rads")
CATEGORIES = ("1", "2", "3", "4", "4a", "4b", "4c", "5", "6")  # in increasing order of suspicion
MALIGNANT = frozenset({"4", "4a", "4b", "4c", "5", "6"})
BENIGN = frozenset({"2", "3"})
POINT = re.compile(r"\(\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*(?:,[^)]*)?\)")


def read(root: Path) -> LayoutDataset:
    """The INbreast files under ``root``, labelled where ``INbreast.csv`` is there."""
    left_out: list[tuple[Path, str]] = []
    tables = tuple(find_label_file(root, TABLE))
    rows = {row["File Name"]: (table, row) for table in tables for row in read_table(table, COLUMNS, ";")}
    outlines = {file.stem: file for file in find_label_file(root, "*.xml")}
    exams: dict[str, list] = defaultdict(list)
    categories: dict[str, dict[Laterality, str]] = defaultdict(dict)
    findings: dict[str, list[Finding]] = defaultdict(list)
    for file in files_under(root, (".dcm",)):
        match = FILE_NAME.match(file.name)
        if match is None:
            left_out.append(
                (file, f"{file}: not an INbreast file name (<id>_<hash>_MG_<L|R>_<CC|ML>_ANON.dcm)")
            )
            continue
        side, position = Laterality(match["side"].upper()), VIEWS[match["view"].upper()]
        view = View.of(side, position)
        listed = rows.get(match["id"])
        date = re.sub(r"\D", "", listed[1].get("Acquisition date", "")) if listed else ""
        exam_id = f"{match['patient']}_{date}" if date else match["patient"]
        exams[exam_id].append((file, Hints(side, ViewCode(position.value), HINT_SOURCE)))
        if listed is None:
            continue
        category = _category(*listed)
        highest = categories[exam_id].get(side, CATEGORIES[0])
        categories[exam_id][side] = max(highest, category, key=CATEGORIES.index)
        if (category in MALIGNANT or category in BENIGN) and match["id"] in outlines:
            findings[exam_id].extend(
                Finding(view, category in MALIGNANT, kind, outline)
                for kind, outline in _outlines(outlines[match["id"]])
            )
    result = []
    for exam_id, files in sorted(exams.items()):
        refs = read_headers(files, left_out)
        if refs:
            labels = {
                side: (int(category in BENIGN), int(category in MALIGNANT))
                for side, category in categories[exam_id].items()
            }
            result.append(layout_exam(exam_id, refs, root, breast_labels=labels, findings=findings[exam_id]))
    left_out.sort(key=lambda item: item[0])
    return LayoutDataset(KIND, root, result, tables, left_out)


def _category(table: Path, row: dict[str, str]) -> str:
    category = row["Bi-Rads"].strip().lower()
    if category not in CATEGORIES:
        raise ExamError(
            f"{table}: file {row['File Name']}: Bi-Rads {row['Bi-Rads']!r} is none of {', '.join(CATEGORIES)}"
        )
    return category


def _outlines(path: Path) -> list[tuple[str, Polygon]]:
    """The ROIs of an INbreast XML file: (name in lower case, outline)."""
    try:
        document = plistlib.loads(path.read_bytes(), fmt=plistlib.FMT_XML)
        images = document["Images"]
        rois = [roi for image in images for roi in image.get("ROIs", [])]
        outlines = []
        for roi in rois:
            points = [POINT.fullmatch(text.strip()) for text in roi["Point_px"]]
            if not points or None in points:
                raise ValueError("a Point_px entry is not (x, y)")
            outline = tuple((float(point[2]), float(point[1])) for point in points if point)
            outlines.append((str(roi.get("Name", "finding")).strip().lower(), Polygon(outline)))
    except (OSError, ExpatError, plistlib.InvalidFileException, KeyError, TypeError, ValueError) as error:
        raise ExamError(f"{path}: not an INbreast ROI file as published ({error})") from error
    return outlines
