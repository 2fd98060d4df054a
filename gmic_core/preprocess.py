"""Stored mammogram -> GMIC model input, as the published pipeline does it (SPEC.md section 5).

Three steps: the breast crop of the stored image (5a), the optimal window centre on the cropped
image flipped to face right (5b, 5c), and the window crop, zero padding and per-image
standardisation (5d, 5e). :class:`Geometry` records everything needed to map model-frame points,
boxes and maps back to stored-image pixels (5f).

The published crop calls every non-zero pixel breast. Images whose background is not exactly zero
(noise, burnt-in offsets, some For Processing images) then crop to the whole image. Pass
``background_threshold="auto"`` (or a number) for the robust variant: the background level is
estimated from the strip of columns farthest from the chest wall (its median plus six robust
standard deviations), pixels at or below it count as background for the crop, and every pixel outside the retained breast region is
set to zero before the window is placed, so the rest of the published pipeline applies unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from gmic_core.config import GMICConfig
from gmic_core.errors import PreprocessingError
from gmic_core.imaging.image import PixelGrid

# SPEC.md section 5(a): the published crop's defaults.
CROP_ITERATIONS = 100
CROP_BUFFER = 50
RIGHTMOST_SKIP_FRACTION = 3  # the rightmost point is searched below the top third
BACKGROUND_STRIP_FRACTION = 50  # robust crop: the outermost 2 % of columns on the nipple side
MAD_TO_SIGMA = 1.4826  # median absolute deviation of a normal distribution, in standard deviations
STANDARDISATION_EPS = 1e-5  # SPEC.md section 5(e)

BackgroundThreshold = float | Literal["auto"] | None


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
class AxisMap:
    """Model-frame coordinate ``m`` -> ``offset + m * step`` in the flipped cropped image, in stored
    pixels from the crop box's edge (the crop's own pixels, unless it was decoded at a reduced
    resolution level). Coordinates are continuous: pixel ``i`` spans ``[i, i + 1)``."""

    offset: float
    step: float = 1.0

    def to_crop(self, model: np.ndarray) -> np.ndarray:
        return self.offset + np.asarray(model, dtype=np.float64) * self.step

    def to_model(self, crop: np.ndarray) -> np.ndarray:
        return (np.asarray(crop, dtype=np.float64) - self.offset) / self.step


@dataclass(frozen=True)
class Geometry:
    """Maps the model frame (the input window) to the stored frame (SPEC.md 5f, generalised to
    resampling and window-size noise).

    A model coordinate maps through ``rows``/``cols`` into the flipped cropped image; it is padding
    when it falls outside the crop. Unflipping the column and adding the crop's top-left corner
    gives the stored image's coordinate.
    """

    stored_shape: tuple[int, int]
    # top, bottom, left, right (exclusive) in the stored frame; a crop of an image decoded at a
    # reduced resolution level may reach past the bottom and right edges by less than its factor
    crop_box: tuple[int, int, int, int]
    flipped: bool
    rows: AxisMap
    cols: AxisMap
    model_shape: tuple[int, int]

    def model_rows_to_stored(self, rows: np.ndarray) -> np.ndarray:
        """Stored row coordinates (continuous) of model-frame row coordinates."""
        return self.rows.to_crop(rows) + self.crop_box[0]

    def model_cols_to_stored(self, cols: np.ndarray) -> np.ndarray:
        """Stored column coordinates (continuous) of model-frame column coordinates."""
        crop_cols = self.cols.to_crop(cols)
        if self.flipped:
            crop_cols = (self.crop_box[3] - self.crop_box[2]) - crop_cols
        return crop_cols + self.crop_box[2]

    def model_box_to_stored(self, box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
        """A model-frame box (top, left, bottom, right; exclusive) as the stored-frame box it covers,
        clipped to the breast crop (padding has no stored pixels)."""
        top, left, bottom, right = box
        rows = self.model_rows_to_stored(np.array([top, bottom]))
        cols = np.sort(self.model_cols_to_stored(np.array([left, right])))
        crop_top, crop_bottom, crop_left, crop_right = self.crop_box
        crop_bottom, crop_right = (
            min(crop_bottom, self.stored_shape[0]),
            min(crop_right, self.stored_shape[1]),
        )
        return (
            int(np.clip(np.round(rows[0]), crop_top, crop_bottom)),
            int(np.clip(np.round(cols[0]), crop_left, crop_right)),
            int(np.clip(np.round(rows[1]), crop_top, crop_bottom)),
            int(np.clip(np.round(cols[1]), crop_left, crop_right)),
        )

    def model_box_covers_image(self, box: tuple[float, float, float, float]) -> bool:
        """Whether a model-frame box covers any stored pixel. The published ROI selection may place a
        patch wholly in the window's padding, where :meth:`model_box_to_stored` clips it to a box of
        zero area."""
        top, left, bottom, right = self.model_box_to_stored(box)
        return bottom > top and right > left

    def model_map_to_stored(
        self, values: np.ndarray, fill: float = 0.0, stored_shape: tuple[int, int] | None = None
    ) -> np.ndarray:
        """Resample a map over the model frame (the 46 x 30 saliency grid, or any grid of the same
        stride, with any leading dimensions) onto the stored image by nearest neighbour (paper
        section 3.5), ``fill`` outside the window and the crop. ``stored_shape`` renders onto a
        proportionally downsampled stored image.

        The value of cell ``(i, j)`` describes the image around its receptive-field centre, model
        pixel ``(s i, s j)`` for the grid's stride ``s``, to within two pixels: the strided
        convolutions (7x7 with padding 3, 3x3 with padding 1) centre output ``m`` on input ``2m``,
        and only the unpadded stem pool adds one. Each pixel takes the cell whose centre is nearest,
        so a cell covers ``[s i - s/2, s i + s/2)``, not ``[s i, s i + s)``, which would displace
        every map by half a cell down and towards the nipple.
        """
        values = np.asarray(values)
        grid_h, grid_w = values.shape[-2:]
        out_h, out_w = stored_shape or self.stored_shape
        stored_rows = (np.arange(out_h) + 0.5) * self.stored_shape[0] / out_h
        stored_cols = (np.arange(out_w) + 0.5) * self.stored_shape[1] / out_w
        crop_top, crop_bottom, crop_left, crop_right = self.crop_box
        crop_cols = stored_cols - crop_left
        if self.flipped:
            crop_cols = (crop_right - crop_left) - crop_cols
        model_rows = self.rows.to_model(stored_rows - crop_top)
        model_cols = self.cols.to_model(crop_cols)
        grid_rows = _nearest_cell(model_rows, self.model_shape[0] / grid_h, grid_h)
        grid_cols = _nearest_cell(model_cols, self.model_shape[1] / grid_w, grid_w)
        row_ok = (
            (model_rows >= 0)
            & (model_rows < self.model_shape[0])
            & (stored_rows >= crop_top)
            & (stored_rows < crop_bottom)
        )
        col_ok = (
            (model_cols >= 0)
            & (model_cols < self.model_shape[1])
            & (stored_cols >= crop_left)
            & (stored_cols < crop_right)
        )
        out = values[..., grid_rows[:, None], grid_cols[None, :]]
        return np.where(row_ok[:, None] & col_ok[None, :], out, np.asarray(fill, dtype=out.dtype))


def _nearest_cell(model: np.ndarray, stride: float, cells: int) -> np.ndarray:
    """The cell whose receptive-field centre (model pixel ``stride * i``) is nearest to each
    continuous model coordinate (pixel ``p`` spans ``[p, p + 1)``)."""
    return np.clip(np.floor((model - 0.5) / stride + 0.5), 0, cells - 1).astype(np.int64)


@dataclass(frozen=True)
class WindowNoise:
    """Training-time window augmentation (SPEC.md 6.1): maximum location noise in rows and columns
    and maximum size noise, in pixels. The published runner's values are the defaults."""

    rows: int = 100
    cols: int = 100
    size: int = 100


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
    factor: int = 1,
) -> tuple[CropMetadata, np.ndarray]:
    """SPEC.md 5(a): the published breast crop. Returns the metadata and the dilated breast region
    ``D`` (bool, the image's frame) the crop was derived from. ``factor``: the image is the stored
    one reduced that many times, and the erosion, dilation and buffer shrink with it."""
    iterations, buffer = CROP_ITERATIONS // factor, CROP_BUFFER // factor
    height, width = image.shape
    breast = image > _background_level(image, flipped, background_threshold)
    # A pixel survives n erosions by the 4-neighbour cross iff its city-block distance to the
    # nearest background pixel, outside the image included, exceeds n. Work inside the bounding
    # box of the non-background pixels: everything outside it is background anyway.
    breast_box = _bounding_box(breast)
    if breast_box is None:
        raise PreprocessingError("no breast found: the image is blank")
    padded = np.pad(breast[breast_box], 1)
    survivors = ndimage.distance_transform_cdt(padded, metric="taxicab")[1:-1, 1:-1] > iterations
    labels, count = ndimage.label(survivors)  # 4-connectivity; labels in raster order of first pixel
    if count == 0:
        raise PreprocessingError(
            "no breast found: nothing is left after removing a 100-pixel border from the non-background "
            "pixels (is the image blank, very small, or is its background not zero?)"
        )
    boxes = ndimage.find_objects(labels)
    sizes = [np.count_nonzero(labels[box] == label) for label, box in enumerate(boxes, start=1)]
    largest = int(np.argmax(sizes)) + 1  # ties: lowest label
    component_rows, component_cols = boxes[largest - 1]
    # Dilation: every pixel within city-block distance n of the component. A shortest city-block
    # path never leaves a rectangle holding both ends, so the box grown by n suffices.
    offset_row, offset_col = breast_box[0].start, breast_box[1].start
    grown = (
        slice(
            max(component_rows.start + offset_row - iterations, 0),
            min(component_rows.stop + offset_row + iterations, height),
        ),
        slice(
            max(component_cols.start + offset_col - iterations, 0),
            min(component_cols.stop + offset_col + iterations, width),
        ),
    )
    not_component = np.ones((grown[0].stop - grown[0].start, grown[1].stop - grown[1].start), dtype=bool)
    inner = (
        slice(
            component_rows.start + offset_row - grown[0].start,
            component_rows.stop + offset_row - grown[0].start,
        ),
        slice(
            component_cols.start + offset_col - grown[1].start,
            component_cols.stop + offset_col - grown[1].start,
        ),
    )
    not_component[inner] = labels[component_rows, component_cols] != largest
    region = np.zeros_like(breast)
    region[grown] = ndimage.distance_transform_cdt(not_component, metric="taxicab") <= iterations
    rows = np.flatnonzero(region.any(axis=1))
    cols = np.flatnonzero(region.any(axis=0))
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    bottom_row = bottom - 1
    bottom_cols = np.flatnonzero(region[bottom_row])
    top -= min(top, buffer)
    bottom += min(height - bottom, buffer)
    distance = width - right if flipped else left
    if flipped:
        left -= min(left, buffer)
    else:
        right += min(width - right, buffer)
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
        rightmost_points=(
            (int(extreme_rows[0]), int(extreme_rows[-1])),
            crop_w - extreme if flipped else extreme,
        ),
        bottommost_points=(bottom_row - top, (int(converted.min()), int(converted.max()))),
        distance_from_starting_side=int(distance),
    )
    return metadata, region


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def _background_level(image: np.ndarray, flipped: bool, background_threshold: BackgroundThreshold) -> float:
    if background_threshold is None:
        return 0
    if background_threshold == "auto":
        strip_width = max(1, image.shape[1] // BACKGROUND_STRIP_FRACTION)
        strip = image[:, :strip_width] if flipped else image[:, -strip_width:]
        median = float(np.median(strip))
        spread = MAD_TO_SIGMA * float(np.median(np.abs(strip - median)))
        return median + 6 * spread
    return float(background_threshold)


def best_center(
    flipped_crop: np.ndarray,
    metadata: CropMetadata,
    is_mlo: bool,
    window: tuple[int, int],
    scale: float = 1.0,
) -> tuple[int, int]:
    """SPEC.md 5(c): the window centre (row, column) in the flipped cropped image."""
    win_h, win_w = window
    half_h, half_w = win_h // 2, win_w // 2
    crop_h, crop_w = flipped_crop.shape
    rightmost_col = round(metadata.rightmost_points[1] * scale)
    center_col = rightmost_col - half_w - 1
    if is_mlo:
        bottom_row = round(metadata.bottommost_points[0] * scale)
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
    flipped_crop: np.ndarray,
    center: tuple[int, int],
    is_mlo: bool,
    window: tuple[int, int],
    noise: WindowNoise | None = None,
    rng: np.random.RandomState | None = None,
) -> tuple[np.ndarray, AxisMap, AxisMap]:
    """SPEC.md 5(d), and 6.1 with ``noise``: the float32 window of the flipped crop, zero-padded,
    resized to ``window`` (bicubic) when size noise changed it, and the row and column maps from the
    window to the crop's frame. ``rng`` is a legacy RandomState, as in the published code."""
    win_h, win_w = window
    crop_h, crop_w = flipped_crop.shape
    noise_rows, noise_cols, noise_size = (noise.rows, noise.cols, noise.size) if noise else (0, 0, 0)
    if noise and (noise_rows or noise_cols):
        move_row, move_col = rng.uniform(-1, 1, size=2)
    else:
        move_row = move_col = 0.0
    pad_top = 0  # columns are only ever padded on the right
    padded_h, padded_w = crop_h, crop_w
    top, left = center[0] - win_h // 2, center[1] - win_w // 2
    if is_mlo and crop_h < win_h + noise_rows + noise_size:
        padded_h, top = win_h + noise_rows + noise_size, 0
    elif not is_mlo and crop_h < win_h + 2 * (noise_rows + noise_size):
        padded_h = win_h + 2 * (noise_rows + noise_size)
        pad_top, top = (padded_h - crop_h) // 2, noise_rows + noise_size
    if crop_w < win_w + noise_cols + noise_size:
        padded_w, left = win_w + noise_cols + noise_size, 0
    top = int(np.clip(top, 0, padded_h - win_h))
    left = int(np.clip(left, 0, padded_w - win_w))
    bottom, right = top + win_h, left + win_w
    if noise:
        shift_row = _location_noise(move_row, noise_rows, top, bottom, padded_h)
        shift_col = _location_noise(move_col, noise_cols, left, right, padded_w)
        top, bottom, left, right = top + shift_row, bottom + shift_row, left + shift_col, right + shift_col
    size_draws = rng.uniform(-1, 1, size=4) if noise else np.zeros(4)
    amplitude = min(noise_size, top, padded_h - bottom, left, padded_w - right)
    amplitudes = (amplitude, amplitude, round(amplitude * win_w / win_h), round(amplitude * win_w / win_h))
    top, bottom, left, right = (
        edge + round(amp * draw)
        for edge, amp, draw in zip((top, bottom, left, right), amplitudes, size_draws, strict=True)
    )
    pixels = np.zeros((bottom - top, right - left), dtype=np.float32)
    origin_row, origin_col = top - pad_top, left
    src_top, src_left = max(origin_row, 0), max(origin_col, 0)
    src_bottom, src_right = (
        min(origin_row + pixels.shape[0], crop_h),
        min(origin_col + pixels.shape[1], crop_w),
    )
    if src_bottom > src_top and src_right > src_left:
        pixels[
            src_top - origin_row : src_bottom - origin_row, src_left - origin_col : src_right - origin_col
        ] = flipped_crop[src_top:src_bottom, src_left:src_right]
    rows = AxisMap(origin_row, pixels.shape[0] / win_h)
    cols = AxisMap(origin_col, pixels.shape[1] / win_w)
    if pixels.shape != window:
        pixels = _resize(pixels, window, mode="bicubic")
    return pixels, rows, cols


def _location_noise(draw: float, maximum: int, start: int, stop: int, size: int) -> int:
    """SPEC.md 6.1 steps 4-5 along one axis."""
    if start == 0:
        draw = abs(draw)
    elif stop == size:
        draw = -abs(draw)
    margin = size - stop if draw >= 0 else start
    return round(min(maximum, margin) * draw)


def standardise(window: np.ndarray) -> np.ndarray:
    """SPEC.md 5(e): per-image standardisation with numpy's float32 reductions, padding included.

    The standard deviation is taken of the already centred values, which is what reproduces the
    published inputs bit for bit.
    """
    centred = window - window.mean()
    return centred / np.maximum(centred.std(), np.float32(STANDARDISATION_EPS))


@dataclass(frozen=True)
class CroppedBreast:
    """The first half of preprocessing, which depends on neither the view's window nor any noise:
    the breast crop, flipped to face right and resampled to the model's scale. Training caches it."""

    pixels: np.ndarray  # flipped crop, resampled by the config's input_scale
    crop: CropMetadata  # in the decoded image's frame
    flipped: bool
    stored_shape: tuple[int, int]
    grid: PixelGrid | None = None  # the decoded image was a reduced resolution level

    @property
    def cropped_shape(self) -> tuple[int, int]:
        top, bottom, left, right = self.crop.window_location
        return bottom - top, right - left


def crop_and_orient(
    image: np.ndarray,
    laterality: str,
    config: GMICConfig,
    horizontal_flip: bool = False,
    background_threshold: BackgroundThreshold = None,
    grid: PixelGrid | None = None,
) -> CroppedBreast:
    """SPEC.md 5(a) and 5(b), then resampling to ``config.input_scale`` (area average). An image
    decoded at a reduced resolution level (``grid``) is cropped at its own size and resampled only by
    what remains of the scale (nothing, when the level matches it)."""
    if image.ndim != 2:
        raise PreprocessingError(f"expected a 2-D grey image, got an array of shape {image.shape}")
    factor = grid.factor if grid else 1
    flipped = flip_at_load(laterality, horizontal_flip)
    metadata, region = crop_breast(image, flipped, background_threshold, factor)
    top, bottom, left, right = metadata.window_location
    cropped = image[top:bottom, left:right]
    if background_threshold is not None:
        cropped = np.where(region[top:bottom, left:right], cropped, 0)
    oriented = cropped[:, ::-1] if flipped else cropped
    scale = config.input_scale * factor
    if scale != 1.0:
        oriented = _resize(oriented.astype(np.float32), _scaled_shape(oriented.shape, scale), mode="area")
    stored_shape = grid.stored_shape if grid else (int(image.shape[0]), int(image.shape[1]))
    return CroppedBreast(oriented, metadata, flipped, stored_shape, grid)


def window_input(
    breast: CroppedBreast,
    is_mlo: bool,
    config: GMICConfig,
    noise: WindowNoise | None = None,
    rng: np.random.RandomState | None = None,
) -> PreprocessedImage:
    """SPEC.md 5(c)-5(e) (and 6.1 with ``noise``): centre, window, standardise."""
    window = (config.input_height, config.input_width)
    grid = breast.grid
    factor = grid.factor if grid else 1
    center = best_center(breast.pixels, breast.crop, is_mlo, window, config.input_scale * factor)
    if noise is not None and rng is None:
        rng = np.random.RandomState(0)
    pixels, rows, cols = place_window(
        breast.pixels.astype(np.float32, copy=False), center, is_mlo, window, noise, rng
    )
    (crop_h, crop_w), (scaled_h, scaled_w) = breast.cropped_shape, breast.pixels.shape
    row_scale, col_scale = factor * crop_h / scaled_h, factor * crop_w / scaled_w
    # Where the decoded pixels lie on the stored ones; a flipped crop counts from its far edge.
    row_shift = grid.row_origin if grid else 0.0
    col_shift = (-grid.col_origin if breast.flipped else grid.col_origin) if grid else 0.0
    geometry = Geometry(
        stored_shape=breast.stored_shape,
        crop_box=tuple(edge * factor for edge in breast.crop.window_location),
        flipped=breast.flipped,
        rows=AxisMap(rows.offset * row_scale + row_shift, rows.step * row_scale),
        cols=AxisMap(cols.offset * col_scale + col_shift, cols.step * col_scale),
        model_shape=window,
    )
    tensor = torch.from_numpy(standardise(pixels)).unsqueeze(0)
    return PreprocessedImage(tensor, geometry, breast.crop, center)


def preprocess(
    image: np.ndarray,
    laterality: str,
    is_mlo: bool,
    config: GMICConfig | None = None,
    horizontal_flip: bool = False,
    background_threshold: BackgroundThreshold = None,
    noise: WindowNoise | None = None,
    rng: np.random.RandomState | None = None,
    grid: PixelGrid | None = None,
) -> PreprocessedImage:
    """The published preprocessing of one stored view; deterministic (test time) without ``noise``.

    ``laterality`` is ``"L"`` or ``"R"``; ``horizontal_flip`` is the published exam flag (``'YES'``
    when the exam is stored mirrored relative to the usual orientation). With a config whose
    ``input_scale`` is below 1, the cropped breast is resampled (area average) before the window is
    placed, so a reduced-size model still sees the whole breast. ``noise`` and ``rng`` switch on the
    training-time window augmentation of SPEC.md 6.1. ``grid``: ``image`` was decoded at a reduced
    JPEG 2000 resolution level (:class:`~gmic_core.imaging.PixelGrid`); the geometry still maps to the
    full-size stored image.
    """
    config = config or GMICConfig()
    breast = crop_and_orient(image, laterality, config, horizontal_flip, background_threshold, grid)
    return window_input(breast, is_mlo, config, noise, rng)


def _scaled_shape(shape: tuple[int, int], scale: float) -> tuple[int, int]:
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def _resize(image: np.ndarray, shape: tuple[int, int], mode: str) -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=shape, mode=mode)[0, 0].numpy()
