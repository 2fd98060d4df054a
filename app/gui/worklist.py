"""The worklist: exams with patient, date, view completeness, status, malignancy score and triage flags
(from the operating points of the model); sortable, filterable by text and by flag; Enter (or a
double-click) opens an exam. In a blinded reading the model's scores and flags are not shown, sorted
on or matched by the filter.

Where the model has a site calibration the score column shows the calibrated exam probability and the
1-10 decile score, headed "[1-10]", with the raw score in the cell's tooltip; otherwise the raw score,
headed "raw"; the header's tooltip says which. Sorting follows the raw score either way (the
calibration is monotone). The list starts sorted by score, most suspicious first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHeaderView,
    QLineEdit,
    QProxyStyle,
    QStyle,
    QStyleOptionHeader,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.triage import FLAG_TOP, HIGH_SUSPICION, LIKELY_NORMAL
from gmic_core.imaging import Exam, View

SORT_ROLE = Qt.ItemDataRole.UserRole
SCORE_COLUMN = 5
FLAGS_COLUMN = 6
FLAG_NAMES = {HIGH_SUSPICION: "high suspicion", LIKELY_NORMAL: "likely normal", FLAG_TOP: "top fraction"}
SCORE_HEADERS = {True: "Score [1-10]", False: "Score (raw)"}
SCORE_HEADER_TIPS = {
    True: "Calibrated exam probability [decile 1-10 among the site's exams]; the raw score in each tooltip",
    False: "Raw model score, uncalibrated (the model has no site calibration)",
}
STATUS_COLUMN = 4
# Left to right on screen: what the reader triages by comes right after the name, so that it shows at
# the window's default worklist width; the model's column numbers stay as COLUMNS lists them.
VISUAL_ORDER = (0, SCORE_COLUMN, FLAGS_COLUMN, STATUS_COLUMN, 2, 3, 1)
# Pixels: a long name or flag list is elided (whole in the cell's tooltip) rather than pushing the
# triage columns off screen; the panel is never narrower than the columns up to the status.
PATIENT_WIDTH = 90
FLAGS_WIDTH = 100
MINIMUM_WIDTH = 380


class ExamStatus(StrEnum):
    NEW = "new"
    ANALYSING = "analysing"
    ANALYSED = "analysed"
    READ = "read"
    FAILED = "failed"


@dataclass
class WorklistEntry:
    exam: Exam
    status: ExamStatus = ExamStatus.NEW
    score: float | None = None  # the model's exam-level malignancy score, raw
    flags: tuple[str, ...] = ()  # app.triage flags of the score
    probability: float | None = None  # the score calibrated for the site, where the model has a calibration
    decile: int | None = None  # the score's 1-10 decile among the site's exams, likewise


def study_date(exam: Exam) -> str:
    """YYYY-MM-DD from the DICOM Study Date, or empty."""
    date = exam.patient.study_date
    return f"{date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) == 8 and date.isdigit() else date


def completeness(exam: Exam) -> str:
    text = f"{len(exam.images)}/{len(View)}"
    if exam.missing_views:
        text += " (no " + ", ".join(view.value for view in exam.missing_views) + ")"
    if exam.extra_images:
        text += f" +{len(exam.extra_images)}"
    return text


def score_text(entry: WorklistEntry) -> str:
    if entry.score is None:
        return ""
    if entry.probability is None:
        return f"{entry.score:.3f}"
    return f"{entry.probability:.3f} [{entry.decile}]"


class WorklistModel(QAbstractTableModel):
    COLUMNS = ("Patient", "Patient ID", "Date", "Views", "Status", "Score", "Flags")

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[WorklistEntry] = []
        self._rows: dict[str, int] = {}
        self.model_visible: Callable[[str], bool] = lambda _exam_id: True
        self.calibrated = False

    def set_model_visible(self, visible: Callable[[str], bool]) -> None:
        """Which exams' scores and flags may be shown (``ReadingSession.model_visible``): the others
        show none, sort as unscored and never match a flag filter."""
        self.beginResetModel()
        self.model_visible = visible
        self.endResetModel()

    def set_calibrated(self, calibrated: bool) -> None:
        """Whether the model has a site calibration: the score column's header says which it shows."""
        if calibrated != self.calibrated:
            self.calibrated = calibrated
            self.headerDataChanged.emit(Qt.Orientation.Horizontal, SCORE_COLUMN, SCORE_COLUMN)

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self.entries)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return SCORE_HEADERS[self.calibrated] if section == SCORE_COLUMN else self.COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole and section == SCORE_COLUMN:
            return SCORE_HEADER_TIPS[self.calibrated]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        entry = self.entries[index.row()]
        column = index.column()
        hidden = column in (SCORE_COLUMN, FLAGS_COLUMN) and not self.model_visible(entry.exam.exam_id)
        if role == Qt.ItemDataRole.DisplayRole:
            return "" if hidden else self._text(entry, column)
        if role == SORT_ROLE:
            if column == SCORE_COLUMN:
                return -1.0 if hidden or entry.score is None else entry.score
            if hidden:
                return ""
            return self._text(entry, column)
        if role == Qt.ItemDataRole.TextAlignmentRole and column == SCORE_COLUMN:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and column in (0, FLAGS_COLUMN) and not hidden:
            return self._text(entry, column) or None
        if (
            role == Qt.ItemDataRole.ToolTipRole
            and column == SCORE_COLUMN
            and not hidden
            and entry.score is not None
        ):
            if entry.probability is None:
                return f"raw score {entry.score:.4f}, uncalibrated (no site calibration of this model)"
            return (
                f"calibrated probability {entry.probability:.3f}, decile {entry.decile} of 10 among the "
                f"site's exams; raw score {entry.score:.4f}"
            )
        return None

    @staticmethod
    def _text(entry: WorklistEntry, column: int) -> str:
        exam = entry.exam
        return (
            exam.patient.name.replace("^", " ").strip(),
            exam.patient.patient_id,
            study_date(exam),
            completeness(exam),
            entry.status.value,
            score_text(entry),
            ", ".join(FLAG_NAMES.get(flag, flag) for flag in entry.flags),
        )[column]

    def add(self, exam: Exam) -> bool:
        """Add an exam unless it is listed already; True when added."""
        if exam.exam_id in self._rows:
            return False
        row = len(self.entries)
        self.beginInsertRows(QModelIndex(), row, row)
        self.entries.append(WorklistEntry(exam))
        self._rows[exam.exam_id] = row
        self.endInsertRows()
        return True

    def row_of(self, exam_id: str) -> int | None:
        return self._rows.get(exam_id)

    def entry(self, exam_id: str) -> WorklistEntry | None:
        row = self._rows.get(exam_id)
        return None if row is None else self.entries[row]

    def update(
        self,
        exam_id: str,
        status: ExamStatus | None = None,
        score: float | None = None,
        flags: tuple[str, ...] | None = None,
        probability: float | None = None,
        decile: int | None = None,
    ) -> None:
        """A new ``score`` brings its ``probability`` and ``decile`` (None where uncalibrated)."""
        row = self._rows.get(exam_id)
        if row is None:
            return
        entry = self.entries[row]
        if status is not None:
            entry.status = status
        if score is not None:
            entry.score, entry.probability, entry.decile = score, probability, decile
        if flags is not None:
            entry.flags = flags
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))


class WorklistFilter(QSortFilterProxyModel):
    """The text filter on every column, and optionally one flag the exam must carry."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.flag: str | None = None

    def set_flag(self, flag: str | None) -> None:
        self.beginFilterChange()
        self.flag = flag
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex) -> bool:
        model = self.sourceModel()
        entry = model.entries[source_row]
        if self.flag is not None and (
            not model.model_visible(entry.exam.exam_id) or self.flag not in entry.flags
        ):
            return False
        return super().filterAcceptsRow(source_row, source_parent)


class SortArrowStyle(QProxyStyle):
    """Header sort arrows that point the way the values run down the rows: ▲ ascending, ▼ descending.
    (Qt passes ``SortDown`` for ascending order and Fusion draws it as ▼, which reads backwards.)"""

    def drawPrimitive(self, element, option, painter, widget=None) -> None:
        if element == QStyle.PrimitiveElement.PE_IndicatorHeaderArrow and isinstance(
            option, QStyleOptionHeader
        ):
            flipped = QStyleOptionHeader(option)
            if option.sortIndicator == QStyleOptionHeader.SortIndicator.SortUp:
                flipped.sortIndicator = QStyleOptionHeader.SortIndicator.SortDown
            elif option.sortIndicator == QStyleOptionHeader.SortIndicator.SortDown:
                flipped.sortIndicator = QStyleOptionHeader.SortIndicator.SortUp
            option = flipped
        super().drawPrimitive(element, option, painter, widget)


class WorklistTable(QTableView):
    """Enter opens the selected exam, as a double-click does."""

    open_requested = Signal(QModelIndex)

    def keyPressEvent(self, event) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self.open_requested.emit(self.currentIndex())
            return
        super().keyPressEvent(event)


class WorklistPanel(QWidget):
    exam_chosen = Signal(object)  # Exam

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = WorklistModel()
        self.proxy = WorklistFilter(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter: name, id, date, status...")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.flag_filter = QComboBox()
        self.flag_filter.addItem("All exams", None)
        for flag, name in FLAG_NAMES.items():
            self.flag_filter.addItem(f"Flagged {name}", flag)
        self.flag_filter.setToolTip("Triage flags from the operating points of the current model")
        self.flag_filter.currentIndexChanged.connect(
            lambda _: self.proxy.set_flag(self.flag_filter.currentData())
        )
        self.table = WorklistTable()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        self._arrow_style = SortArrowStyle(header.style().name())
        header.setStyle(self._arrow_style)
        for visual, logical in enumerate(VISUAL_ORDER):
            header.moveSection(header.visualIndex(logical), visual)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        for column, width in ((0, PATIENT_WIDTH), (FLAGS_COLUMN, FLAGS_WIDTH)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(column, width)
        header.setStretchLastSection(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.sortByColumn(SCORE_COLUMN, Qt.SortOrder.DescendingOrder)  # most suspicious first
        self.table.open_requested.connect(self._open_index)
        self.table.doubleClicked.connect(self._open_index)
        self.setMinimumWidth(MINIMUM_WIDTH)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.filter)
        layout.addWidget(self.flag_filter)
        layout.addWidget(self.table)

    def set_model_visible(self, visible: Callable[[str], bool], blinding: bool) -> None:
        """Scores and flags only for the exams ``visible`` allows; while ``blinding`` (some exam is
        hidden) the flag filter is off, so that what it leaves out says nothing of a hidden exam."""
        self.model.set_model_visible(visible)
        self.flag_filter.setEnabled(not blinding)
        if blinding:
            self.flag_filter.setCurrentIndex(0)

    def add(self, exam: Exam) -> None:
        self.model.add(exam)

    def exams_in_order(self) -> list[Exam]:
        """The exams as listed now (sorted and filtered)."""
        return [
            self.model.entries[self.proxy.mapToSource(self.proxy.index(row, 0)).row()].exam
            for row in range(self.proxy.rowCount())
        ]

    def select(self, exam_id: str) -> None:
        row = self.model.row_of(exam_id)
        if row is None:
            return
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if index.isValid():
            self.table.selectRow(index.row())
            self.table.scrollTo(index)

    def neighbour(self, exam_id: str | None, step: int) -> Exam | None:
        """The exam ``step`` rows away from ``exam_id`` in the listed order (the first if none)."""
        exams = self.exams_in_order()
        if not exams:
            return None
        ids = [exam.exam_id for exam in exams]
        if exam_id not in ids:
            return exams[0]
        position = ids.index(exam_id) + step
        return exams[position] if 0 <= position < len(exams) else None

    def _open_index(self, index: QModelIndex) -> None:
        source = self.proxy.mapToSource(index)
        self.exam_chosen.emit(self.model.entries[source.row()].exam)
