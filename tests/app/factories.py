"""Model results for the store and study tests, without running a model: random but well-formed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from gmic_core.imaging.views import PUBLISHED_VIEW_ORDER, Laterality
from gmic_core.inference import ExamResult, ModelIdentity, ViewResult, breast_results
from gmic_core.preprocess import AxisMap, Geometry
from tests.core import dicom_factory

IDENTITY = ModelIdentity(
    names=("sample_model_1", "sample_model_2"),
    checkpoint_sha256=("a" * 64, "b" * 64),
    top_t=(0.02, 0.03),
    precision="fp32",
    device="CPU (2 threads)",
    tta=0,
)


def fake_exam_result(
    exam_id: str,
    seed: int = 0,
    malignant: dict[Laterality, float] | None = None,
    identity: ModelIdentity = IDENTITY,
) -> ExamResult:
    """A four-view result; ``malignant`` fixes each breast's malignant probability (both views)."""
    rng = np.random.default_rng(seed)
    views = {}
    for view in PUBLISHED_VIEW_ORDER:
        wanted = (malignant or {}).get(view.laterality)
        fusion = (float(rng.random()), float(rng.random()) if wanted is None else wanted)
        geometry = Geometry(
            stored_shape=(4096, 3328),
            crop_box=(10, 4000, 0, 2500),
            flipped=view.laterality is Laterality.RIGHT,
            rows=AxisMap(12.5, 1.0),
            cols=AxisMap(-3.0, 1.0),
            model_shape=(2944, 1920),
        )
        views[view] = ViewResult(
            view=view,
            y_global=(float(rng.random()), float(rng.random())),
            y_local=(float(rng.random()), float(rng.random())),
            y_fusion=fusion,
            saliency=rng.random((2, 46, 30), dtype=np.float32),
            attention=tuple(float(a) for a in rng.dirichlet(np.ones(6))),
            patch_locations=tuple((int(r), int(c)) for r, c in rng.integers(0, 1700, (6, 2))),
            patch_outside_image=(False,) * 6,
            roi_boxes=tuple(
                (int(r), int(c), int(r) + 256, int(c) + 256) for r, c in rng.integers(0, 3000, (6, 2))
            ),
            roi_member=(0, 0, 0, 1, 1, 1),
            geometry=geometry,
        )
    return ExamResult(exam_id, views, breast_results(views), identity, {"preprocess": 0.25, "forward": 1.5})


def incoming_with_unusable_files(exams: Path, folder: Path) -> Path:
    """``folder`` holding the first three exams of a synthetic set, a truncated copy of one of their
    views (``damaged.dcm``) and a chest radiograph (``chest.dcm``)."""
    for index in range(3):
        shutil.copytree(exams / f"exam_{index:04d}", folder / f"exam_{index:04d}")
    whole = (folder / "exam_0000" / "L-CC.dcm").read_bytes()
    (folder / "damaged.dcm").write_bytes(whole[: len(whole) - 5000])
    chest = dicom_factory.relabelled(
        dicom_factory.dataset(),
        SOPClassUID="1.2.840.10008.5.1.4.1.1.7",
        Modality="CR",
        BodyPartExamined="CHEST",
    )
    dicom_factory.save(chest, folder / "chest.dcm")
    return folder
