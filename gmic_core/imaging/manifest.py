"""PNG exams: the published GMIC format (12-bit values in 16-bit PNGs) listed by an ``exam.json``
manifest, as in ``../shared/reference/sample_exam``::

    {"exam_id": "0", "horizontal_flip": "NO",
     "views": {"L-CC": "0_L-CC.png", "R-CC": ..., "L-MLO": ..., "R-MLO": ...},
     "labels": {"left_benign": 0, "left_malignant": 0, "right_benign": 1, "right_malignant": 0},
     "segmentations": {"R-CC": {"benign": "0_R-CC_benign.png"}, ...}}

``views`` may omit views (they are reported missing); ``labels`` and ``segmentations`` are optional.
File names are relative to the manifest. The published masks lie in the model-input frame.
Images stay exactly as stored; ``horizontal_flip`` ("YES"/"NO") is carried on the exam, since
bit-exact parity with the published pipeline depends on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from gmic_core.errors import ExamError
from gmic_core.imaging.exam import BreastLabels, Exam, LesionMasks, MaskFrame
from gmic_core.imaging.image import (
    ImageFormat,
    ImageRef,
    Mammogram,
    OrientationSource,
    Photometric,
    PresentationIntent,
    ViewInfo,
)
from gmic_core.imaging.views import View, ViewCode
from gmic_core.imaging.voi import Voi

MANIFEST_NAME = "exam.json"
HORIZONTAL_FLIP = {"YES": True, "NO": False}  # SPEC.md section 0: a per-exam 'YES' / 'NO' string
LABEL_KEYS = ("left_benign", "left_malignant", "right_benign", "right_malignant")
MASK_KINDS = ("benign", "malignant")
# Pillow modes of grey PNGs and how many bits they hold.
GREY_MODES = {"I;16": 16, "I;16B": 16, "I;16L": 16, "I": 16, "L": 8}
# What Pillow raises for unreadable, truncated or oversized files.
PNG_ERRORS = (OSError, ValueError, Image.DecompressionBombError)


def read_exam_manifest(path: Path | str) -> Exam:
    """The exam an ``exam.json`` lists; its images are checked to exist and be grey PNGs (headers
    only). Raises ExamError with what is wrong."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExamError(f"{path}: not a readable exam.json ({exc})") from exc
    if not isinstance(manifest, dict):
        raise ExamError(f"{path}: an exam.json holds one JSON object")
    exam_id = manifest.get("exam_id")
    flip = manifest.get("horizontal_flip", "NO")
    views = manifest.get("views")
    if not isinstance(exam_id, str | int) or isinstance(exam_id, bool) or str(exam_id) == "":
        raise ExamError(f"{path}: 'exam_id' must be a non-empty string")
    if flip not in HORIZONTAL_FLIP:
        raise ExamError(f'{path}: \'horizontal_flip\' must be "YES" or "NO", not {flip!r}')
    if not isinstance(views, dict) or not views:
        raise ExamError(f"{path}: 'views' must map view names (R-CC, L-CC, R-MLO, L-MLO) to PNG files")
    images = {}
    for name, file in views.items():
        view = _view(path, name)
        images[view] = _png_ref(view, _listed_file(path, file))
    return Exam(
        exam_id=str(exam_id),
        images={view: images[view] for view in View if view in images},
        missing_views=[view for view in View if view not in images],
        horizontal_flip=HORIZONTAL_FLIP[flip],
        labels=_labels(path, manifest.get("labels")),
        segmentations=_segmentations(path, manifest.get("segmentations")),
        source=path,
    )


def read_png(ref: ImageRef) -> Mammogram:
    """Decode one PNG exactly as stored (uint16)."""
    try:
        with Image.open(ref.source) as image:
            image.load()
            if image.mode not in GREY_MODES:
                raise ExamError(
                    f"{ref.source}: a {image.mode} PNG; mammograms are single-channel grey images"
                )
            pixels = np.asarray(image)
    except PNG_ERRORS as exc:
        raise ExamError(f"{ref.source}: cannot read the PNG (damaged or not a PNG)") from exc
    if pixels.min() < 0 or pixels.max() > 0xFFFF:
        raise ExamError(f"{ref.source}: pixel values outside 0..65535")
    pixels = pixels.astype(np.uint16, copy=False)
    return Mammogram(
        ref, pixels, ref.voi.or_auto(pixels), mirrored=False, orientation_source=OrientationSource.AS_STORED
    )


def _view(path: Path, name: object) -> View:
    try:
        return View(name)
    except ValueError:
        raise ExamError(f"{path}: unknown view {name!r}; use R-CC, L-CC, R-MLO or L-MLO") from None


def _listed_file(path: Path, name: object) -> Path:
    if not isinstance(name, str) or not name:
        raise ExamError(f"{path}: file names must be non-empty strings, not {name!r}")
    file = path.parent / name
    if not file.is_file():
        raise ExamError(f"{path}: lists {name}, which does not exist")
    return file


def _png_ref(view: View, file: Path) -> ImageRef:
    try:
        with Image.open(file) as image:
            mode, (width, height) = image.mode, image.size
    except PNG_ERRORS as exc:
        raise ExamError(f"{file}: cannot read the PNG header (damaged or not a PNG)") from exc
    if mode not in GREY_MODES:
        raise ExamError(f"{file}: a {mode} PNG; mammograms are single-channel grey images")
    return ImageRef(
        source=file,
        format=ImageFormat.PNG,
        laterality=view.laterality,
        position=ViewInfo(ViewCode(view.position.value), source=MANIFEST_NAME, label=view.value),
        presentation_intent=PresentationIntent.UNSPECIFIED,
        photometric=Photometric.MONOCHROME2,
        shape=(height, width),
        bits_stored=GREY_MODES[mode],
        pixel_spacing_mm=None,
        voi=Voi(),
        laterality_source=MANIFEST_NAME,
    )


def _labels(path: Path, labels: object) -> BreastLabels | None:
    if labels is None:
        return None
    if not isinstance(labels, dict) or any(labels.get(key) not in (0, 1) for key in LABEL_KEYS):
        raise ExamError(f"{path}: 'labels' must give 0 or 1 for each of {', '.join(LABEL_KEYS)}")
    return BreastLabels(*(int(labels[key]) for key in LABEL_KEYS))


def _segmentations(path: Path, segmentations: object) -> dict[View, LesionMasks]:
    if segmentations is None:
        return {}
    if not isinstance(segmentations, dict):
        raise ExamError(f"{path}: 'segmentations' must map views to {{'benign': file, 'malignant': file}}")
    masks = {}
    for name, files in segmentations.items():
        view = _view(path, name)
        if not isinstance(files, dict) or not set(files) <= set(MASK_KINDS):
            raise ExamError(
                f"{path}: the segmentations of {view.value} must be {{'benign': file, 'malignant': file}}"
            )
        benign, malignant = (
            _listed_file(path, files[kind]) if kind in files else None for kind in MASK_KINDS
        )
        masks[view] = LesionMasks(benign, malignant, MaskFrame.MODEL)
    return masks
