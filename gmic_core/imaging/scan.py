"""Finding exams on disk: :func:`find_exams` (headers only; what ``gmic predict``, ``gmic triage`` and
the workstation open), :func:`scan_folder`, :func:`load_exam`, :func:`load_image`."""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gmic_core.errors import DicomError, ExamError, NotDicomError
from gmic_core.imaging.decoders import FULL_SIZE_CPU, Decoding
from gmic_core.imaging.dicom import read_dicom, read_dicom_header
from gmic_core.imaging.exam import Exam, assemble_exam, not_scored, selection_key
from gmic_core.imaging.image import ImageFormat, ImageRef, Mammogram
from gmic_core.imaging.manifest import MANIFEST_NAME, read_exam_manifest, read_png
from gmic_core.imaging.views import View

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (files done, files in all)


@dataclass(frozen=True, eq=False)
class ScanResult:
    """``exams`` sorted by exam_id; ``failures`` (path, message) for every path, file or study that
    could not be used, sorted by path; ``skipped`` the files under a folder that are not DICOM at all;
    ``not_scored`` (path, message) for the images of these exams that are kept and shown but never
    scored (spot compression, magnification, other projections: :func:`not_scored`)."""

    exams: list[Exam] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    not_scored: list[tuple[Path, str]] = field(default_factory=list)


def load_image(ref: ImageRef, decoding: Decoding = FULL_SIZE_CPU) -> Mammogram:
    """Decode one image found by a scan; safe to call from worker threads or processes. ``decoding``:
    what a model's input path accepts (:func:`read_dicom`); PNG images are always full size."""
    if ref.format is ImageFormat.PNG:
        return read_png(ref)
    image = read_dicom(ref.source, ref.hints, decoding)
    if image.sop_instance_uid != ref.sop_instance_uid:
        raise DicomError(f"{ref.source}: the file has changed since the folder was scanned; scan it again")
    return image


def find_exams(paths: Iterable[Path | str], progress: Progress | None = None) -> ScanResult:
    """Every exam at ``paths``, reading headers only: a folder is searched recursively for DICOM files
    (with or without an extension) and ``exam.json`` manifests, hidden files and folders ignored; a
    file is one DICOM image (an exam of its study, views it lacks reported as missing) or, named
    ``exam.json`` or ending in ``.json``, a manifest. DICOM images of all paths are grouped together
    by Study Instance UID; a file reached twice counts once. One bad path or file never stops the
    others: it is in ``failures`` with the reason."""
    failures: list[tuple[Path, str]] = []
    skipped: list[Path] = []
    named: list[Path] = []  # files given as paths: not DICOM is a failure there, not a skip
    folders: dict[Path, list[Path]] = {}
    files: dict[Path, None] = {}
    for root in map(Path, paths):
        if root.is_dir():
            folders[root] = _files_under(root)
            files.update(dict.fromkeys(folders[root]))
        elif root.is_file():
            files[root] = None
            named.append(root)
        else:
            failures.append((root, f"{root}: does not exist"))
    exams: list[Exam] = []
    listed: set[Path] = set()
    for manifest in (
        file for file in files if file.name == MANIFEST_NAME or (file in named and file.suffix == ".json")
    ):
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
    for done, file in enumerate(files, start=1):
        if progress is not None:
            progress(done, len(files))
        if file in listed:
            continue
        try:
            ref = read_dicom_header(file)
        except NotDicomError as exc:
            if file in named:
                failures.append((file, f"{exc}; nor an exam.json"))
            else:
                skipped.append(file)
            continue
        except DicomError as exc:
            failures.append((file, str(exc)))
            continue
        if ref.study_instance_uid is None:
            failures.append((file, f"{file}: no Study Instance UID, so it cannot be grouped into an exam"))
        else:
            studies[ref.study_instance_uid].append(ref)
    used = listed | {file for file, _ in failures} | {ref.source for refs in studies.values() for ref in refs}
    failures.extend(
        (root, f"{root}: no mammograms found (no DICOM file or exam.json)")
        for root, under in folders.items()
        if used.isdisjoint(under)
    )
    for study, refs in studies.items():
        source = Path(os.path.commonpath([ref.source.parent for ref in refs]))
        try:
            exams.append(assemble_exam(study, refs, source=source))
        except ExamError as exc:
            failures.extend((ref.source, str(exc)) for ref in refs)
    exams.sort(key=lambda exam: exam.exam_id)
    failures.sort(key=lambda failure: failure[0])
    unscored = sorted(item for exam in exams for item in not_scored(exam))
    return ScanResult(exams, failures, skipped, unscored)


def scan_folder(path: Path | str, progress: Progress | None = None) -> ScanResult:
    """:func:`find_exams` of one folder; raises ExamError when ``path`` is not a folder."""
    root = Path(path)
    if not root.is_dir():
        raise ExamError(f"{root}: {'not a folder' if root.exists() else 'does not exist'}")
    return find_exams([root], progress)


def _files_under(root: Path) -> list[Path]:
    return sorted(
        file
        for file in root.rglob("*")
        if file.is_file() and not any(part.startswith(".") for part in file.relative_to(root).parts)
    )


def load_exam(path: Path | str) -> Exam:
    """One exam (:func:`find_exams` of one path that must hold exactly one). Unusable files beside a
    usable study are logged (paths and reasons only) and left out."""
    path = Path(path)
    result = find_exams([path])
    if not result.exams:
        reasons = "; ".join(message for _, message in result.failures[:3])
        raise ExamError(f"{path}: no usable mammograms" + (f" ({reasons})" if reasons else ""))
    if len(result.exams) > 1:
        raise ExamError(f"{path}: holds {len(result.exams)} studies; load one study at a time")
    for file, message in result.failures:
        logger.warning("left out %s: %s", file, message)
    return result.exams[0]


def decode_view(exam: Exam, view: View, decoding: Decoding = FULL_SIZE_CPU) -> Mammogram:
    """The image chosen for one standard view or, where it cannot be decoded, the next image of the
    same view by the duplicate rule; raises the first image's DicomError when none decodes."""
    alternates = sorted((ref for ref in exam.extra_images if ref.view is view), key=selection_key)
    first_error = None
    for ref in (exam.images[view], *alternates):
        try:
            return load_image(ref, decoding)
        except DicomError as error:
            logger.warning(
                "exam %s: %s could not be decoded, trying the next %s image",
                exam.exam_id,
                ref.source,
                view.value,
            )
            first_error = first_error or error
    raise first_error
