"""CBIS-DDSM as TCIA distributes it (NBIA Data Retriever download).

Folders ``<Mass|Calc>-<Training|Test>_P_<id>_<LEFT|RIGHT>_<CC|MLO>[_<n>]/<study>/<series>/<file>.dcm``
anywhere under the root: a folder without ``_<n>`` holds one full mammogram, a ``_<n>`` folder the ROI
mask and the crop of abnormality n (in one series or two). The headers (Secondary Capture, PatientID
equal to the folder name) name neither laterality nor view: both come from the folder name, passed to
the reader as hints (source "CBIS-DDSM folder name"), so the tree is readable for prediction without
the label files.

* **Exam**: a patient (``P_<id>``), all views across the Mass and Calc sets. The same full image is
  listed under ``Mass-…`` and ``Calc-…`` when a breast has both kinds of abnormality: it is counted
  once (by SOP Instance UID, then by patient and view); the other copy is left out with the reason.
* **Split**: from the folder names; a patient with folders in both Training and Test (the Mass and
  Calc sets were split separately) is a ``test`` exam, so that no patient is in both splits.
* **Labels** (the four ``*_case_description_*.csv`` files anywhere under the root): a breast is
  malignant when any of its abnormalities is MALIGNANT, benign when any is BENIGN or
  BENIGN_WITHOUT_CALLBACK (both may hold). The CSVs' file paths name study and series UIDs that newer
  downloads do not use as folder names, so rows are matched by the top folder name, and the ROI mask
  within the ``_<n>`` folder by the UIDs in the path against the files' headers, then by
  SeriesDescription ("ROI mask images"), then by size (the mask has the full image's size, the crop
  is smaller). Never by the literal path.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pydicom
from pydicom.errors import InvalidDicomError

from gmic_core.errors import ExamError
from gmic_core.imaging.dicom import PARSE_ERRORS
from gmic_core.imaging.image import Hints, ImageRef
from gmic_core.imaging.layouts.common import (
    TEST,
    TRAIN,
    Finding,
    LayoutDataset,
    MaskFile,
    files_under,
    find_label_file,
    layout_exam,
    read_headers,
    read_table,
)
from gmic_core.imaging.views import Laterality, View, ViewCode, ViewPosition

KIND = "cbis-ddsm"
HINT_SOURCE = "CBIS-DDSM folder name"
FOLDER = re.compile(
    r"^(?P<set>Mass|Calc)-(?P<split>Training|Test)_(?P<patient>P_\d+)_(?P<side>LEFT|RIGHT)_(?P<view>CC|MLO)"
    r"(?:_(?P<abnormality>\d+))?$",
    re.IGNORECASE,
)
LABEL_FILES = "*_case_description_*.csv"
COLUMNS = ("pathology", "abnormality type", "image file path", "ROI mask file path")
MALIGNANT = "MALIGNANT"
BENIGN = frozenset({"BENIGN", "BENIGN_WITHOUT_CALLBACK"})


@dataclass(frozen=True)
class CaseFolder:
    """What a CBIS-DDSM folder name says."""

    path: Path
    patient: str
    view: View
    test: bool
    abnormality: int | None  # n of a ROI folder ``_<n>``, None for a full mammogram's folder

    @classmethod
    def parse(cls, path: Path) -> CaseFolder | None:
        match = FOLDER.match(path.name)
        if match is None:
            return None
        side = Laterality.LEFT if match["side"].upper() == "LEFT" else Laterality.RIGHT
        number = match["abnormality"]
        return cls(
            path,
            match["patient"].upper(),
            View.of(side, ViewPosition(match["view"].upper())),
            match["split"].lower() == "test",
            None if number is None else int(number),
        )

    @property
    def hints(self) -> Hints:
        return Hints(self.view.laterality, ViewCode(self.view.position.value), HINT_SOURCE)


@dataclass(frozen=True)
class _RoiFile:
    path: Path
    study: str
    series: str
    description: str
    shape: tuple[int, int]


def read(root: Path) -> LayoutDataset:
    """The CBIS-DDSM tree under ``root``, with labels and masks where the case description CSVs are
    there."""
    folders = [case for path in sorted(root.rglob("*")) if path.is_dir() and (case := CaseFolder.parse(path))]
    left_out: list[tuple[Path, str]] = []
    full = {case.path.name.upper(): case for case in folders if case.abnormality is None}
    rois = {case.path.name.upper(): case for case in folders if case.abnormality is not None}
    patients: dict[str, list[tuple[CaseFolder, ImageRef]]] = defaultdict(list)
    for case in full.values():
        refs = read_headers(((file, case.hints) for file in files_under(case.path)), left_out)
        patients[case.patient].extend((case, ref) for ref in refs)
    label_files = tuple(find_label_file(root, LABEL_FILES))
    labels: dict[tuple[str, Laterality], tuple[int, int]] = {}
    findings: dict[str, list[Finding]] = defaultdict(list)
    for table in label_files:
        _read_case_description(table, full, rois, labels, findings, left_out)
    exams = []
    for patient, found in sorted(patients.items()):
        refs = _counted_once(found, left_out)
        split = TEST if any(case.test for case, _ in found) else TRAIN
        breast_labels = {side: value for (owner, side), value in labels.items() if owner == patient}
        exams.append(layout_exam(patient, refs, root, split, breast_labels, findings[patient], patient))
    left_out.sort(key=lambda item: item[0])
    return LayoutDataset(KIND, root, exams, label_files, left_out)


def _counted_once(
    found: list[tuple[CaseFolder, ImageRef]], left_out: list[tuple[Path, str]]
) -> list[ImageRef]:
    """One full image per view: the copy under a second set's folder is left out."""
    kept: dict[View, ImageRef] = {}
    refs = []
    for case, ref in sorted(found, key=lambda item: item[0].path.name.upper()):
        if case.view in kept:
            left_out.append(
                (
                    ref.source,
                    f"{ref.source}: the same view as {kept[case.view].source} (the image is "
                    "listed in both the Mass and Calc sets); counted once",
                )
            )
            continue
        kept[case.view] = ref
        refs.append(ref)
    return refs


def _read_case_description(
    table: Path,
    full: dict[str, CaseFolder],
    rois: dict[str, CaseFolder],
    labels: dict[tuple[str, Laterality], tuple[int, int]],
    findings: dict[str, list[Finding]],
    left_out: list[tuple[Path, str]],
) -> None:
    """Add one case description CSV's labels and findings; rows whose image is not in the download
    are ignored (a partial download is fine)."""
    for line, row in enumerate(read_table(table, COLUMNS), start=2):
        image_folder = _top_folder(row["image file path"])
        case = full.get(image_folder.upper())
        if case is None:
            continue
        pathology = row["pathology"].upper()
        if pathology != MALIGNANT and pathology not in BENIGN:
            raise ExamError(
                f"{table}, line {line}: pathology {row['pathology']!r} is none of MALIGNANT, BENIGN, "
                "BENIGN_WITHOUT_CALLBACK; is it the file as published?"
            )
        malignant = pathology == MALIGNANT
        key = (case.patient, case.view.laterality)
        benign_before, malignant_before = labels.get(key, (0, 0))
        labels[key] = (max(benign_before, int(not malignant)), max(malignant_before, int(malignant)))
        kind = row["abnormality type"].lower()  # "mass" or "calcification"
        mask = _roi_mask(row["ROI mask file path"], rois, case, left_out)
        if mask is not None:
            findings[case.patient].append(Finding(case.view, malignant, kind, MaskFile(mask)))


def _top_folder(cell: str) -> str:
    return PurePosixPath(cell.strip().replace("\\", "/")).parts[0] if cell.strip() else ""


def _roi_mask(
    cell: str, rois: dict[str, CaseFolder], image: CaseFolder, left_out: list[tuple[Path, str]]
) -> Path | None:
    """The ROI mask file a CSV cell names: its ``_<n>`` folder by name; in it, the file of the series
    the path names if the UIDs match, else the one described as a mask, else the one of the image's
    size."""
    parts = PurePosixPath(cell.strip().replace("\\", "/")).parts
    case = rois.get(parts[0].upper()) if parts else None
    if case is None:
        left_out.append(
            (
                image.path,
                f"{image.path}: the ROI mask folder {parts[0] if parts else '(empty cell)'} "
                "is not in the download; the finding's label counts, its mask is missing",
            )
        )
        return None
    candidates = [header for file in files_under(case.path) if (header := _roi_header(file)) is not None]
    uids = parts[1:3]
    by_uid = [roi for roi in candidates if (roi.study, roi.series) == tuple(uids)]
    if len(by_uid) == 1:
        return by_uid[0].path
    pool = by_uid or candidates
    described = [roi for roi in pool if "mask" in roi.description.lower()]
    if len(described) == 1:
        return described[0].path
    image_shapes = {header.shape for file in files_under(image.path) if (header := _roi_header(file))}
    sized = [roi for roi in pool if roi.shape in image_shapes]
    if len(sized) == 1:
        return sized[0].path
    left_out.append(
        (
            case.path,
            f"{case.path}: cannot tell the ROI mask from the crop (neither the series UIDs, the "
            "series description nor the size tell); the finding's label counts, its mask is missing",
        )
    )
    return None


def _roi_header(file: Path) -> _RoiFile | None:
    try:
        header = pydicom.dcmread(file, stop_before_pixels=True)
        return _RoiFile(
            file,
            str(header.get("StudyInstanceUID", "")),
            str(header.get("SeriesInstanceUID", "")),
            str(header.get("SeriesDescription", "")),
            (int(header.Rows), int(header.Columns)),
        )
    except (InvalidDicomError, AttributeError, TypeError, *PARSE_ERRORS):
        return None
