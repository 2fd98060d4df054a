"""An exam: one image per standard view, the extra images, what is missing, and the rule that picks
among duplicates."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from gmic_core.errors import ExamError
from gmic_core.imaging.image import ImageRef, PatientIdentifiers, PresentationIntent
from gmic_core.imaging.views import Laterality, View, ViewCode

# Duplicate-view rule, first criterion: For Presentation images are what radiologists read and what
# GMIC was trained on; images that do not state an intent (Secondary Capture, CR) come next.
INTENT_PREFERENCE = {
    PresentationIntent.FOR_PRESENTATION: 0,
    PresentationIntent.UNSPECIFIED: 1,
    PresentationIntent.FOR_PROCESSING: 2,
}


@dataclass(frozen=True)
class BreastLabels:
    """Biopsy-proven findings per breast (0 or 1), as in the published exam lists."""

    left_benign: int
    left_malignant: int
    right_benign: int
    right_malignant: int

    def of(self, laterality: Laterality) -> tuple[int, int]:
        """(benign, malignant) of one breast."""
        if laterality is Laterality.LEFT:
            return self.left_benign, self.left_malignant
        return self.right_benign, self.right_malignant


class MaskFrame(StrEnum):
    """The frame a lesion mask is drawn in (DESIGN.md, Conventions)."""

    STORED = "stored"  # the image as stored in its file
    MODEL = "model"  # the 2944 x 1920 model input (the published sample exam's masks)


@dataclass(frozen=True)
class LesionMasks:
    """Mask files (0 background, non-zero lesion) of one view; None where the view has none."""

    benign: Path | None
    malignant: Path | None
    frame: MaskFrame


@dataclass(frozen=True, eq=False)
class Exam:
    """One screening exam.

    ``images`` maps each standard view present to the image chosen for it (see
    :func:`assemble_exam`); ``extra_images`` holds every other image of the study (other
    projections, modified views, unchosen duplicates); ``missing_views`` the standard views absent.
    ``horizontal_flip`` is the published exam flag: False for DICOM exams (the reader already
    mirrors to the convention), as stated by exam.json for PNG exams. ``patient`` is for display
    only and is left out of ``repr``.
    """

    exam_id: str
    images: dict[View, ImageRef]
    extra_images: list[ImageRef] = field(default_factory=list)
    missing_views: list[View] = field(default_factory=list)
    horizontal_flip: bool = False
    patient: PatientIdentifiers = field(default_factory=PatientIdentifiers, repr=False)
    labels: BreastLabels | None = None
    segmentations: dict[View, LesionMasks] = field(default_factory=dict)
    source: Path | None = None  # the folder or manifest it was read from


def selection_key(ref: ImageRef) -> tuple[int, bool, float, int, str, str]:
    """Sort key of the duplicate-view rule, best first: For Presentation before unstated intent
    before For Processing; then the latest acquisition (images without a time last); then the highest
    Instance Number; then SOP Instance UID and path, so that the choice never depends on file order."""
    time = ref.acquisition_time
    seconds = (time - datetime(1900, 1, 1)).total_seconds() if time is not None else 0.0
    return (
        INTENT_PREFERENCE[ref.presentation_intent],
        time is None,
        -seconds,
        -(ref.instance_number or 0),
        ref.sop_instance_uid or "",
        str(ref.source),
    )


def assemble_exam(exam_id: str, refs: Iterable[ImageRef], source: Path | None = None) -> Exam:
    """Group the images of one study. Raises ExamError when they name different patients."""
    refs = list(refs)
    if not refs:
        raise ExamError(f"exam {exam_id}: no images")
    if len({ref.patient.patient_id for ref in refs}) > 1:
        raise ExamError(
            f"exam {exam_id}: its images name different patients (Patient ID differs); "
            "the study was not loaded, check the export"
        )
    candidates: dict[View, list[ImageRef]] = defaultdict(list)
    extra: list[ImageRef] = []
    for ref in refs:
        if ref.view is None:
            extra.append(ref)
        else:
            candidates[ref.view].append(ref)
    images: dict[View, ImageRef] = {}
    for view in View:
        ranked = sorted(candidates[view], key=selection_key)
        if ranked:
            images[view] = ranked[0]
            extra.extend(ranked[1:])
    extra.sort(key=lambda ref: (ref.laterality.value, ref.position.code.value, selection_key(ref)))
    chosen = [*images.values(), *extra]
    return Exam(
        exam_id=exam_id,
        images=images,
        extra_images=extra,
        missing_views=[view for view in View if view not in images],
        patient=chosen[0].patient,
        source=source,
    )


def not_scored(exam: Exam) -> list[tuple[Path, str]]:
    """(path, message) for each extra image that is not a copy or duplicate of a standard view: spot
    compression, magnification and other modified views, other projections. They are kept and shown,
    never scored; the message says why, so that a site sees what the model did not read."""
    reported = []
    for ref in exam.extra_images:
        if ref.view is not None:
            continue  # a duplicate of a standard view, the decode-time fallback of the one chosen
        if ref.position.modifiers:
            what = " and ".join(sorted(modifier.value for modifier in ref.position.modifiers)) + " view"
        elif ref.position.code is ViewCode.OTHER:
            what = f"view {ref.position.label!r}" if ref.position.label else "no view stated"
        else:
            what = f"{ref.position.code.value} projection"
        reported.append((ref.source, f"{ref.source}: not scored: {what}, not a standard screening view"))
    return reported
