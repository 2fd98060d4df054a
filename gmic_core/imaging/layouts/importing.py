"""A layout's dataset written as this project's labelled manifest (``manifest.csv`` and ``masks/``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from gmic_core.dataset import MANIFEST_NAME, ManifestImage, write_manifest
from gmic_core.errors import DicomError, ExamError
from gmic_core.imaging.image import ImageRef
from gmic_core.imaging.layouts.common import LayoutDataset, LayoutExam, mask_in_stored_frame
from gmic_core.imaging.scan import load_image
from gmic_core.imaging.views import View

CLASSES = ("benign", "malignant")


@dataclass(frozen=True)
class ImportSummary:
    """What :func:`import_layout` wrote: the manifest, how many exams and images, breasts per class
    (``benign``, ``malignant``: breasts with that label; ``normal``: breasts with neither), and every
    image or file left out with the reason (reading the tree, then importing)."""

    manifest: Path
    exams: int
    images: int
    breasts: dict[str, int]
    left_out: list[tuple[Path, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The summary as ``gmic dataset import`` prints it."""
        breasts = ", ".join(f"{count} {name}" for name, count in self.breasts.items())
        lines = [f"{self.exams} exams, {self.images} images; breasts: {breasts}", str(self.manifest)]
        if self.left_out:
            lines.append(f"{len(self.left_out)} images or files left out:")
            lines += [f"  {reason}" for _, reason in self.left_out]
        return lines


def import_layout(dataset: LayoutDataset, out_dir: Path | str) -> ImportSummary:
    """Write ``dataset`` as ``OUT_DIR/manifest.csv``: one row per standard view of a breast with a
    label, the source DICOM files by absolute path (nothing copied), masks as PNGs under
    ``OUT_DIR/masks`` in the stored frame. Raises ExamError when the dataset's label files are not
    there or nothing can be imported."""
    if not dataset.label_files:
        raise ExamError(
            f"{dataset.root}: no label files of {dataset.kind} found under it; importing needs them "
            "(see docs/validation.md); predicting does not"
        )
    out = Path(out_dir)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    left_out = list(dataset.left_out)
    images: list[ManifestImage] = []
    breasts: Counter[str] = Counter({"benign": 0, "malignant": 0, "normal": 0})
    exam_ids = set()
    for layout_exam in dataset.exams:
        exam = layout_exam.exam
        left_out += [
            (ref.source, f"{ref.source}: {_extra_reason(ref)}; not imported") for ref in exam.extra_images
        ]
        counted = set()
        for view, ref in exam.images.items():
            labels = layout_exam.breast_labels.get(view.laterality)
            if labels is None:
                left_out.append(
                    (
                        ref.source,
                        f"{ref.source}: the {view.laterality.name.lower()} breast of exam {exam.exam_id} "
                        f"has no label in {', '.join(file.name for file in dataset.label_files)}; not imported "
                        "(a breast without a label is not known to be normal)",
                    )
                )
                continue
            try:
                masks = _write_masks(layout_exam, view, ref, out)
            except (DicomError, ExamError) as error:
                left_out.append((ref.source, f"{error}; the image was not imported"))
                continue
            images.append(
                ManifestImage(
                    exam_id=exam.exam_id,
                    view=view,
                    path=ref.source.resolve(),
                    split=layout_exam.split,
                    benign=labels[0],
                    malignant=labels[1],
                    mask_benign=masks.get("benign"),
                    mask_malignant=masks.get("malignant"),
                    lesions=layout_exam.lesions.get(view.laterality, ()),
                )
            )
            exam_ids.add(exam.exam_id)
            if view.laterality not in counted:
                counted.add(view.laterality)
                breasts.update(name for name, value in zip(CLASSES, labels, strict=True) if value)
                breasts["normal"] += not any(labels)
    if not images:
        raise ExamError(f"{dataset.root}: no labelled standard view to import")
    manifest = write_manifest(out / MANIFEST_NAME, images)
    return ImportSummary(
        manifest, len(exam_ids), len(images), dict(breasts), sorted(left_out, key=lambda item: item[0])
    )


def _extra_reason(ref: ImageRef) -> str:
    label = ref.position.label or ref.position.code.value
    if ref.view is not None:
        return f"another image of {ref.view.value} (the duplicate-view rule chose one)"
    if ref.position.source == "":
        return "no view in the header, the layout's names or the pixels (CC or MLO is not guessed)"
    return f"not one of the standard views CC and MLO ({label})"


def _write_masks(layout_exam: LayoutExam, view: View, ref: ImageRef, out: Path) -> dict[str, Path]:
    """The view's findings drawn in the file frame, carried into the stored frame, one PNG per class."""
    findings = [finding for finding in layout_exam.findings if finding.view is view]
    if not findings:
        return {}
    image = load_image(ref)
    written = {}
    for malignant, name in ((False, "benign"), (True, "malignant")):
        regions = [finding.region for finding in findings if finding.malignant is malignant]
        if not regions:
            continue
        mask = np.logical_or.reduce([region.rasterise(ref.shape) for region in regions])
        path = out / "masks" / f"{_file_name(layout_exam.exam.exam_id)}_{view.value}_{name}.png"
        Image.fromarray(mask_in_stored_frame(mask, image).astype(np.uint8) * 255).save(path, optimize=True)
        written[name] = path
    return written


def _file_name(exam_id: str) -> str:
    return "".join(character if character.isalnum() or character in "-_." else "_" for character in exam_id)
