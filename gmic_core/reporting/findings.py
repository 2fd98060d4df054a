"""What the DICOM objects report of one view, in its file frame: the saliency maps on the file's
pixel grid, the regions of each map above a threshold, and the ROI patches with their attention."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from skimage import measure

from gmic_core.inference import ViewResult
from gmic_core.reporting.frames import FileFrame

# The saliency level a region must exceed until the caller passes a stored operating point: half the
# map's range, the level at which the demo model's card reports its Dice.
DEFAULT_THRESHOLD = 0.5


class SaliencyKind(StrEnum):
    """The two saliency maps, in the order of the model's output channels."""

    BENIGN = "benign"
    MALIGNANT = "malignant"


@dataclass(frozen=True, eq=False)
class SaliencyRegion:
    """A connected region of one map above the threshold. ``centre`` and ``outline`` are continuous
    file-frame (row, column) points; ``outline`` is closed (its last point is its first)."""

    kind: SaliencyKind
    centre: tuple[float, float]
    outline: np.ndarray  # [N, 2]
    peak: float  # the map's highest value in the region, in [0, 1]


@dataclass(frozen=True)
class RoiPatch:
    """One ROI patch that covers image pixels: its file-frame box (top, left, bottom, right;
    exclusive), the attention the local network gave it and the ensemble member that chose it."""

    box: tuple[float, float, float, float]
    attention: float
    member: int


@dataclass(frozen=True, eq=False)
class ViewFindings:
    result: ViewResult
    frame: FileFrame
    saliency: np.ndarray  # [2, H, W] float32 on the file's pixel grid, as the overlays draw it
    regions: tuple[SaliencyRegion, ...]
    rois: tuple[RoiPatch, ...]
    threshold: float


def view_findings(result: ViewResult, frame: FileFrame, threshold: float = DEFAULT_THRESHOLD) -> ViewFindings:
    """The saliency maps nearest-neighbour upsampled onto the stored image (as the overlays and the
    Dice are) and crossed into the file frame; everything else derived there."""
    saliency = frame.image(result.saliency_in_stored(frame.shape)).astype(np.float32)
    regions = tuple(
        region
        for channel, kind in enumerate(SaliencyKind)
        for region in _regions(saliency[channel], kind, threshold)
    )
    rois = tuple(RoiPatch(frame.box(roi.box), roi.attention, roi.member) for roi in result.rois)
    return ViewFindings(result, frame, saliency, regions, rois, threshold)


def _regions(values: np.ndarray, kind: SaliencyKind, threshold: float) -> list[SaliencyRegion]:
    labels = measure.label(values > threshold, connectivity=2)
    regions = []
    for properties in measure.regionprops(labels, intensity_image=values):
        top, left = properties.bbox[:2]
        inside = np.pad(properties.image, 1)
        # The 0.5 contour of the padded mask runs along pixel edges (through their midpoints at
        # corners); +0.5 turns pixel-centre indices into continuous coordinates.
        contour = max(measure.find_contours(inside.astype(np.float32), 0.5), key=len)
        outline = measure.approximate_polygon(contour, tolerance=0.25) + np.array([top - 0.5, left - 0.5])
        row, col = properties.centroid
        regions.append(
            SaliencyRegion(
                kind, (float(row) + 0.5, float(col) + 0.5), outline, float(properties.intensity_max)
            )
        )
    return regions
