"""The side panel: per breast the model's probabilities, the reader's estimate and the hybrid score;
the lambda slider; the ROI patch gallery.

Where the model has a site calibration the malignant probability shown is the calibrated one, labelled
so, with the raw score on hover; otherwise the raw one, labelled uncalibrated (the benign probability
is never calibrated). The hybrid and the model score stored with a reading stay on the raw score, the
scale of the paper's hybrid."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.gui.imagery import DisplayImage, thumbnail, views_by_suspicion
from app.gui.state import ViewerState
from app.reading.book import ReadingBook
from app.reading.readings import (
    BIRADS_CATEGORIES,
    Estimate,
    ModelShown,
    from_percent,
    hybrid_score,
    to_percent,
)
from gmic_core.calibration import SiteCalibration
from gmic_core.imaging import Exam, Laterality, View
from gmic_core.inference import ExamResult

SIDES = (Laterality.RIGHT, Laterality.LEFT)
SIDE_NAMES = {Laterality.RIGHT: "Right breast", Laterality.LEFT: "Left breast"}
THUMBNAIL_SIZE = 96
NOT_SET = "not set"
SETTLE_MS = 700  # spin arrows and the wheel: the estimate is given once the value rests this long
MALIGNANT_LABELS = {True: "Model, malignant (calibrated)", False: "Model, malignant (uncalibrated)"}


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


class BreastBox(QGroupBox):
    """One breast: model probabilities, the reader's estimate, the hybrid.

    The estimate is given (``reading_entered``) on Enter, on leaving the field, when the reader moves
    on (:meth:`commit_pending`) or once spin arrows rest for ``SETTLE_MS``; never per keystroke."""

    reading_entered = Signal(object, object)  # Laterality, Estimate

    def __init__(self, side: Laterality) -> None:
        super().__init__(SIDE_NAMES[side])
        self.side = side
        form = QFormLayout(self)
        self.benign = QLabel("-")
        self.malignant = QLabel("-")
        self.probability = QSpinBox()
        self.probability.setRange(-1, 100)
        self.probability.setSpecialValueText(NOT_SET)
        self.probability.setSuffix(" %")
        self.probability.setToolTip("Your probability of malignancy for this breast (0-100 %)")
        self.probability.setKeyboardTracking(False)  # typing changes the value at Enter or leaving only
        self._settling = QTimer(self)
        self._settling.setSingleShot(True)
        self._settling.setInterval(SETTLE_MS)
        self._settling.timeout.connect(self._entered)
        self.birads = QComboBox()
        self.birads.addItem(NOT_SET, None)
        for category in BIRADS_CATEGORIES:
            self.birads.addItem(f"BI-RADS {category}", category)
        self.recall = QCheckBox("Recall")
        self.recall.setTristate(True)  # partly checked: not given, stored as unknown (never as "no")
        self.recall.setCheckState(Qt.CheckState.PartiallyChecked)
        self.hybrid = QLabel("-")
        self.hybrid.setStyleSheet("font-weight: bold;")
        self.model_rows = (self.benign, self.malignant, self.hybrid)
        form.addRow("Model, benign (uncalibrated)", self.benign)
        form.addRow(MALIGNANT_LABELS[False], self.malignant)
        form.addRow("Your estimate", self.probability)
        form.addRow("Your BI-RADS", self.birads)
        form.addRow("", self.recall)
        form.addRow("Hybrid", self.hybrid)
        self.form = form
        self.probability.valueChanged.connect(self._settling.start)
        self.probability.editingFinished.connect(self._entered)
        self.birads.currentIndexChanged.connect(self._entered)
        self.recall.checkStateChanged.connect(self._entered)

    def reading(self) -> Estimate:
        value = self.probability.value()
        unanswered = self.recall.checkState() == Qt.CheckState.PartiallyChecked
        return Estimate(
            None if value < 0 else from_percent(value),
            self.birads.currentData(),
            None if unanswered else self.recall.isChecked(),
        )

    def commit_pending(self) -> None:
        """The reader moves on: an estimate still settling is given now."""
        if self._settling.isActive():
            self._entered()

    def _entered(self) -> None:
        self._settling.stop()
        self.reading_entered.emit(self.side, self.reading())

    def show_reading(self, reading: Estimate) -> None:
        self._settling.stop()
        for widget in (self.probability, self.birads, self.recall):
            widget.blockSignals(True)
        self.probability.setValue(
            -1 if reading.probability is None else round(to_percent(reading.probability))
        )
        self.birads.setCurrentIndex(0 if reading.birads is None else reading.birads + 1)
        if reading.recall is None:
            self.recall.setCheckState(Qt.CheckState.PartiallyChecked)
        else:
            self.recall.setChecked(bool(reading.recall))
        for widget in (self.probability, self.birads, self.recall):
            widget.blockSignals(False)

    def show_model(self, shown: bool) -> None:
        """Show or hide the rows of the model's output (hidden in a blinded reading)."""
        for widget in self.model_rows:
            self.form.setRowVisible(widget, shown)


class SidePanel(QWidget):
    patch_selected = Signal(object, object)  # View, (top, left, bottom, right)
    reading_changed = Signal(str)  # exam id

    def __init__(self, state: ViewerState, readings: ReadingBook, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.readings = readings
        self.exam: Exam | None = None
        self.result: ExamResult | None = None
        self.calibration: SiteCalibration | None = None
        layout = QVBoxLayout(self)
        self.breasts = {side: BreastBox(side) for side in SIDES}
        for box in self.breasts.values():
            box.reading_entered.connect(self._reading_entered)
            layout.addWidget(box)
        weight_row = QHBoxLayout()
        self.weight_slider = QSlider(Qt.Orientation.Horizontal)
        self.weight_slider.setRange(0, 100)
        self.weight_slider.setValue(round(state.hybrid_weight * 100))
        self.weight_slider.setToolTip("Hybrid = lambda x your estimate + (1 - lambda) x model (malignant)")
        self.weight_label = QLabel()
        weight_row.addWidget(QLabel("lambda"))
        weight_row.addWidget(self.weight_slider, 1)
        weight_row.addWidget(self.weight_label)
        layout.addLayout(weight_row)
        formula = QLabel("hybrid = lambda x reader + (1 - lambda) x model")
        formula.setStyleSheet("color: gray;")
        layout.addWidget(formula)
        layout.addWidget(QLabel("ROI patches (click to zoom)"))
        self.gallery = QListWidget()
        self.gallery.setViewMode(QListWidget.ViewMode.IconMode)
        self.gallery.setIconSize(QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        self.gallery.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.gallery.setMovement(QListWidget.Movement.Static)
        self.gallery.setSpacing(4)
        self.gallery.itemClicked.connect(self._patch_clicked)
        layout.addWidget(self.gallery, 1)
        self.weight_slider.valueChanged.connect(lambda value: state.set_hybrid_weight(value / 100))
        state.subscribe(self._state_changed)
        self.show_exam(None)

    def show_exam(self, exam: Exam | None) -> None:
        self.exam = exam
        self.result = None
        self.gallery.clear()
        for side, box in self.breasts.items():
            present = exam is not None and any(view.laterality is side for view in exam.images)
            box.setEnabled(present)
            box.show_reading(self.readings.get(exam.exam_id, side) if exam else Estimate())
        self._refresh()

    def readings_filled(self, exam_id: str, sides: list[Laterality]) -> None:
        """The estimates of an earlier session for ``sides`` of the exam arrived in the reading book."""
        if self.exam is None or self.exam.exam_id != exam_id or not sides:
            return
        for side in sides:
            self.breasts[side].show_reading(self.readings.get(exam_id, side))
        self._refresh()
        self.reading_changed.emit(exam_id)

    def set_result(self, result: ExamResult | None, images: dict[View, DisplayImage]) -> None:
        self.result = result
        self.gallery.clear()
        if result is not None:
            for view in views_by_suspicion(result):
                if view not in images:
                    continue
                view_result = result.views[view]
                ranked = sorted(
                    ((roi.attention, roi.box) for roi in view_result.rois), key=lambda pair: -pair[0]
                )
                for attention, box in ranked:
                    self._add_patch(view, box, attention, images[view])
        self._refresh()

    def set_calibration(self, calibration: SiteCalibration | None) -> None:
        """The site calibration of the model whose results are shown, or None."""
        self.calibration = calibration
        for box in self.breasts.values():
            box.form.labelForField(box.malignant).setText(MALIGNANT_LABELS[calibration is not None])
        self._refresh()

    def _add_patch(self, view: View, box, attention: float, image: DisplayImage) -> None:
        pixels = thumbnail(image, box, THUMBNAIL_SIZE)
        picture = QImage(
            pixels.data, THUMBNAIL_SIZE, THUMBNAIL_SIZE, THUMBNAIL_SIZE, QImage.Format.Format_Grayscale8
        )
        item = QListWidgetItem(QIcon(QPixmap.fromImage(picture.copy())), f"{view.value}\n{attention:.3f}")
        item.setData(Qt.ItemDataRole.UserRole, (view, tuple(box)))
        item.setToolTip(f"{view.value}, attention {attention:.3f}")
        self.gallery.addItem(item)

    def _patch_clicked(self, item: QListWidgetItem) -> None:
        view, box = item.data(Qt.ItemDataRole.UserRole)
        self.patch_selected.emit(view, box)

    def commit_pending(self) -> None:
        for box in self.breasts.values():
            box.commit_pending()

    def _reading_entered(self, side: Laterality, reading: Estimate) -> None:
        if self.exam is None:
            return
        breast = self.result.breasts.get(side) if self.result else None
        shown = None if breast is None else ModelShown(breast.malignant, self.state.hybrid_weight)
        self.readings.set(self.exam.exam_id, side, reading, shown)
        self._refresh()
        self.reading_changed.emit(self.exam.exam_id)

    def _state_changed(self, name: str) -> None:
        if name == "hybrid_weight":
            self.weight_slider.blockSignals(True)
            self.weight_slider.setValue(round(self.state.hybrid_weight * 100))
            self.weight_slider.blockSignals(False)
            self._refresh()

    def _refresh(self) -> None:
        self.weight_label.setText(f"{self.state.hybrid_weight:.2f}")
        for side, box in self.breasts.items():
            breast = self.result.breasts.get(side) if self.result else None
            box.benign.setText(percent(breast.benign if breast else None))
            raw = breast.malignant if breast else None
            shown = (
                raw if raw is None or self.calibration is None else self.calibration.breast_probability(raw)
            )
            box.malignant.setText(percent(shown))
            box.malignant.setToolTip(f"raw score {percent(raw)}" if raw is not None else "")
            reading = self.readings.get(self.exam.exam_id, side) if self.exam else Estimate()
            score = hybrid_score(reading.probability, raw, self.state.hybrid_weight)
            box.hybrid.setText(percent(score))
