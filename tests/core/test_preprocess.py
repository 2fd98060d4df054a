"""Preprocessing beyond the sample exam: geometry back to the stored image, tall images, and the
robust crop for non-zero backgrounds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gmic_core.config import GMICConfig
from gmic_core.errors import PreprocessingError
from gmic_core.model.global_network import GlobalNetwork
from gmic_core.preprocess import AxisMap, Geometry, WindowNoise, crop_breast, preprocess, standardise
from tests.core.reference import read_png, sample_exam

VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")


def _breast(height: int, width: int, chest_wall_left: bool, seed: int = 0) -> np.ndarray:
    """A half-ellipse breast with textured, non-zero tissue on a zero background."""
    rows, cols = np.mgrid[:height, :width]
    depth = cols if chest_wall_left else width - 1 - cols
    inside = ((rows - height / 2) / (0.45 * height)) ** 2 + (depth / (0.8 * width)) ** 2 < 1
    texture = np.random.default_rng(seed).integers(200, 4000, size=(height, width))
    return np.where(inside, texture, 0).astype(np.uint16)


@pytest.mark.parametrize("view", VIEWS)
def test_window_pixels_map_back_to_the_stored_image(view, reference_dir):
    """Model-frame boxes inside the breast crop cover exactly the stored pixels the model saw: the
    model input there is the stored patch (mirrored for flip-at-load views) up to standardisation."""
    exam = sample_exam(reference_dir)
    stored = read_png(reference_dir / "sample_exam" / exam["views"][view])
    result = preprocess(stored, view[0], "MLO" in view)
    window = result.tensor[0].numpy()
    checked = 0
    for top, left in [(1024, 192), (1536, 256), (512, 64), (1280, 448)]:
        box = result.geometry.model_box_to_stored((top, left, top + 256, left + 256))
        if (box[2] - box[0], box[3] - box[1]) != (256, 256):
            continue
        stored_patch = stored[box[0] : box[2], box[1] : box[3]].astype(np.float64)
        if result.geometry.flipped:
            stored_patch = stored_patch[:, ::-1]
        model_patch = window[top : top + 256, left : left + 256].astype(np.float64)
        slope, intercept = np.polyfit(stored_patch.ravel(), model_patch.ravel(), 1)
        assert slope > 0
        np.testing.assert_allclose(slope * stored_patch + intercept, model_patch, atol=1e-4)
        checked += 1
    assert checked >= 2


def test_geometry_maps_saliency_cells_onto_the_stored_breast(reference_dir):
    exam = sample_exam(reference_dir)
    stored = read_png(reference_dir / "sample_exam" / exam["views"]["R-CC"])
    geometry = preprocess(stored, "R", False).geometry
    assert geometry.flipped  # R views face left in the stored file
    grid = np.zeros((46, 30), dtype=np.float32)
    grid[20, 3] = 1.0  # centred on model pixel (1280, 192): rows 1248-1312, columns 160-224
    mapped = geometry.model_map_to_stored(grid)
    assert mapped.shape == stored.shape
    rows, cols = np.nonzero(mapped)
    top, left, bottom, right = geometry.model_box_to_stored((1248, 160, 1312, 224))
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (top, bottom, left, right)
    # flipped: a model column near the chest wall lies near the stored image's right edge
    assert cols.min() > stored.shape[1] / 2


def test_saliency_cells_are_placed_on_their_receptive_field_centres():
    """With symmetric kernels the evidence a global-network cell sees is centred on model pixel
    ``(64 i, 64 j)``; the cell's area in the stored frame is centred there too."""
    network = GlobalNetwork(GMICConfig()).eval()
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.fill_(0.01)
    image = torch.ones(1, 1, 1024, 1024, requires_grad=True)
    network(image)[0, :, 8, 7].sum().backward()
    weight = image.grad[0, 0].abs().numpy()
    rows, cols = np.mgrid[:1024, :1024]
    centre = ((weight * rows).sum() / weight.sum(), (weight * cols).sum() / weight.sum())
    np.testing.assert_allclose(centre, (512, 448), atol=2)

    identity = Geometry((1024, 1024), (0, 1024, 0, 1024), False, AxisMap(0.0), AxisMap(0.0), (1024, 1024))
    grid = np.zeros((16, 16), dtype=np.float32)
    grid[8, 7] = 1.0
    lit_rows, lit_cols = np.nonzero(identity.model_map_to_stored(grid))
    np.testing.assert_allclose((lit_rows.mean(), lit_cols.mean()), centre, atol=2)


@pytest.mark.parametrize("chest_wall_left", [True, False])
def test_tall_cc_searches_the_best_row(chest_wall_left):
    """CC images taller than the window: the chosen centre maximises breast pixels in the window
    (brute force with a summed-area table), ties to the centre of mass, then the smallest row."""
    image = _breast(3400, 1500, chest_wall_left)
    image[:300] = 0  # breast tissue concentrated low, so the best window is not central
    result = preprocess(image, "L" if chest_wall_left else "R", is_mlo=False)
    top, bottom, left, right = result.crop.window_location
    cropped = image[top:bottom, left:right]
    flipped = cropped if chest_wall_left else cropped[:, ::-1]
    center_row, center_col = result.best_center
    table = np.pad((flipped > 0).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    col_lo, col_hi = (
        max(center_col - 960, 0),
        min(center_col + 960 + max(0, 960 - center_col), flipped.shape[1]),
    )
    candidates = range(1472, flipped.shape[0] - 1472 + 1)
    scores = [
        table[c + 1472, col_hi] - table[c - 1472, col_hi] - table[c + 1472, col_lo] + table[c - 1472, col_lo]
        for c in candidates
    ]
    best = max(scores)
    ties = [c for c, s in zip(candidates, scores, strict=True) if s == best]
    com = flipped.shape[0] // 2
    assert center_row == min(ties, key=lambda c: ((c - com) ** 2, c))
    assert result.tensor.shape == (1, 2944, 1920)


def test_noisy_background_crop_is_robust_with_the_option():
    clean = _breast(2400, 1400, chest_wall_left=True)
    noisy = clean.copy()
    background = clean == 0
    noisy[background] = np.random.default_rng(1).integers(1, 60, size=int(background.sum()))
    published = crop_breast(noisy, flipped=False)[0]
    assert published.window_location == (0, 2400, 0, 1400)  # the known failure: everything is breast
    robust = preprocess(noisy, "L", False, background_threshold="auto")
    reference = preprocess(clean, "L", False)
    assert robust.crop.window_location == reference.crop.window_location
    assert robust.best_center == reference.best_center
    # only the background noise within 100 pixels of the breast remains
    correlation = np.corrcoef(robust.tensor.numpy().ravel(), reference.tensor.numpy().ravel())[0, 1]
    assert correlation > 0.99


def test_blank_image_is_a_typed_error():
    with pytest.raises(PreprocessingError, match="no breast found"):
        preprocess(np.zeros((3000, 2000), np.uint16), "L", False)


def test_reduced_scale_sees_the_whole_breast():
    config = GMICConfig.at_scale(0.5)
    assert (config.saliency_height, config.saliency_width, config.crop_height) == (23, 15, 128)
    image = _breast(2900, 1800, chest_wall_left=False)
    result = preprocess(image, "R", is_mlo=True, config=config)
    assert result.tensor.shape == (1, 1472, 960)
    top, left, bottom, right = result.geometry.model_box_to_stored((0, 0, 1472, 960))
    crop = result.crop.window_location
    assert bottom - top > 0.9 * (crop[1] - crop[0])
    assert right - left > 0.9 * (crop[3] - crop[2])


def test_standardise_is_zero_mean_unit_variance():
    window = np.random.default_rng(0).random((64, 48), dtype=np.float32) * 4000
    out = standardise(window)
    assert out.dtype == np.float32
    assert abs(float(out.mean())) < 1e-5
    assert abs(float(out.std()) - 1) < 1e-5
    assert not standardise(np.zeros((4, 4), np.float32)).any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noisy_window_geometry_tracks_a_marker(seed):
    """Training-time window noise (SPEC.md 6.1) shifts and rescales the window; the Geometry still
    maps the model frame back onto the stored pixels it shows."""
    image = _breast(3300, 2100, chest_wall_left=False, seed=seed)
    image[1500:1540, 1200:1240] = 60000  # a bright square inside the breast
    result = preprocess(image, "R", True, noise=WindowNoise(), rng=np.random.RandomState(seed))
    assert result.tensor.shape == (1, 2944, 1920)
    model = result.tensor[0].numpy()
    rows, cols = np.nonzero(model > model.max() * 0.5)
    top, left, bottom, right = result.geometry.model_box_to_stored(
        (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1)
    )
    assert abs(top - 1500) <= 2
    assert abs(bottom - 1540) <= 2
    assert abs(left - 1200) <= 2
    assert abs(right - 1240) <= 2


def test_noisy_windows_are_seeded():
    image = _breast(3300, 2100, chest_wall_left=True)
    first = preprocess(image, "L", False, noise=WindowNoise(), rng=np.random.RandomState(5))
    again = preprocess(image, "L", False, noise=WindowNoise(), rng=np.random.RandomState(5))
    other = preprocess(image, "L", False, noise=WindowNoise(), rng=np.random.RandomState(6))
    assert first.geometry == again.geometry
    assert first.geometry != other.geometry
