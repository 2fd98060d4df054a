"""Stored mammogram -> GMIC model input, as the published pipeline does it (SPEC.md section 5).

Three steps: the breast crop of the stored image (5a), the optimal window centre on the cropped
image flipped to face right (5b, 5c), and the window crop, zero padding and per-image
standardisation (5d, 5e). :class:`Geometry` records everything needed to map model-frame points,
boxes and maps back to stored-image pixels (5f).

The published crop calls every non-zero pixel breast. Images whose background is not exactly zero
(noise, burnt-in offsets, some For Processing images) then crop to the whole image. Pass
``background_threshold="otsu"`` (or a number) for the robust variant: pixels at or below the
threshold count as background for the crop, and every pixel outside the retained breast region is
set to zero before the window is placed, so the rest of the published pipeline applies unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from skimage.filters import threshold_otsu

from gmic_core.config import GMICConfig
from gmic_core.errors import PreprocessingError

# SPEC.md section 5(a): the published crop's defaults.
CROP_ITERATIONS = 100
CROP_BUFFER = 50
RIGHTMOST_SKIP_FRACTION = 3  # the rightmost point is searched below the top third
STANDARDISATION_EPS = 1e-5  # SPEC.md section 5(e)

BackgroundThreshold = float | Literal["otsu"] | None


@dataclass(frozen=True)
class CropMetadata:
    """The published crop metadata (SPEC.md 5a), names and conventions as published.

    window_location is (top, bottom, left, right) in the stored frame; the point columns are in the
    flipped (right-facing) cropped frame, with the published +1 for flip-at-load images.
    """

    window_location: tuple[int, int, int, int]
    rightmost_points: tuple[tuple[int, int], int]
    bottommost_points: tuple[int, tuple[int, int]]
    distance_from_starting_side: int


@dataclass(frozen=True)
class Geometry:
    """Maps the model frame (the input window) to the stored frame.

    A model pixel (r, c) lies at (r + window_origin[0], c + window_origin[1]) in the cropped image
    after the flip and after resampling by ``scale``; it is padding when that falls outside
    ``cropped_shape`` (scaled). Unflip, unscale, and add the crop's top-left corner to reach the
    stored image.
    """

    stored_shape: tuple[int, int]
    crop_box: tuple[int, int, int, int]  # top, bottom, left, right (exclusive) in the stored frame
    flipped: bool
    scale: float
    window_origin: tuple[int, int]
    model_shape: tuple[int, int]

    @property
    def cropped_shape(self) -> tuple[int, int]:
        top, bottom, left, right = self.crop_box
        return bottom - top, right - left

    @property
    def scaled_cropped_shape(self) -> tuple[int, int]:
        return _scaled_shape(self.cropped_shape, self.scale)

    def model_rows_to_stored(self, rows: np.ndarray) -> np.ndarray:
        """Stored row (float, continuous coordinates) of model-frame row coordinates."""
        return (np.asarray(rows, dtype=np.float64) + self.window_origin[0]) / self.scale + self.crop_box[0]

    def model_cols_to_stored(self, cols: np.ndarray) -> np.ndarray:
        """Stored column (continuous coordinates) of model-frame column coordinates."""
        scaled_width = self.scaled_cropped_shape[1]
        flipped_cols = np.asarray(cols, dtype=np.float64) + self.window_origin[1]
        if self.flipped:
            flipped_cols = scaled_width - flipped_cols
        return flipped_cols / self.scale + self.crop_box[2]

    def model_box_to_stored(self, box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
        """A model-frame box (top, left, bottom, right; exclusive) as the stored-frame box it covers,
        clipped to the breast crop (padding has no stored pixels)."""
        top, left, bottom, right = box
        rows = self.model_rows_to_stored(np.array([top, bottom]))
        cols = np.sort(self.model_cols_to_stored(np.array([left, right])))
        crop_top, crop_bottom, crop_left, crop_right = self.crop_box
        return (
            int(np.clip(np.round(rows[0]), crop_top, crop_bottom)),
            int(np.clip(np.round(cols[0]), crop_left, crop_right)),
            int(np.clip(np.round(rows[1]), crop_top, crop_bottom)),
            int(np.clip(np.round(cols[1]), crop_left, crop_right)),
        )

    def model_map_to_stored(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Resample a map covering the model frame (any grid, e.g. the 46 x 30 saliency) onto the
        stored image by nearest neighbour, ``fill`` outside the window."""
        values = np.asarray(values)
        grid_h, grid_w = values.shape[-2:]
        model_h, model_w = self.model_shape
        stored_rows = np.arange(self.stored_shape[0]) + 0.5
        stored_cols = np.arange(self.stored_shape[1]) + 0.5
        model_rows = (stored_rows - self.crop_box[0]) * self.scale - self.window_origin[0]
        flipped_cols = (stored_cols - self.crop_box[2]) * self.scale
        if self.flipped:
            flipped_cols = self.scaled_cropped_shape[1] - flipped_cols
        model_cols = flipped_cols - self.window_origin[1]
        grid_rows = np.floor(model_rows * grid_h / model_h).astype(np.int64)
        grid_cols = np.floor(model_cols * grid_w / model_w).astype(np.int64)
        crop_top, crop_bottom, crop_left, crop_right = self.crop_box
        row_ok = (grid_rows >= 0) & (grid_rows < grid_h)
        row_ok &= (np.arange(self.stored_shape[0]) >= crop_top) & (np.arange(self.stored_shape[0]) < crop_bottom)
        col_ok = (grid_cols >= 0) & (grid_cols < grid_w)
        col_ok &= (np.arange(self.stored_shape[1]) >= crop_left) & (np.arange(self.stored_shape[1]) < crop_right)
        out = values[..., np.clip(grid_rows, 0, grid_h - 1)[:, None], np.clip(grid_cols, 0, grid_w - 1)[None, :]]
        return np.where(row_ok[:, None] & col_ok[None, :], out, np.asarray(fill, dtype=out.dtype))


@dataclass(frozen=True)
class PreprocessedImage:
    """The standardised model input ``[1, H, W]`` (float32) and how it was made."""

    tensor: torch.Tensor
    geometry: Geometry
    crop: CropMetadata
    best_center: tuple[int, int]


def flip_at_load(laterality: str, horizontal_flip: bool) -> bool:
    """Whether the published loader mirrors this view (SPEC.md 5b): R views of an exam stored with
    ``horizontal_flip == 'NO'`` (the usual case: R views face left), L views when it is ``'YES'``."""
    return (laterality == "R") != horizontal_flip


def crop_breast(
    image: np.ndarray,
    flipped: bool,
    background_threshold: BackgroundThreshold = None,
) -> tuple[CropMetadata, np.ndarray]:
    """SPEC.md 5(a): the published breast crop. Returns the metadata and the dilated breast region
    ``D`` (bool, stored frame) the crop was derived from."""
    height, width = image.shape
    breast = image > _background_level(image, background_threshold)
    padded = np.pad(breast, 1)
    # A pixel survives n erosions by the 4-neighbour cross iff its city-block distance to the
    # nearest background pixel, outside the image included, exceeds n.
    survivors = ndimage.distance_transform_cdt(padded, metric="taxicab")[1:-1, 1:-1] > CROP_ITERATIONS
    labels, count = ndimage.label(survivors)  # 4-connectivity; labels in raster order of first pixel
    if count == 0:
        raise PreprocessingError(
            "no breast found: nothing is left after removing a 100-pixel border from the non-background "
            "pixels (is the image blank, very small, or is its background not zero?)"
        )
    largest = int(np.argmax(np.bincount(labels.ravel())[1:])) + 1  # ties: lowest label
    component = labels == largest
    region = ndimage.distance_transform_cdt(~component, metric="taxicab") <= CROP_ITERATIONS
    rows = np.flatnonzero(region.any(axis=1))
    cols = np.flatnonzero(region.any(axis=0))
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    bottom_row = bottom - 1
    bottom_cols = np.flatnonzero(region[bottom_row])
    top -= min(top, CROP_BUFFER)
    bottom += min(height - bottom, CROP_BUFFER)
    distance = width - right if flipped else left
    if flipped:
        left -= min(left, CROP_BUFFER)
    else:
        right += min(width - right, CROP_BUFFER)
    converted = (right - bottom_cols) if flipped else (bottom_cols - left)  # published +1 when flipped
    cropped_region = region[top:bottom, left:right]
    crop_h, crop_w = cropped_region.shape
    band = cropped_region[crop_h // RIGHTMOST_SKIP_FRACTION :]
    band_cols = np.flatnonzero(band.any(axis=0))
    if band_cols.size == 0:
        raise PreprocessingError("no breast found in the lower two thirds of the image")
    extreme = int(band_cols[0] if flipped else band_cols[-1])
    extreme_rows = np.flatnonzero(band[:, extreme]) + crop_h // RIGHTMOST_SKIP_FRACTION
    metadata = CropMetadata(
        window_location=(top, bottom, left, right),
        rightmost_points=((int(extreme_rows[0]), int(extreme_rows[-1])), crop_w - extreme if flipped else extreme),
        bottommost_points=(bottom_row - top, (int(converted.min()), int(converted.max()))),
        distance_from_starting_side=int(distance),
    )
    return metadata, region


def _background_level(image: np.ndarray, background_threshold: BackgroundThreshold) -> float:
    if background_threshold is None:
        return 0
    if background_threshold == "otsu":
        return float(threshold_otsu(image[::4, ::4]))
    return float(background_threshold)


def best_center(
    flipped_crop: np.ndarray, metadata: CropMetadata, is_mlo: bool, window: tuple[int, int], scale: float = 1.0
) -> tuple[int, int]:
    """SPEC.md 5(c): the window centre (row, column) in the flipped cropped image."""
    win_h, win_w = window
    half_h, half_w = win_h // 2, win_w // 2
    crop_h, crop_w = flipped_crop.shape
    rightmost_col = int(round(metadata.rightmost_points[1] * scale))
    center_col = rightmost_col - half_w - 1
    if is_mlo:
        bottom_row = int(round(metadata.bottommost_points[0] * scale))
        occupied = np.flatnonzero((flipped_crop[:, crop_w - min(win_w, crop_w) :] > 0).any(axis=1))
        if occupied.size:
            bottom_row = min(bottom_row, int(occupied[-1]))
        return bottom_row - half_h - 1, center_col
    if crop_h <= win_h:
        return crop_h // 2, center_col
    left0 = center_col - half_w
    shift = max(0, -left0)
    left, right = max(left0, 0), min(center_col + half_w + shift, crop_w)
    per_row = np.count_nonzero(flipped_crop[:, left:right] > 0, axis=1)
    cumulative = np.concatenate(([0], np.cumsum(per_row)))
    centers = np.arange(half_h, crop_h - half_h + 1)
    scores = cumulative[centers + half_h] - cumulative[centers - half_h]
    distance = (centers - crop_h // 2) ** 2  # the column is the same for every candidate
    order = np.lexsort((centers, distance, -scores))
    return int(centers[order[0]]), center_col


def place_window(
    flipped_crop: np.ndarray, center: tuple[int, int], is_mlo: bool, window: tuple[int, int]
) -> tuple[np.ndarray, tuple[int, int]]:
    """SPEC.md 5(d) without noise: the float32 window of the flipped crop, zero-padded, and the
    window's origin in the crop's frame (negative where padding lies above or left)."""
    win_h, win_w = window
    crop_h, crop_w = flipped_crop.shape
    pad_top = 0
    if crop_h < win_h:
        pad_top = 0 if is_mlo else (win_h - crop_h) // 2
        padded_h = win_h
    else:
        padded_h = crop_h
    padded_w = max(crop_w, win_w)
    top = int(np.clip(center[0] - win_h // 2, 0, padded_h - win_h))
    left = int(np.clip(center[1] - win_w // 2, 0, padded_w - win_w))
    origin = (top - pad_top, left)
    out = np.zeros(window, dtype=np.float32)
    src_top, src_left = max(origin[0], 0), max(origin[1], 0)
    src_bottom, src_right = min(origin[0] + win_h, crop_h), min(origin[1] + win_w, crop_w)
    out[src_top - origin[0] : src_bottom - origin[0], src_left - origin[1] : src_right - origin[1]] = flipped_crop[
        src_top:src_bottom, src_left:src_right
    ]
    return out, origin


def standardise(window: np.ndarray) -> np.ndarray:
    """SPEC.md 5(e): per-image standardisation with numpy's float32 reductions, padding included.

    The standard deviation is taken of the already centred values, which is what reproduces the
    published inputs bit for bit.
    """
    centred = window - window.mean()
    return centred / np.maximum(centred.std(), np.float32(STANDARDISATION_EPS))


def preprocess(
    image: np.ndarray,
    laterality: str,
    is_mlo: bool,
    config: GMICConfig | None = None,
    horizontal_flip: bool = False,
    background_threshold: BackgroundThreshold = None,
) -> PreprocessedImage:
    """The published test-time preprocessing of one stored view.

    ``laterality`` is ``"L"`` or ``"R"``; ``horizontal_flip`` is the published exam flag (``'YES'``
    when the exam is stored mirrored relative to the usual orientation). With a config whose
    ``input_scale`` is below 1, the cropped breast is resampled (area average) before the window is
    placed, so a reduced-size model still sees the whole breast.
    """
    config = config or GMICConfig()
    if image.ndim != 2:
        raise PreprocessingError(f"expected a 2-D grey image, got an array of shape {image.shape}")
    flipped = flip_at_load(laterality, horizontal_flip)
    metadata, region = crop_breast(image, flipped, background_threshold)
    top, bottom, left, right = metadata.window_location
    cropped = image[top:bottom, left:right]
    if background_threshold is not None:
        cropped = np.where(region[top:bottom, left:right], cropped, 0)
    oriented = cropped[:, ::-1] if flipped else cropped
    oriented = _resample(oriented, config.input_scale)
    window = (config.input_height, config.input_width)
    center = best_center(oriented, metadata, is_mlo, window, config.input_scale)
    pixels, origin = place_window(oriented.astype(np.float32, copy=False), center, is_mlo, window)
    geometry = Geometry(
        stored_shape=(int(image.shape[0]), int(image.shape[1])),
        crop_box=metadata.window_location,
        flipped=flipped,
        scale=config.input_scale,
        window_origin=origin,
        model_shape=window,
    )
    tensor = torch.from_numpy(standardise(pixels)).unsqueeze(0)
    return PreprocessedImage(tensor, geometry, metadata, center)


def _scaled_shape(shape: tuple[int, int], scale: float) -> tuple[int, int]:
    return max(1, int(round(shape[0] * scale))), max(1, int(round(shape[1] * scale)))


def _resample(image: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return image
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    resized = F.interpolate(tensor, size=_scaled_shape(image.shape, scale), mode="area")
    return resized[0, 0].numpy()
