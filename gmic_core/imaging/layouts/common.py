"""What every layout returns (:class:`LayoutDataset` of :class:`LayoutExam`), the finding regions it
reads in the file frame (:class:`Box`, :class:`Polygon`, :class:`MaskFile`), and the one function that
carries a mask from the file frame into the stored frame (:func:`mask_in_stored_frame`)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from skimage.draw import polygon as fill_polygon

from gmic_core.errors import DicomError, ExamError
from gmic_core.imaging.dicom import PARSE_ERRORS, read_dicom_header
from gmic_core.imaging.exam import BreastLabels, Exam, assemble_exam
from gmic_core.imaging.image import Hints, ImageRef, Mammogram
from gmic_core.imaging.views import Laterality, View

TRAIN, TEST = "train", "test"  # the manifest's split names (gmic_core.dataset.SPLITS)


@dataclass(frozen=True)
class Box:
    """A rectangle in the file frame, pixel edges (row, column), bottom and right exclusive."""

    top: float
    left: float
    bottom: float
    right: float

    def rasterise(self, shape: tuple[int, int]) -> np.ndarray:
        mask = np.zeros(shape, bool)
        top, left = max(int(np.floor(self.top)), 0), max(int(np.floor(self.left)), 0)
        bottom, right = min(int(np.ceil(self.bottom)), shape[0]), min(int(np.ceil(self.right)), shape[1])
        mask[top:bottom, left:right] = True
        return mask


@dataclass(frozen=True)
class Polygon:
    """An outline in the file frame, (row, column) pixel centres. Fewer than three points (INbreast
    marks single calcifications by one point) mark those pixels only."""

    points: tuple[tuple[float, float], ...]

    def rasterise(self, shape: tuple[int, int]) -> np.ndarray:
        mask = np.zeros(shape, bool)
        rows = np.array([point[0] for point in self.points])
        columns = np.array([point[1] for point in self.points])
        if len(self.points) >= 3:
            mask[fill_polygon(rows, columns, shape)] = True
        rows, columns = np.round(rows).astype(int), np.round(columns).astype(int)
        inside = (rows >= 0) & (rows < shape[0]) & (columns >= 0) & (columns < shape[1])
        mask[rows[inside], columns[inside]] = True
        return mask


@dataclass(frozen=True)
class MaskFile:
    """A DICOM file of a binary mask (non-zero = lesion) in the file frame of its image (CBIS-DDSM's
    ROI masks). Read with pydicom as stored: a mask is no mammogram and is never mirrored by itself."""

    path: Path

    def rasterise(self, shape: tuple[int, int]) -> np.ndarray:
        try:
            pixels = pydicom.dcmread(self.path).pixel_array
        except (InvalidDicomError, AttributeError, RuntimeError, *PARSE_ERRORS) as error:
            raise DicomError(f"{self.path}: the ROI mask cannot be read ({error})") from error
        if pixels.shape != shape:
            raise ExamError(
                f"{self.path}: the ROI mask is {pixels.shape[0]} x {pixels.shape[1]}, its image "
                f"{shape[0]} x {shape[1]}; the mask does not belong to the image"
            )
        return pixels > 0


Region = Box | Polygon | MaskFile


@dataclass(frozen=True)
class Finding:
    """One annotated lesion of one view: its class (malignant, else benign), its kind for the
    manifest's ``lesions`` column ("mass", "calcification", ...) and its region in the file frame."""

    view: View
    malignant: bool
    kind: str
    region: Region


@dataclass(frozen=True, eq=False)
class LayoutExam:
    """An exam read from a layout. ``exam`` holds the images (with the layout's hints), and its
    ``labels`` where both breasts' labels are known; ``breast_labels`` holds (benign, malignant) of
    each breast whose label is known (a breast without a label is not known to be normal);
    ``findings`` the annotated lesions; ``lesions`` each breast's kinds of finding."""

    exam: Exam
    split: str = TEST
    breast_labels: dict[Laterality, tuple[int, int]] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    lesions: dict[Laterality, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class LayoutDataset:
    """A dataset read from its folder tree. ``label_files`` are the label tables found (none: the
    images can be predicted on, not imported); ``left_out`` (path, reason) for every file that could
    not be used, sorted by path."""

    kind: str
    root: Path
    exams: list[LayoutExam]
    label_files: tuple[Path, ...] = ()
    left_out: list[tuple[Path, str]] = field(default_factory=list)


def mask_in_stored_frame(mask: np.ndarray, image: Mammogram) -> np.ndarray:
    """A mask drawn in ``image``'s file frame carried into its stored frame: mirrored exactly when the
    reader mirrored the image (DESIGN.md, Conventions). Raises ExamError when the sizes differ."""
    if mask.shape != image.pixels.shape:
        raise ExamError(
            f"{image.source}: a mask of {mask.shape[0]} x {mask.shape[1]} on an image of "
            f"{image.pixels.shape[0]} x {image.pixels.shape[1]}"
        )
    return np.ascontiguousarray(mask[:, ::-1]) if image.mirrored else mask


def read_table(path: Path, required: Sequence[str], delimiter: str = ",") -> list[dict[str, str]]:
    """The rows of a label table, column names and cells stripped of surrounding white space (some
    published cells end with a newline). Raises ExamError naming the file and the missing columns."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            rows = [
                {(key or "").strip(): (value or "").strip() for key, value in row.items()}
                for row in csv.DictReader(stream, delimiter=delimiter)
            ]
            stream.seek(0)
            header = [name.strip() for name in next(csv.reader(stream, delimiter=delimiter), [])]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ExamError(f"{path}: cannot read the table ({error})") from error
    missing = [column for column in required if column not in header]
    if missing:
        raise ExamError(
            f"{path}: the table lacks the column(s) {', '.join(missing)}; is it the file as published?"
        )
    return rows


def read_headers(
    files: Iterable[tuple[Path, Hints | None]], left_out: list[tuple[Path, str]]
) -> list[ImageRef]:
    """The headers of ``files`` read with their hints; a file that cannot be read, or the same image
    (SOP Instance UID) as an earlier one, goes to ``left_out`` with the reason."""
    refs: list[ImageRef] = []
    seen: dict[str, Path] = {}
    for file, hints in files:
        try:
            ref = read_dicom_header(file, hints)
        except DicomError as error:
            left_out.append((file, str(error)))
            continue
        if ref.sop_instance_uid in seen:
            left_out.append(
                (
                    file,
                    f"{file}: the same image (SOP Instance UID) as {seen[ref.sop_instance_uid]}; counted once",
                )
            )
            continue
        seen[ref.sop_instance_uid or str(file)] = file
        refs.append(ref)
    return refs


def layout_exam(
    exam_id: str,
    refs: Sequence[ImageRef],
    root: Path,
    split: str = TEST,
    breast_labels: dict[Laterality, tuple[int, int]] | None = None,
    findings: Sequence[Finding] = (),
    patient_id: str | None = None,
) -> LayoutExam:
    """One exam of a layout: the images grouped by :func:`assemble_exam`, labels of the breasts the
    exam shows. ``patient_id`` replaces the images' Patient ID where a layout's IDs name more than the
    patient (CBIS-DDSM's name the breast and view)."""
    if patient_id is not None:
        refs = [replace(ref, patient=replace(ref.patient, patient_id=patient_id)) for ref in refs]
    exam = assemble_exam(exam_id, refs, source=root)
    shown = {ref.laterality for ref in refs}
    labels = {side: value for side, value in (breast_labels or {}).items() if side in shown}
    if Laterality.LEFT in labels and Laterality.RIGHT in labels:
        (left_benign, left_malignant), (right_benign, right_malignant) = (
            labels[Laterality.LEFT],
            labels[Laterality.RIGHT],
        )
        exam = replace(exam, labels=BreastLabels(left_benign, left_malignant, right_benign, right_malignant))
    lesions = {
        side: tuple(sorted({finding.kind for finding in findings if finding.view.laterality is side}))
        for side in shown
    }
    kept = tuple(finding for finding in findings if finding.view in exam.images)
    return LayoutExam(exam, split, labels, kept, {side: kinds for side, kinds in lesions.items() if kinds})


def files_under(folder: Path, suffixes: tuple[str, ...] | None = None) -> list[Path]:
    """The files under ``folder`` (recursively, hidden ones skipped), sorted; only those ending in one
    of ``suffixes`` (lower case) where given."""
    return sorted(
        file
        for file in folder.rglob("*")
        if file.is_file()
        and not any(part.startswith(".") for part in file.relative_to(folder).parts)
        and (suffixes is None or file.suffix.lower() in suffixes)
    )


def find_label_file(root: Path, pattern: str) -> list[Path]:
    """Label tables matching ``pattern`` (a glob) in ``root`` or any folder under it, sorted."""
    return sorted(file for file in root.rglob(pattern) if file.is_file())
