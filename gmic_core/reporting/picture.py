"""The exam as a PACS shows the Secondary Capture: the hanging protocol (R-CC | L-CC over R-MLO |
L-MLO, each view anchored at the top and at its chest wall, so the chest walls meet at the centre
line as the workstation hangs them) with the saliency overlays and ROI boxes drawn as
:mod:`gmic_core.visualize` draws them, a header with the model and the probabilities, and, for a
model whose card says so, the demo marking in red above and below the views. No patient identifier
is drawn."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gmic_core.imaging import Laterality, Mammogram, View
from gmic_core.inference import ExamResult
from gmic_core.reporting.identity import MANUFACTURER, NOT_FOR_CLINICAL_USE, Algorithm
from gmic_core.visualize import BENIGN_RGB, MALIGNANT_RGB, draw_rois, overlay

WIDTH = 2048  # pixels: about a PACS screen's width, and each view 1024 wide
HANGING_PROTOCOL = ((View.R_CC, View.L_CC), (View.R_MLO, View.L_MLO))
CELL_ASPECT = 1.25  # rows / columns of a cell when no view sets it (a 24 x 30 cm detector)
HEADER_HEIGHT = 150
MARKING_HEIGHT = 72  # the demo banner, above the header and below the views
TEXT_SIZE, LABEL_SIZE, MARKING_SIZE = 30, 28, 48
MARKING_RGB = (200, 0, 0)
TEXT_RGB = (255, 255, 255)
MISSING_RGB = (40, 40, 40)


def marking_rows(height: int) -> tuple[slice, slice]:
    """The rows of the two demo banners in a picture ``height`` rows tall."""
    return slice(0, MARKING_HEIGHT), slice(height - MARKING_HEIGHT, height)


def render_exam(
    result: ExamResult, mammograms: Mapping[View, Mammogram], algorithm: Algorithm, width: int = WIDTH
) -> np.ndarray:
    """``[rows, width, 3]`` uint8 RGB. ``mammograms``: the decoded images of ``result``'s views (a
    view without a result is drawn as an empty labelled cell)."""
    cell_width = width // 2
    aspect = max(
        (m.pixels.shape[0] / m.pixels.shape[1] for v, m in mammograms.items() if v in result.views),
        default=CELL_ASPECT,
    )
    cell_height = round(cell_width * aspect)
    marking = MARKING_HEIGHT if algorithm.not_for_clinical_use else 0
    top = marking + HEADER_HEIGHT
    canvas = Image.new("RGB", (width, top + 2 * cell_height + marking), "black")
    for row, pair in enumerate(HANGING_PROTOCOL):
        for column, view in enumerate(pair):
            cell = _cell(view, result, mammograms.get(view), (cell_height, cell_width))
            canvas.paste(cell, (column * cell_width, top + row * cell_height))
    draw = ImageDraw.Draw(canvas)
    draw.line([(cell_width, top), (cell_width, top + 2 * cell_height)], fill=MISSING_RGB, width=2)
    draw.line([(0, top + cell_height), (width, top + cell_height)], fill=MISSING_RGB, width=2)
    _header(draw, result, algorithm, marking, width)
    if algorithm.not_for_clinical_use:
        for rows in marking_rows(canvas.height):
            _marking(draw, rows.start, width)
    return np.asarray(canvas)


def _cell(view: View, result: ExamResult, mammogram: Mammogram | None, shape: tuple[int, int]) -> Image.Image:
    """One view fitted into a cell, at its top and its chest wall (right for R views, which face
    left), or an empty cell that says why."""
    cell_height, cell_width = shape
    cell = Image.new("RGB", (cell_width, cell_height), "black")
    draw = ImageDraw.Draw(cell)
    label_font = ImageFont.load_default(size=LABEL_SIZE)
    view_result = result.views.get(view)
    if view_result is None or mammogram is None:
        cell.paste(MISSING_RGB, (0, 0, cell_width, cell_height))
        draw.text(
            (cell_width / 2, cell_height / 2),
            f"{view.value}: not in this exam",
            fill=TEXT_RGB,
            font=label_font,
            anchor="mm",
        )
        return cell
    rows, columns = mammogram.pixels.shape
    scale = min(cell_width / columns, cell_height / rows)
    size = (max(1, round(columns * scale)), max(1, round(rows * scale)))
    grey = (
        np.asarray(
            Image.fromarray((np.clip(mammogram.display(), 0, 1) * 255).astype(np.uint8)).resize(
                size, Image.BILINEAR
            ),
            dtype=np.float32,
        )
        / 255.0
    )
    saliency = view_result.saliency_in_stored((size[1], size[0]))
    rgb = overlay(overlay(grey, saliency[0], BENIGN_RGB), saliency[1], MALIGNANT_RGB)
    image = Image.fromarray((rgb * 255).astype(np.uint8))
    draw_rois(ImageDraw.Draw(image), view_result, scale, ImageFont.load_default(size=LABEL_SIZE - 6))
    right = view.laterality is Laterality.RIGHT
    cell.paste(image, (cell_width - size[0] if right else 0, 0))
    text = (
        f"{view.laterality.value} {view.position.value}   malignant {_percent(view_result.malignant)}"
        f"   benign {_percent(view_result.benign)}"
    )
    # The label on the cell's outer side, away from the chest wall.
    x, anchor = (12, "la") if right else (cell_width - 12, "ra")
    box = draw.textbbox((x, 12), text, font=label_font, anchor=anchor)
    draw.rectangle((box[0] - 6, box[1] - 6, box[2] + 6, box[3] + 6), fill=(0, 0, 0))
    draw.text((x, 12), text, fill=TEXT_RGB, font=label_font, anchor=anchor)
    return cell


def _header(draw: ImageDraw.ImageDraw, result: ExamResult, algorithm: Algorithm, y: int, width: int) -> None:
    font = ImageFont.load_default(size=TEXT_SIZE)
    breasts = "   ".join(
        f"{side.name.lower()} breast: malignant {_percent(result.breasts[side].malignant)}, "
        f"benign {_percent(result.breasts[side].benign)}"
        for side in (Laterality.RIGHT, Laterality.LEFT)
        if side in result.breasts
    )
    lines = (
        f"{MANUFACTURER}   {algorithm.name} {algorithm.version}   ({algorithm.description})",
        f"exam malignancy score {_percent(result.malignancy_score)}   {breasts}",
        "red: malignant saliency   green: benign saliency   yellow boxes: ROI patches (attention)",
    )
    for index, line in enumerate(lines):
        draw.text((16, y + 14 + 44 * index), line, fill=TEXT_RGB, font=font)


def _marking(draw: ImageDraw.ImageDraw, y: int, width: int) -> None:
    draw.rectangle((0, y, width, y + MARKING_HEIGHT - 1), fill=MARKING_RGB)
    draw.text(
        (width / 2, y + MARKING_HEIGHT / 2),
        NOT_FOR_CLINICAL_USE,
        fill=TEXT_RGB,
        font=ImageFont.load_default(size=MARKING_SIZE),
        anchor="mm",
    )


def _percent(probability: float) -> str:
    return f"{100 * probability:.1f} %"
