"""The worklist: exams with patient, date, view completeness, status and malignancy score; sortable,
filterable; Enter (or a double-click) opens an exam."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLineEdit, QTableView, QVBoxLayout, QWidget

from gmic_core.imaging import Exam, View

SORT_ROLE = Qt.ItemDataRole.UserRole


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
    score: float | None = None  # the model's exam-level malignancy score


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


class WorklistModel(QAbstractTableModel):
    COLUMNS = ("Patient", "Patient ID", "Date", "Views", "Status", "Score")

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[WorklistEntry] = []
        self._rows: dict[str, int] = {}

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self.entries)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        entry = self.entries[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(entry, column)
        if role == SORT_ROLE:
            if column == 5:
                return -1.0 if entry.score is None else entry.score
            return self._text(entry, column)
        if role == Qt.ItemDataRole.TextAlignmentRole and column == 5:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
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
            "" if entry.score is None else f"{entry.score:.3f}",
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

    def update(self, exam_id: str, status: ExamStatus | None = None, score: float | None = None) -> None:
        row = self._rows.get(exam_id)
        if row is None:
            return
        entry = self.entries[row]
        if status is not None:
            entry.status = status
        if score is not None:
            entry.score = score
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))


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
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter: name, id, date, status...")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.table = WorklistTable()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.open_requested.connect(self._open_index)
        self.table.doubleClicked.connect(self._open_index)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.filter)
        layout.addWidget(self.table)

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
