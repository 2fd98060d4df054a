"""The labelled manifest (``manifest.csv``): read and written here, and nowhere else.

One row per image::

    exam_id,view,file,split,benign,malignant,mask_benign,mask_malignant[,extra columns...],lesions

* ``exam_id``: the exam the image belongs to; ``view``: R-CC, L-CC, R-MLO or L-MLO;
* ``file``: the image (DICOM, or a published-format 16-bit PNG stored as published: R views facing
  left), relative to the manifest's folder or absolute;
* ``split``: train, val or test, one per exam;
* ``benign``, ``malignant``: 0/1 labels of the breast the view shows;
* ``mask_benign``, ``mask_malignant``: 8-bit PNG masks (non-zero = lesion) in the *stored* frame (the
  image as :func:`gmic_core.imaging.read_dicom` returns it, mirrored so that R views face left),
  relative or absolute; empty where the breast has no such lesion;
* ``lesions``: the breast's findings, ``;`` separated (evaluation reports per kind).

Writers may add columns (``gmic synth`` adds ``density``); readers ignore what they do not know.

The ``view`` column is evidence of the image's laterality and view: images are decoded with it as
:class:`~gmic_core.imaging.Hints` (source "manifest.csv"), so that a DICOM file whose header does not
say which breast or projection it shows (CBIS-DDSM) reads as it did when it was imported. A header
that contradicts the column is an error naming both.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gmic_core.errors import DatasetError, ExamError
from gmic_core.imaging.image import Hints
from gmic_core.imaging.views import Laterality, View, ViewCode

MANIFEST_NAME = "manifest.csv"
REQUIRED_COLUMNS = ("exam_id", "view", "file", "split", "benign", "malignant")
MASK_COLUMNS = ("mask_benign", "mask_malignant")
SPLITS = ("train", "val", "test")
HINT_SOURCE = "manifest.csv"


@dataclass(frozen=True)
class ManifestImage:
    exam_id: str
    view: View
    path: Path
    split: str
    benign: int
    malignant: int
    mask_benign: Path | None = None
    mask_malignant: Path | None = None
    lesions: tuple[str, ...] = ()  # the breast's findings, e.g. "mass:spiculated" (optional column)

    @property
    def labels(self) -> tuple[int, int]:
        return self.benign, self.malignant

    @property
    def hints(self) -> Hints:
        """The ``view`` column as evidence for the DICOM reader."""
        return Hints(self.view.laterality, ViewCode(self.view.position.value), HINT_SOURCE)


@dataclass(frozen=True)
class ManifestExam:
    exam_id: str
    split: str
    images: dict[View, ManifestImage]

    @property
    def has_finding(self) -> bool:
        """A benign or malignant finding in either breast (paper section 3.2's positive exams)."""
        return any(image.benign or image.malignant for image in self.images.values())

    def breast_labels(self, side: Laterality) -> tuple[int, int] | None:
        image = self._breast_image(side)
        return image.labels if image else None

    def breast_lesions(self, side: Laterality) -> tuple[str, ...]:
        image = self._breast_image(side)
        return image.lesions if image else ()

    def _breast_image(self, side: Laterality) -> ManifestImage | None:
        """One view of the breast: its labels and findings are the breast's."""
        return next((image for view, image in self.images.items() if view.laterality is side), None)


def manifest_columns(extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The columns :func:`write_manifest` writes, with a writer's ``extra`` columns before ``lesions``."""
    return (*REQUIRED_COLUMNS, *MASK_COLUMNS, *extra, "lesions")


def write_manifest(
    path: Path | str,
    images: Sequence[ManifestImage],
    extra: Sequence[Mapping[str, object]] | None = None,
) -> Path:
    """Write ``images`` (one row each, in order) to ``path``; files under the manifest's folder are
    written relative to it, others as absolute paths. ``extra`` gives each image's additional columns
    (the same keys for every image). Returns ``path``."""
    path = Path(path)
    extra = extra if extra is not None else [{} for _ in images]
    if len(extra) != len(images):
        raise ValueError(f"{len(images)} images but {len(extra)} rows of extra columns")
    folder = path.parent
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=manifest_columns(tuple(extra[0]) if extra else ()))
        writer.writeheader()
        for image, more in zip(images, extra, strict=True):
            writer.writerow(
                {
                    "exam_id": image.exam_id,
                    "view": image.view.value,
                    "file": _relative(folder, image.path),
                    "split": image.split,
                    "benign": image.benign,
                    "malignant": image.malignant,
                    "mask_benign": _relative(folder, image.mask_benign),
                    "mask_malignant": _relative(folder, image.mask_malignant),
                    **more,
                    "lesions": ";".join(image.lesions),
                }
            )
    return path


def read_manifest(path: str | Path) -> list[ManifestExam]:
    """The manifest's exams, in the order they first appear. Raises ExamError naming the row."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ExamError(f"{path}: cannot read the manifest ({error})") from error
    if not rows:
        raise ExamError(f"{path}: the manifest has no rows")
    missing = [column for column in REQUIRED_COLUMNS if column not in rows[0]]
    if missing:
        raise ExamError(f"{path}: the manifest lacks the column(s) {', '.join(missing)}")
    exams: dict[str, dict[View, ManifestImage]] = defaultdict(dict)
    splits: dict[str, str] = {}
    for number, row in enumerate(rows, start=2):
        try:
            image = ManifestImage(
                exam_id=row["exam_id"],
                view=View(row["view"]),
                path=_resolve(path.parent, row["file"]),
                split=row["split"],
                benign=_label(row["benign"]),
                malignant=_label(row["malignant"]),
                mask_benign=_optional_path(path.parent, row.get("mask_benign")),
                mask_malignant=_optional_path(path.parent, row.get("mask_malignant")),
                lesions=tuple(kind for kind in (row.get("lesions") or "").split(";") if kind),
            )
        except ValueError as error:
            raise ExamError(f"{path}, line {number}: {error}") from error
        if image.view in exams[image.exam_id]:
            raise ExamError(f"{path}, line {number}: exam {image.exam_id} lists {image.view.value} twice")
        if splits.setdefault(image.exam_id, image.split) != image.split:
            raise ExamError(f"{path}, line {number}: exam {image.exam_id} is in two splits")
        exams[image.exam_id][image.view] = image
    return [ManifestExam(exam_id, splits[exam_id], images) for exam_id, images in exams.items()]


def read_manifests(paths: Sequence[str | Path]) -> list[ManifestExam]:
    """The exams of several manifests (each resolving its files against its own folder), in order, so
    that a run can combine datasets without copying them. Raises ExamError for an exam listed twice."""
    exams: list[ManifestExam] = []
    source: dict[str, Path] = {}
    for path in map(Path, paths):
        for exam in read_manifest(path):
            if exam.exam_id in source:
                raise ExamError(f"{path}: exam {exam.exam_id} is listed in {source[exam.exam_id]} too")
            source[exam.exam_id] = path
            exams.append(exam)
    return exams


def _label(value: str) -> int:
    if value.strip() not in ("0", "1"):
        raise DatasetError(f"labels are 0 or 1, got {value!r}")
    return int(value)


def _resolve(folder: Path, name: str) -> Path:
    candidate = Path(name)
    return candidate if candidate.is_absolute() else folder / candidate


def _optional_path(folder: Path, name: str | None) -> Path | None:
    return _resolve(folder, name) if name else None


def _relative(folder: Path, path: Path | None) -> str:
    if path is None:
        return ""
    return path.relative_to(folder).as_posix() if path.is_relative_to(folder) else str(path)
