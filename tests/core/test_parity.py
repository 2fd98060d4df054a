"""The published GMIC, reproduced: preprocessing and model against the published outputs on the
real sample exam (weights make_state_dict(2), t = 0.03)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gmic_core.preprocess import PreprocessedImage, preprocess
from tests.core.reference import read_png, sample_exam, seeded_model

VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")
FLOAT16_RTOL = 2.0**-11  # the published patches are stored as float16


@pytest.fixture(scope="module")
def expected(reference_dir):
    return (
        json.loads((reference_dir / "expected_seed2_t003.json").read_text()),
        np.load(reference_dir / "expected_seed2_t003.npz"),
    )


@pytest.fixture(scope="module")
def preprocessed(reference_dir) -> dict[str, PreprocessedImage]:
    exam = sample_exam(reference_dir)
    flip = exam["horizontal_flip"] == "YES"
    return {
        view: preprocess(
            read_png(reference_dir / "sample_exam" / exam["views"][view]),
            view[0],
            "MLO" in view,
            horizontal_flip=flip,
        )
        for view in VIEWS
    }


@pytest.fixture(scope="module")
def outputs(reference_dir, preprocessed):
    model = seeded_model(reference_dir, seed=2, top_t=0.03)
    with torch.no_grad():
        return model(torch.stack([preprocessed[view].tensor for view in VIEWS]))


@pytest.mark.parametrize("view", VIEWS)
def test_preprocessing_metadata_is_exact(view, preprocessed, expected):
    published = expected[0]["views"][view]["preprocessing_metadata"]
    result = preprocessed[view]
    assert list(result.crop.window_location) == published["window_location"]
    assert [list(result.crop.rightmost_points[0]), result.crop.rightmost_points[1]] == published[
        "rightmost_points"
    ]
    assert [result.crop.bottommost_points[0], list(result.crop.bottommost_points[1])] == published[
        "bottommost_points"
    ]
    assert result.crop.distance_from_starting_side == published["distance_from_starting_side"]
    assert list(result.best_center) == published["best_center"]


@pytest.mark.parametrize("view", VIEWS)
def test_model_input_matches(view, preprocessed, expected):
    summary, arrays = expected
    tensor = preprocessed[view].tensor
    assert tensor.shape == (1, 2944, 1920)
    assert tensor.dtype == torch.float32
    thumbnail = F.avg_pool2d(tensor[None], 8)[0, 0].numpy()
    np.testing.assert_allclose(thumbnail, arrays[f"{view.replace('-', '_')}/input_thumb8"], atol=1e-3, rtol=0)
    assert float(tensor.double().mean()) == pytest.approx(summary["views"][view]["input_mean"], abs=1e-6)
    assert float(tensor.double().std(unbiased=False)) == pytest.approx(
        summary["views"][view]["input_std"], abs=1e-6
    )


@pytest.mark.parametrize("view", VIEWS)
def test_model_outputs_match(view, outputs, expected):
    arrays = expected[1]
    index = VIEWS.index(view)
    key = view.replace("-", "_")
    np.testing.assert_array_equal(outputs.roi_locations[index].numpy(), arrays[f"{key}/patch_locations"])
    for name in ("saliency", "y_global", "y_local", "y_fusion", "attention"):
        np.testing.assert_allclose(
            getattr(outputs, name)[index].numpy(), arrays[f"{key}/{name}"], atol=1e-4, rtol=0, err_msg=name
        )
    np.testing.assert_allclose(
        outputs.patches[index].numpy(),
        arrays[f"{key}/patches"].astype(np.float32),
        atol=1e-4,
        rtol=FLOAT16_RTOL,
    )


def test_json_summary_agrees_with_arrays(outputs, expected):
    summary = expected[0]["views"]
    for index, view in enumerate(VIEWS):
        assert outputs.roi_locations[index].tolist() == summary[view]["patch_locations"]
        np.testing.assert_allclose(outputs.y_fusion[index].numpy(), summary[view]["y_fusion"], atol=1e-4)


def test_mirrored_exam_shows_the_published_off_by_one(reference_dir):
    """SPEC.md 5(g): stored mirrored with horizontal_flip 'YES', the centre columns shift by the
    published +1 of flip-at-load images: -210, -211, -30, -6."""
    exam = sample_exam(reference_dir)
    columns = []
    for view in VIEWS:
        image = read_png(reference_dir / "sample_exam" / exam["views"][view])[:, ::-1]
        columns.append(preprocess(image, view[0], "MLO" in view, horizontal_flip=True).best_center[1])
    assert columns == [-210, -211, -30, -6]
