"""Finding exams on disk: :func:`scan_folder` (headers only), :func:`load_exam`, :func:`load_image`."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gmic_core.errors import DicomError, ExamError, NotDicomError
from gmic_core.imaging.dicom import read_dicom, read_dicom_header
from gmic_core.imaging.exam import Exam, assemble_exam, selection_key
from gmic_core.imaging.image import ImageFormat, ImageRef, Mammogram
from gmic_core.imaging.manifest import MANIFEST_NAME, read_exam_manifest, read_png
from gmic_core.imaging.views import View

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (files done, files in all)


@dataclass(frozen=True, eq=False)
class ScanResult:
    """``exams`` sorted by exam_id; ``failures`` (path, message) for every file or study that could
    not be used, sorted by path; ``skipped`` the files that are not DICOM at all."""

    exams: list[Exam] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


def load_image(ref: ImageRef) -> Mammogram:
    """Decode one image found by a scan; safe to call from worker threads or processes."""
    if ref.format is ImageFormat.PNG:
        return read_png(ref)
    image = read_dicom(ref.source, ref.hints)
    if image.sop_instance_uid != ref.sop_instance_uid:
        raise DicomError(f"{ref.source}: the file has changed since the folder was scanned; scan it again")
    return image


def scan_folder(path: Path | str, progress: Progress | None = None) -> ScanResult:
    """Every exam under ``path`` (recursively): DICOM files, with or without an extension, grouped by
    StudyInstanceUID, and ``exam.json`` manifests. Reads headers only. Hidden files and folders are
    ignored; one bad file never stops the scan."""
    root = Path(path)
    if not root.is_dir():
        raise ExamError(f"{root}: not a folder")
    files = sorted(
        file
        for file in root.rglob("*")
        if file.is_file() and not any(part.startswith(".") for part in file.relative_to(root).parts)
    )
    exams: list[Exam] = []
    failures: list[tuple[Path, str]] = []
    skipped: list[Path] = []
    listed: set[Path] = set()
    for manifest in (file for file in files if file.name == MANIFEST_NAME):
        listed.add(manifest)
        try:
            exam = read_exam_manifest(manifest)
        except ExamError as exc:
            failures.append((manifest, str(exc)))
            continue
        exams.append(exam)
        listed.update(ref.source for ref in exam.images.values())
        listed.update(
            mask for masks in exam.segmentations.values() for mask in (masks.benign, masks.malignant) if mask
        )
    studies: dict[str, list[ImageRef]] = defaultdict(list)
    seen: dict[str, Path] = {}
    for done, file in enumerate(files, start=1):
        if progress is not None:
            progress(done, len(files))
        if file in listed:
            continue
        try:
            ref = read_dicom_header(file)
        except NotDicomError:
            skipped.append(file)
            continue
        except DicomError as exc:
            failures.append((file, str(exc)))
            continue
        if ref.sop_instance_uid in seen:
            failures.append(
                (file, f"{file}: the same image (SOP Instance UID) as {seen[ref.sop_instance_uid]}; ignored")
            )
        elif ref.study_instance_uid is None:
            failures.append((file, f"{file}: no Study Instance UID, so it cannot be grouped into an exam"))
        else:
            seen[ref.sop_instance_uid or str(file)] = file
            studies[ref.study_instance_uid].append(ref)
    for study, refs in studies.items():
        try:
            exams.append(assemble_exam(study, refs, source=root))
        except ExamError as exc:
            failures.extend((ref.source, str(exc)) for ref in refs)
    exams.sort(key=lambda exam: exam.exam_id)
    failures.sort(key=lambda failure: failure[0])
    return ScanResult(exams, failures, skipped)


def load_exam(path: Path | str) -> Exam:
    """One exam: a folder of one study's DICOM files, an ``exam.json`` or a folder holding one.
    Unusable files beside a usable study are logged (paths and reasons only) and left out."""
    path = Path(path)
    if path.is_file():
        return read_exam_manifest(path)
    if (path / MANIFEST_NAME).is_file():
        return read_exam_manifest(path / MANIFEST_NAME)
    result = scan_folder(path)
    if not result.exams:
        reasons = "; ".join(message for _, message in result.failures[:3])
        raise ExamError(f"{path}: no usable mammograms" + (f" ({reasons})" if reasons else ""))
    if len(result.exams) > 1:
        raise ExamError(f"{path}: holds {len(result.exams)} studies; load one study at a time")
    for file, message in result.failures:
        logger.warning("left out %s: %s", file, message)
    return result.exams[0]


def decode_view(exam: Exam, view: View) -> Mammogram:
    """The image chosen for one standard view or, where it cannot be decoded, the next image of the
    same view by the duplicate rule; raises the first image's DicomError when none decodes."""
    alternates = sorted((ref for ref in exam.extra_images if ref.view is view), key=selection_key)
    first_error = None
    for ref in (exam.images[view], *alternates):
        try:
            return load_image(ref)
        except DicomError as error:
            logger.warning(
                "exam %s: %s could not be decoded, trying the next %s image",
                exam.exam_id,
                ref.source,
                view.value,
            )
            first_error = first_error or error
    raise first_error
