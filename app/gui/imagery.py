"""Pixels for the screen, Qt-free: resolution pyramids, window/level lookups, overlay maps, thumbnails.

A full-size mammogram has 13.6 million pixels; the screen shows a few hundred thousand per view. So
each decoded view keeps a pyramid of 2 x 2 block means, the viewer shows the level that has at
least one pixel per screen pixel (only the visible part of it), and window/level changes a lookup
table rather than the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from app.gui.state import WindowAdjustment
from gmic_core.imaging import Mammogram, View, VoiLut, Window
from gmic_core.imaging.voi import VoiFunction

if TYPE_CHECKING:  # gmic_core.inference imports torch, which the decoding processes do without
    from gmic_core.inference import BreastResult, ExamResult, ViewResult

# A breast whose benign and malignant probabilities are both below this the model finds normal: its
# ROI boxes are not drawn (the published selection still places K patches on a near-zero map, along
# its edge, clutter a reader would have to look past). A display default, not a clinical threshold.
NORMAL_BELOW = 0.2

PYRAMID_TOP = 512  # the coarsest level's longer side is at most this many pixels
LOOKUP_SIZE = 1024  # entries of a window/level lookup table
BENIGN_RGB = (0, 255, 0)  # green, as gmic_core.visualize draws it
MALIGNANT_RGB = (255, 0, 0)  # red
OVERLAY_MAX_ALPHA = 230  # the alpha of a saliency of 1 at full opacity, so the tissue stays visible


@dataclass(frozen=True, eq=False)
class DisplayImage:
    """One decoded view ready for the screen: ``pyramid[0]`` is the display-ready pixels of the
    :class:`Mammogram`, each further level a 2 x 2 block mean of the one before."""

    view: View
    mammogram: Mammogram
    pyramid: tuple[np.ndarray, ...]

    @property
    def shape(self) -> tuple[int, int]:
        rows, columns = self.pyramid[0].shape
        return rows, columns

    def level_for(self, stored_per_screen: float) -> int:
        """The coarsest level that still has at least one pixel per screen pixel."""
        if stored_per_screen <= 1.0:
            return 0
        return min(len(self.pyramid) - 1, int(np.floor(np.log2(stored_per_screen))))


def prepare_display(view: View, mammogram: Mammogram) -> DisplayImage:
    return DisplayImage(view, mammogram, build_pyramid(mammogram.pixels))


def build_pyramid(pixels: np.ndarray, top: int = PYRAMID_TOP) -> tuple[np.ndarray, ...]:
    """Levels of 2 x 2 block means (integer images stay integer, rounding down) until the longer
    side is at most ``top``; an odd last row or column is dropped from the next level."""
    levels = [pixels]
    while max(levels[-1].shape) > top and min(levels[-1].shape) >= 2:
        image = levels[-1]
        rows, columns = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
        image = image[:rows, :columns]
        if image.dtype.kind in "ui":
            total = (
                image[0::2, 0::2].astype(np.uint32)
                + image[1::2, 0::2]
                + image[0::2, 1::2]
                + image[1::2, 1::2]
            )
            levels.append((total // 4).astype(image.dtype))
        else:
            levels.append(
                ((image[0::2, 0::2] + image[1::2, 0::2] + image[0::2, 1::2] + image[1::2, 1::2]) / 4).astype(
                    image.dtype
                )
            )
    return tuple(levels)


def voi_range(voi: Window | VoiLut) -> tuple[float, float]:
    """The modality values over which ``voi`` goes from black to white."""
    if isinstance(voi, VoiLut):
        return float(voi.first_mapped), float(voi.first_mapped + len(voi.data))
    if voi.function is VoiFunction.SIGMOID:
        return voi.center - 2 * voi.width, voi.center + 2 * voi.width  # 0.0003 to 0.9997 of the curve
    return voi.center - voi.width / 2, voi.center + voi.width / 2


def display_lookup(
    voi: Window | VoiLut, adjustment: WindowAdjustment
) -> tuple[tuple[float, float], np.ndarray]:
    """The levels and the uint8 lookup table that display pixels as ``voi`` does, after the reader's
    adjustment: the curve of ``voi`` (linear, sigmoid or the file's table) sampled over its range,
    which the adjustment widens or narrows and moves."""
    low, high = voi_range(voi)
    curve = voi.apply(np.linspace(low, high, LOOKUP_SIZE))
    table = np.rint(np.clip(curve, 0.0, 1.0) * 255).astype(np.uint8)
    if adjustment.inverted:
        table = 255 - table
    centre = (low + high) / 2 + adjustment.level_shift * (high - low)
    half = (high - low) / 2 * adjustment.width_scale
    return (centre - half, centre + half), table


def apply_lookup(pixels: np.ndarray, levels: tuple[float, float], table: np.ndarray) -> np.ndarray:
    """What the screen shows for ``pixels`` (uint8), as the viewer's image items compute it."""
    low, high = levels
    scaled = (np.asarray(pixels, dtype=np.float64) - low) * (len(table) / max(high - low, 1e-9))
    return table[np.clip(scaled, 0, len(table) - 1).astype(np.intp)]


def overlay_lookup(rgb: tuple[int, int, int]) -> np.ndarray:
    """RGBA table for a saliency map in [0, 1]: the colour, transparent at 0, nearly opaque at 1."""
    table = np.zeros((256, 4), dtype=np.uint8)
    table[:, :3] = rgb
    table[:, 3] = np.rint(np.linspace(0, OVERLAY_MAX_ALPHA, 256)).astype(np.uint8)
    return table


@dataclass(frozen=True)
class SaliencyPlacement:
    """The saliency maps as drawn over the stored image: ``maps`` ``[2, h + 1, w + 1]`` (benign,
    malignant; the model's grid with its last row and column repeated), columns in stored order,
    stretched over ``rect`` and shown only inside ``clip`` (both left, top, width, height in stored
    pixels). Drawn without smoothing, this is :meth:`Geometry.model_map_to_stored` (each cell
    centred on its receptive field) at no cost per image pixel."""

    maps: np.ndarray
    rect: tuple[float, float, float, float]
    clip: tuple[float, float, float, float]


def saliency_placement(result: ViewResult) -> SaliencyPlacement:
    """Where ``result``'s saliency maps lie on the stored image: cell ``i`` spans model pixels
    ``[s i - s/2, s i + s/2)``, the repeated last cell the rest of the frame, clipped to the
    model frame within the breast crop (the frame's padding has no stored pixels)."""
    geometry = result.geometry
    model_rows, model_cols = geometry.model_shape
    maps = np.asarray(result.saliency, dtype=np.float32)
    half_row, half_col = model_rows / maps.shape[-2] / 2, model_cols / maps.shape[-1] / 2
    maps = np.pad(maps, ((0, 0), (0, 1), (0, 1)), mode="edge")
    top, bottom = geometry.model_rows_to_stored(np.array([-half_row, model_rows + half_row]))
    first, last = geometry.model_cols_to_stored(np.array([-half_col, model_cols + half_col]))
    if last < first:  # a flipped view: the model's first column is the stored image's last
        maps, first, last = maps[..., ::-1], last, first
    clip_top, clip_left, clip_bottom, clip_right = geometry.model_box_to_stored(
        (0, 0, model_rows, model_cols)
    )
    return SaliencyPlacement(
        np.ascontiguousarray(maps),
        (float(first), float(top), float(last - first), float(bottom - top)),
        (float(clip_left), float(clip_top), float(clip_right - clip_left), float(clip_bottom - clip_top)),
    )


@dataclass(frozen=True)
class RoiMark:
    """An ROI box as drawn: (top, left, bottom, right) in stored pixels, inside the breast crop, and
    its attention as a label, or None: only the view's strongest box is labelled, so no two labels
    can overlap."""

    box: tuple[float, float, float, float]
    label: str | None


def roi_marks(result: ViewResult, breast: BreastResult | None) -> tuple[RoiMark, ...]:
    """The ROI boxes of ``result`` to draw: clipped to the model frame within the breast crop (the
    published selection may place a patch in the padding, where there is no breast), the empty ones
    left out, and none at all in a breast the model finds normal (:data:`NORMAL_BELOW`)."""
    if breast is not None and max(breast.benign, breast.malignant) < NORMAL_BELOW:
        return ()
    left, top, width, height = saliency_placement(result).clip
    boxes = []
    for (box_top, box_left, box_bottom, box_right), attention, _, _ in result.rois:
        clipped = (
            max(box_top, top),
            max(box_left, left),
            min(box_bottom, top + height),
            min(box_right, left + width),
        )
        if clipped[0] < clipped[2] and clipped[1] < clipped[3]:
            boxes.append((clipped, attention))
    strongest = max(range(len(boxes)), key=lambda index: boxes[index][1], default=None)
    return tuple(
        RoiMark(box, f"{attention:.2f}" if index == strongest else None)
        for index, (box, attention) in enumerate(boxes)
    )


def views_by_suspicion(result: ExamResult) -> list[View]:
    """The views of ``result``, those of the breast with the higher malignant probability first
    (then benign), in the hanging order within a breast: the order of the patch gallery."""

    def suspicion(view: View) -> tuple[float, float]:
        breast = result.breasts.get(view.laterality)
        return (0.0, 0.0) if breast is None else (-breast.malignant, -breast.benign)

    return sorted((view for view in View if view in result.views), key=suspicion)


def thumbnail(
    image: DisplayImage, box: tuple[int, int, int, int], size: int, minimum: int = 32
) -> np.ndarray:
    """The image inside ``box`` (top, left, bottom, right; stored pixels) through its default VOI,
    as a ``size`` x ``size`` uint8 picture; boxes smaller than ``minimum`` grow around their centre.
    The crop comes from the coarsest pyramid level that still has ``size`` pixels across it."""
    rows, columns = image.shape
    top, left, bottom, right = expanded_box(box, minimum, (rows, columns))
    level = 0
    while level + 1 < len(image.pyramid) and min(bottom - top, right - left) >> (level + 1) >= size:
        level += 1
    crop = image.pyramid[level][top >> level : bottom >> level, left >> level : right >> level]
    grey = np.rint(np.clip(image.mammogram.voi.apply(crop), 0.0, 1.0) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(grey).resize((size, size), Image.BILINEAR))


def expanded_box(
    box: tuple[int, int, int, int], minimum: int, shape: tuple[int, int]
) -> tuple[int, int, int, int]:
    """``box`` grown to at least ``minimum`` pixels a side around its centre, inside ``shape``."""
    top, left, bottom, right = box
    centre_row, centre_col = (top + bottom) / 2, (left + right) / 2
    half_h, half_w = max(bottom - top, minimum) / 2, max(right - left, minimum) / 2
    return (
        int(max(0, np.floor(centre_row - half_h))),
        int(max(0, np.floor(centre_col - half_w))),
        int(min(shape[0], np.ceil(centre_row + half_h))),
        int(min(shape[1], np.ceil(centre_col + half_w))),
    )
