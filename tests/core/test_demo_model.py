"""The embedded demo model: what the workstation loads when started with no arguments."""

from pathlib import Path

import pytest
import torch

from gmic_core.imaging.views import Laterality
from gmic_core.inference import Predictor, ViewImage
from gmic_core.model import load_checkpoint
from gmic_core.synthetic import SynthesisConfig, generate_exam

DEMO_MODEL = Path(__file__).resolve().parents[2] / "resources" / "models" / "gmic-demo-r18.pt"


def test_the_demo_checkpoint_is_small_half_precision_and_labelled_not_for_clinical_use():
    assert DEMO_MODEL.stat().st_size <= 30 * 2**20
    stored = torch.load(DEMO_MODEL, map_location="cpu", weights_only=True)
    floats = [tensor for tensor in stored["state_dict"].values() if tensor.is_floating_point()]
    assert floats
    assert all(tensor.dtype == torch.float16 for tensor in floats)
    loaded = load_checkpoint(DEMO_MODEL)
    assert "NOT FOR CLINICAL USE" in loaded.card.intended_use
    assert "synthetic" in loaded.card.training_data
    assert loaded.config.local_backbone == "resnet18"
    assert loaded.config.input_scale == 0.5
    assert 0.5 < loaded.card.performance["test_breast_malignant_auc"] <= 1


@pytest.mark.slow
def test_the_demo_model_reads_a_full_size_synthetic_exam():
    exam = generate_exam(seed=7, index=0, config=SynthesisConfig(malignant_fraction=0.5))
    predictor = Predictor([load_checkpoint(DEMO_MODEL)], device="cpu")
    result = predictor.predict(
        exam.exam_id, {view: ViewImage(image.pixels) for view, image in exam.views.items()}
    )
    for side in (Laterality.RIGHT, Laterality.LEFT):
        breast = result.breasts[side]
        assert 0 <= breast.benign <= 1
        assert 0 <= breast.malignant <= 1
    first = next(iter(result.views.values()))
    assert first.saliency.shape[0] == 2
