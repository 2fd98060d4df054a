"""The four views in the hanging protocol, with saliency overlays, ROI boxes and a magnifier.

R-CC | L-CC above R-MLO | L-MLO. Images are in the published convention (right views face left),
so the chest walls meet at the centre line as they are; exams whose files are in the opposite
convention (``Exam.horizontal_flip``) are shown mirrored. Each view is anchored at the top and at
its chest wall. Zoom and pan are linked in anatomical terms: the same zoom, and the same distance
from the chest wall and from the top, in every view.

Every item lives in stored-image pixel coordinates (rows down, columns right), so overlays and ROI
boxes from :mod:`gmic_core.inference` need no conversion. The image item holds only the visible part
of the pyramid level that has about one pixel per screen pixel, so window/level re-renders a few
hundred thousand pixels per view, whatever the image size.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsItem, QGraphicsRectItem, QGridLayout, QLabel, QWidget

from app.gui.imagery import (
    BENIGN_RGB,
    MALIGNANT_RGB,
    DisplayImage,
    apply_lookup,
    display_lookup,
    expanded_box,
    overlay_lookup,
    roi_marks,
    saliency_placement,
)
from app.gui.state import Overlay, ViewerState, WindowAdjustment
from gmic_core.imaging import Exam, ImageRef, Laterality, View, ViewCode
from gmic_core.inference import BreastResult, ExamResult, ViewResult

HANGING_PROTOCOL = {View.R_CC: (0, 0), View.L_CC: (0, 1), View.R_MLO: (1, 0), View.L_MLO: (1, 1)}
TILE_MARGIN = 0.25  # the image item holds the visible part plus this fraction of it on every side
FOCUS_FRACTION = 3.0  # a focused ROI box takes a third of its view's width or height
FOCUS_MINIMUM = 128  # stored pixels: the smallest extent a focus zooms to
ROI_PEN = QColor(255, 220, 0)
ROI_LABEL_FILL = QColor(0, 0, 0, 190)
MAGNIFIER_SIZE = 256  # screen pixels; the magnifier shows the full-resolution image 1:1
CC_LIKE = frozenset({ViewCode.CC, ViewCode.XCCL, ViewCode.XCCM, ViewCode.FB})


@dataclass(frozen=True)
class Zoom:
    """A view's zoom and centre in anatomical terms: ``factor`` relative to fitting the image,
    ``from_chest_wall`` and ``from_top`` the centre's distances as fractions of width and height."""

    factor: float
    from_chest_wall: float
    from_top: float


def presets(image: DisplayImage) -> list:
    """The file's VOI choices, the default first (windows, then VOI LUTs)."""
    voi = image.mammogram.voi
    return [*voi.windows, *voi.luts]


def extra_label(ref: ImageRef) -> str:
    modifiers = ", ".join(sorted(modifier.value for modifier in ref.position.modifiers))
    text = f"{ref.laterality.value} {ref.position.code.value}"
    if modifiers:
        text += f" ({modifiers})"
    elif ref.view is not None:
        text += " (duplicate)"
    return text


def extras_of(exam: Exam, view: View) -> list[str]:
    """Extra images listed under a view's cell: same side, CC-like projections under CC."""
    return [
        extra_label(ref)
        for ref in exam.extra_images
        if ref.laterality is view.laterality and (ref.position.code in CC_LIKE) == (not view.is_mlo)
    ]


class ReadingViewBox(pg.ViewBox):
    """Left-drag pans, the wheel zooms, right-drag sets window/level, double-click enlarges."""

    def __init__(self, cell: ViewCell) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._cell = cell

    def mouseDragEvent(self, event, axis=None) -> None:
        if event.button() == Qt.MouseButton.RightButton:
            event.accept()
            delta = event.pos() - event.lastPos()
            size = self.size()
            self._cell.window_dragged.emit(
                delta.x() / max(1.0, size.width()), delta.y() / max(1.0, size.height())
            )
            return
        super().mouseDragEvent(event, axis)

    def mouseClickEvent(self, event) -> None:
        if event.double() and event.button() == Qt.MouseButton.LeftButton:
            event.accept()
            self._cell.double_clicked.emit(self._cell.view)
            return
        super().mouseClickEvent(event)


class ViewCell(pg.GraphicsLayoutWidget):
    """One view: the image, its two saliency overlays, its ROI boxes and a label."""

    double_clicked = Signal(object)  # View
    window_dragged = Signal(float, float)
    zoomed_by_user = Signal(object)  # View
    hovered = Signal(object, object)  # View, scene position

    def __init__(self, view: View, state: ViewerState) -> None:
        super().__init__()
        self.view = view
        self._state = state
        self.setBackground("k")
        self.ci.layout.setContentsMargins(0, 0, 0, 0)
        self.ci.layout.setSpacing(0)
        self.label = self.addLabel(view.value, row=0, col=0, color="#e0e0e0", size="10pt")
        self.viewbox = ReadingViewBox(self)
        self.addItem(self.viewbox, row=1, col=0)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.viewbox.addItem(self.image_item)
        # The saliency maps are drawn at their own few cells, stretched over the stored image, and
        # clipped to the breast crop by their parent.
        self.overlay_clip = QGraphicsRectItem()
        self.overlay_clip.setPen(QPen(Qt.PenStyle.NoPen))
        self.overlay_clip.setFlag(QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape)
        self.overlay_clip.setZValue(10)
        self.viewbox.addItem(self.overlay_clip, ignoreBounds=True)
        self.overlay_items = {}
        for z, (overlay, rgb) in enumerate(
            ((Overlay.BENIGN, BENIGN_RGB), (Overlay.MALIGNANT, MALIGNANT_RGB))
        ):
            item = pg.ImageItem(axisOrder="row-major", levels=(0.0, 1.0), lut=overlay_lookup(rgb))
            item.setZValue(z)
            item.setParentItem(self.overlay_clip)
            self.overlay_items[overlay] = item
        self.message = pg.TextItem("", color="#c0c0c0", anchor=(0.5, 0.5))
        self.viewbox.addItem(self.message, ignoreBounds=True)
        self.roi_items: list = []
        self.image: DisplayImage | None = None
        self.result: ViewResult | None = None
        self.mirrored = False
        self.zoom: Zoom | None = None  # None: fitted
        self._tile: tuple[int, int, int, int, int] | None = None  # level, top, left, bottom, right
        self._lookup: tuple[tuple[float, float], np.ndarray] | None = None
        self.viewbox.sigRangeChanged.connect(self._range_changed)
        self.viewbox.sigRangeChangedManually.connect(lambda _: self.zoomed_by_user.emit(self.view))
        self.scene().sigMouseMoved.connect(self._mouse_moved)

    # --- content -------------------------------------------------------------------------------

    def reset(self, exam: Exam | None, text: str) -> None:
        """Empty the cell for ``exam`` (label with its extra images) and show ``text`` in it."""
        self.image, self.result, self._tile, self.zoom = None, None, None, None
        self.image_item.clear()
        for item in self.overlay_items.values():
            item.clear()
        self._clear_rois()
        self.mirrored = bool(exam and exam.horizontal_flip)
        self.viewbox.invertX(self.mirrored)
        extras = extras_of(exam, self.view) if exam else []
        title = f"{self.view.laterality.value} {self.view.position.value}"
        self.label.setText(title + (f"   extra: {'; '.join(extras)}" if extras else ""))
        self.show_message(text)

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))
        if text and self.image is None:
            self.viewbox.setRange(xRange=(-1, 1), yRange=(-1, 1), padding=0)
            self.message.setPos(0, 0)

    def set_image(self, image: DisplayImage) -> None:
        self.image = image
        self._tile = None
        self.show_message("")
        self._update_lookup()
        self.apply_zoom(self.zoom)

    def set_result(self, result: ViewResult | None, breast: BreastResult | None = None) -> None:
        """Show ``result``'s overlays and the ROI boxes :func:`roi_marks` keeps for its ``breast``."""
        self.result = result
        self._clear_rois()
        if result is None or self.image is None:
            for item in self.overlay_items.values():
                item.clear()
            return
        placement = saliency_placement(result)
        self.overlay_clip.setRect(QRectF(*placement.clip))
        for index, overlay in enumerate((Overlay.BENIGN, Overlay.MALIGNANT)):
            item = self.overlay_items[overlay]
            item.setImage(placement.maps[index], autoLevels=False, levels=(0.0, 1.0))
            item.setRect(QRectF(*placement.rect))
        pen = QPen(ROI_PEN)
        pen.setCosmetic(True)
        pen.setWidth(2)
        for mark in roi_marks(result, breast):
            top, left, bottom, right = mark.box
            box = QGraphicsRectItem(left, top, right - left, bottom - top)
            box.setPen(pen)
            box.setZValue(20)
            items = [box]
            if mark.label is not None:
                # above the box, on a dark plate: legible on bright tissue as on the background
                text = pg.TextItem(mark.label, color=ROI_PEN, anchor=(0, 1), fill=ROI_LABEL_FILL)
                text.setPos(left, top)
                text.setZValue(21)
                items.append(text)
            for item in items:
                self.viewbox.addItem(item, ignoreBounds=True)
                self.roi_items.append(item)
        self.update_overlays()

    def _clear_rois(self) -> None:
        for item in self.roi_items:
            self.viewbox.removeItem(item)
        self.roi_items = []

    def update_overlays(self) -> None:
        shown = self._state.overlays
        for overlay, item in self.overlay_items.items():
            item.setVisible(shown[overlay] and self.result is not None)
            item.setOpacity(self._state.opacity)
        for item in self.roi_items:
            item.setVisible(shown[Overlay.ROIS])

    # --- window / level -----------------------------------------------------------------------------

    def voi_for(self, adjustment: WindowAdjustment):
        choices = presets(self.image)
        return choices[adjustment.preset] if adjustment.preset < len(choices) else choices[0]

    def _update_lookup(self) -> None:
        if self.image is None:
            return
        adjustment = self._state.window
        levels, table = display_lookup(self.voi_for(adjustment), adjustment)
        self._lookup = (levels, table)
        self.image_item.setLookupTable(table, update=False)
        self.image_item.setLevels(levels)

    def update_window(self) -> None:
        self._update_lookup()

    def screen_pixels(self, top: int, left: int, bottom: int, right: int) -> np.ndarray:
        """Full-resolution pixels of a region as the screen shows them (uint8, display orientation)."""
        levels, table = self._lookup
        pixels = apply_lookup(self.image.pyramid[0][top:bottom, left:right], levels, table)
        return pixels[:, ::-1] if self.mirrored else pixels

    # --- zoom and pan ------------------------------------------------------------------------------

    def _chest_wall_right(self) -> bool:
        """Whether the chest wall is at the image's last column (in stored coordinates)."""
        return (self.view.laterality is Laterality.RIGHT) != self.mirrored

    def _fit_scale(self) -> float | None:
        """Screen pixels per stored pixel when the image fits the cell; None before layout."""
        width, height = self.viewbox.width(), self.viewbox.height()
        if self.image is None or width < 2 or height < 2:
            return None
        rows, columns = self.image.shape
        return min(width / columns, height / rows)

    def fitted_zoom(self) -> Zoom | None:
        scale = self._fit_scale()
        if scale is None:
            return None
        rows, columns = self.image.shape
        visible_w, visible_h = self.viewbox.width() / scale, self.viewbox.height() / scale
        return Zoom(1.0, visible_w / 2 / columns, visible_h / 2 / rows)

    def apply_zoom(self, zoom: Zoom | None) -> None:
        """Show ``zoom`` (None: fit, top and chest wall anchored)."""
        self.zoom = zoom
        scale = self._fit_scale()
        if scale is None:
            return
        target = zoom or self.fitted_zoom()
        rows, columns = self.image.shape
        visible_w = self.viewbox.width() / (scale * target.factor)
        visible_h = self.viewbox.height() / (scale * target.factor)
        distance = target.from_chest_wall * columns
        centre_x = columns - distance if self._chest_wall_right() else distance
        centre_y = target.from_top * rows
        self.viewbox.setRange(
            xRange=(centre_x - visible_w / 2, centre_x + visible_w / 2),
            yRange=(centre_y - visible_h / 2, centre_y + visible_h / 2),
            padding=0,
        )

    def current_zoom(self) -> Zoom | None:
        scale = self._fit_scale()
        if scale is None:
            return None
        rows, columns = self.image.shape
        (x0, x1), (y0, y1) = self.viewbox.viewRange()
        factor = self.viewbox.width() / max(x1 - x0, 1e-9) / scale
        centre_x, centre_y = (x0 + x1) / 2, (y0 + y1) / 2
        distance = columns - centre_x if self._chest_wall_right() else centre_x
        return Zoom(factor, distance / columns, centre_y / rows)

    def focus(self, box: tuple[int, int, int, int]) -> None:
        """Centre on a box (top, left, bottom, right) and zoom so that it takes a third of the view."""
        if self.image is None:
            return
        scale = self._fit_scale()
        rows, columns = self.image.shape
        top, left, bottom, right = expanded_box(box, FOCUS_MINIMUM, (rows, columns))
        if scale is None:
            return
        extent_w = (right - left) * FOCUS_FRACTION
        extent_h = (bottom - top) * FOCUS_FRACTION
        factor = min(self.viewbox.width() / extent_w, self.viewbox.height() / extent_h) / scale
        centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
        distance = columns - centre_x if self._chest_wall_right() else centre_x
        self.apply_zoom(Zoom(max(factor, 1.0), distance / columns, centre_y / rows))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if getattr(self, "image", None) is not None:  # pyqtgraph resizes during construction
            self.apply_zoom(self.zoom)

    def _range_changed(self, *_) -> None:
        if self.image is None:
            return
        (x0, x1), (y0, y1) = self.viewbox.viewRange()
        width = self.viewbox.width()
        if width < 2:
            return
        # a level serves from 4/3 of its reduction on: at least 0.75 of its pixels per screen pixel
        level = self.image.level_for((x1 - x0) / width * 0.75)
        factor = 2**level
        pixels = self.image.pyramid[level]
        margin_x, margin_y = (x1 - x0) * TILE_MARGIN, (y1 - y0) * TILE_MARGIN
        if self._tile is not None:
            old_level, top, left, bottom, right = self._tile
            inside = top <= max(0, y0) and left <= max(0, x0)
            inside = inside and bottom >= min(pixels.shape[0] * factor, y1)
            inside = inside and right >= min(pixels.shape[1] * factor, x1)
            if old_level == level and inside:
                return
        top = int(np.clip((y0 - margin_y) // factor, 0, pixels.shape[0]))
        bottom = int(np.clip(-(-(y1 + margin_y) // factor), 0, pixels.shape[0]))
        left = int(np.clip((x0 - margin_x) // factor, 0, pixels.shape[1]))
        right = int(np.clip(-(-(x1 + margin_x) // factor), 0, pixels.shape[1]))
        if bottom <= top or right <= left:
            return
        self._tile = (level, top * factor, left * factor, bottom * factor, right * factor)
        levels, _ = self._lookup
        self.image_item.setImage(pixels[top:bottom, left:right], autoLevels=False, levels=levels)
        self.image_item.setRect(
            QRectF(left * factor, top * factor, (right - left) * factor, (bottom - top) * factor)
        )

    def _mouse_moved(self, position: QPointF) -> None:
        if self.image is None or not self.viewbox.sceneBoundingRect().contains(position):
            return
        self.hovered.emit(self.view, position)


class Magnifier(QLabel):
    """The full-resolution image around the cursor, 1:1, in a square that follows the cursor."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setFixedSize(MAGNIFIER_SIZE, MAGNIFIER_SIZE)
        self.setStyleSheet("border: 2px solid #ffdc00; background: black;")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.hide()

    def show_at(self, cell: ViewCell, scene_position: QPointF) -> None:
        point = cell.viewbox.mapSceneToView(scene_position)
        rows, columns = cell.image.shape
        half = MAGNIFIER_SIZE // 2
        top = int(np.clip(point.y() - half, 0, max(0, rows - MAGNIFIER_SIZE)))
        left = int(np.clip(point.x() - half, 0, max(0, columns - MAGNIFIER_SIZE)))
        pixels = np.ascontiguousarray(
            cell.screen_pixels(top, left, top + MAGNIFIER_SIZE, left + MAGNIFIER_SIZE)
        )
        height, width = pixels.shape
        picture = QImage(pixels.data, width, height, width, QImage.Format.Format_Grayscale8).copy()
        self.setPixmap(QPixmap.fromImage(picture))
        cursor = cell.mapTo(self.parentWidget(), cell.mapFromScene(scene_position))
        self.move(cursor.x() + 16, cursor.y() + 16)
        self.show()
        self.raise_()


class FourViewPanel(QWidget):
    """The hanging protocol: four :class:`ViewCell` in a grid, kept in step with the ViewerState."""

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.exam: Exam | None = None
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        self.cells: dict[View, ViewCell] = {}
        for view, (row, column) in HANGING_PROTOCOL.items():
            cell = ViewCell(view, state)
            cell.double_clicked.connect(self._toggle_enlarged)
            cell.window_dragged.connect(lambda dx, dy: state.set_window(state.window.dragged(dx, dy)))
            cell.zoomed_by_user.connect(self._propagate_zoom)
            cell.hovered.connect(self._hovered)
            cell.reset(None, "No exam open")
            layout.addWidget(cell, row, column)
            self.cells[view] = cell
        self.magnifier = Magnifier(self)
        state.subscribe(self._state_changed)

    def show_exam(self, exam: Exam) -> None:
        self.exam = exam
        for view, cell in self.cells.items():
            cell.reset(exam, "Reading..." if view in exam.images else f"{view.value}: not in this exam")

    def set_view_image(self, view: View, image: DisplayImage) -> None:
        self.cells[view].set_image(image)

    def set_view_error(self, view: View, message: str) -> None:
        self.cells[view].show_message(f"{view.value} could not be read:\n{textwrap.fill(message, 60)}")

    def set_result(self, result: ExamResult | None) -> None:
        for view, cell in self.cells.items():
            if result is None:
                cell.set_result(None)
            else:
                cell.set_result(result.views.get(view), result.breasts.get(view.laterality))

    def focus(self, view: View, box: tuple[int, int, int, int]) -> None:
        cell = self.cells[view]
        cell.focus(box)
        self._propagate_zoom(view)

    def reset_zoom(self) -> None:
        for cell in self.cells.values():
            cell.apply_zoom(None)

    def _propagate_zoom(self, source: View) -> None:
        cell = self.cells[source]
        cell.zoom = cell.current_zoom()
        if not self.state.linked or cell.zoom is None:
            return
        for view, other in self.cells.items():
            if view is not source and other.image is not None:
                other.apply_zoom(cell.zoom)

    def _toggle_enlarged(self, view: View) -> None:
        self.state.set_enlarged(None if self.state.enlarged is view else view)

    def _hovered(self, view: View, scene_position: QPointF) -> None:
        if self.state.magnifier:
            self.magnifier.show_at(self.cells[view], scene_position)

    def _state_changed(self, name: str) -> None:
        if name in ("overlays", "opacity"):
            for cell in self.cells.values():
                cell.update_overlays()
        elif name == "window":
            for cell in self.cells.values():
                cell.update_window()
        elif name == "enlarged":
            for view, cell in self.cells.items():
                cell.setVisible(self.state.enlarged in (None, view))
        elif name == "magnifier" and not self.state.magnifier:
            self.magnifier.hide()
