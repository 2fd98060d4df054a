"""Pictures of GMIC's findings on one view, like the published runner's: the input, the patch map,
the benign and malignant saliency maps and the patches with their attention, all in the stored
image's own orientation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from gmic_core.inference import ViewResult

PANEL_HEIGHT = 720
PATCH_SIZE = 160
MARGIN = 8
BENIGN_RGB = np.array([0.0, 1.0, 0.0], dtype=np.float32)  # green, as in the workstation
MALIGNANT_RGB = np.array([1.0, 0.0, 0.0], dtype=np.float32)  # red
ROI_RGB = (255, 255, 0)  # yellow
OVERLAY_ALPHA = 0.6  # the alpha of a saliency of 1


def render_view(display: np.ndarray, result: ViewResult) -> Image.Image:
    """``display``: the stored image through its VOI, float in [0, 1] (1 white)."""
    height, width = display.shape
    panel_w = max(1, round(width * PANEL_HEIGHT / height))
    base = (
        np.asarray(
            Image.fromarray((np.clip(display, 0, 1) * 255).astype(np.uint8)).resize(
                (panel_w, PANEL_HEIGHT), Image.BILINEAR
            ),
            dtype=np.float32,
        )
        / 255.0
    )
    saliency = result.saliency_in_stored((PANEL_HEIGHT, panel_w))
    patch_map = _to_image(base)
    draw_rois(ImageDraw.Draw(patch_map), result, PANEL_HEIGHT / height)
    panels = [
        (_to_image(base), "input"),
        (patch_map, "patch map"),
        (_rgb_image(overlay(base, saliency[0], BENIGN_RGB)), f"benign saliency  p={result.benign:.3f}"),
        (
            _rgb_image(overlay(base, saliency[1], MALIGNANT_RGB)),
            f"malignant saliency  p={result.malignant:.3f}",
        ),
    ]
    patch_row = _patch_row(result)
    canvas_w = max(4 * (panel_w + MARGIN) + MARGIN, patch_row.width + 2 * MARGIN)
    canvas = Image.new("RGB", (canvas_w, PANEL_HEIGHT + patch_row.height + 4 * MARGIN + 16), "black")
    title = ImageDraw.Draw(canvas)
    for index, (panel, label) in enumerate(panels):
        x = MARGIN + index * (panel_w + MARGIN)
        canvas.paste(panel, (x, MARGIN + 16))
        title.text((x, 2), label, fill=(255, 255, 255))
    canvas.paste(patch_row, (MARGIN, PANEL_HEIGHT + 3 * MARGIN + 16))
    return canvas


def save_view(display: np.ndarray, result: ViewResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    render_view(display, result).save(path)
    return path


def _to_image(grey: np.ndarray) -> Image.Image:
    return Image.fromarray((np.repeat(grey[..., None], 3, axis=2) * 255).astype(np.uint8))


def overlay(base: np.ndarray, heat: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """``base`` (grey ``[H, W]`` or RGB ``[H, W, 3]`` in [0, 1]) with ``heat`` (``[H, W]`` in [0, 1])
    blended in ``colour`` at up to 60 % -> RGB ``[H, W, 3]`` in [0, 1]."""
    alpha = np.clip(heat, 0, 1)[..., None] * OVERLAY_ALPHA
    return (base if base.ndim == 3 else base[..., None]) * (1 - alpha) + colour * alpha


def draw_rois(draw: ImageDraw.ImageDraw, result: ViewResult, scale: float, font=None) -> None:
    """``result``'s ROI boxes, each with its attention, on a picture ``scale`` times the stored image."""
    for box, weight, _, _ in result.rois:
        top, left, bottom, right = (v * scale for v in box)
        draw.rectangle((left, top, right, bottom), outline=ROI_RGB, width=2)
        draw.text((left + 3, top + 2), f"{weight:.2f}", fill=ROI_RGB, font=font)


def _rgb_image(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray((rgb * 255).astype(np.uint8))


def _patch_row(result: ViewResult) -> Image.Image:
    """The patches that cover image pixels, numbered as in ``patch_locations``."""
    rois = result.rois
    row = Image.new("RGB", (len(rois) * (PATCH_SIZE + MARGIN), PATCH_SIZE + 16), "black")
    draw = ImageDraw.Draw(row)
    for position, (_, weight, _, index) in enumerate(rois):
        x = position * (PATCH_SIZE + MARGIN)
        if result.patches is not None:
            patch = result.patches[index][:, ::-1] if result.geometry.flipped else result.patches[index]
            low, high = float(patch.min()), float(patch.max())
            scaled = (patch - low) / (high - low) if high > low else np.zeros_like(patch)
            tile = Image.fromarray((scaled * 255).astype(np.uint8)).resize((PATCH_SIZE, PATCH_SIZE))
            row.paste(tile.convert("RGB"), (x, 16))
        draw.text((x, 2), f"patch {index + 1}: attention {weight:.3f}", fill=(255, 255, 255))
    return row
