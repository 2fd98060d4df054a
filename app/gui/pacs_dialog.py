"""File > Open from PACS and Settings > PACS nodes.

:class:`OpenFromPacs` is a non-modal window beside the main window: a query form (node, patient ID,
study dates, modality), the studies found, and the retrieval of the chosen study in the background
(on the main window's I/O pool, with progress and cancel) into ``pacs/STUDY_UID`` of the data folder.
The exam goes to the worklist and opens in the hanging protocol as soon as its four views are there.
:class:`NodesDialog` edits the PACS nodes file the commands read (``pacs.toml`` in the data folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.gui import pacs_tasks
from app.gui.tasks import ScanReport
from app.gui.workers import Worker
from app.node.config import NODES_FILE, NodeConfig, PacsNode, Tls, check_ae_title, read_nodes, write_nodes
from app.node.query import StudyQuery, StudyRow
from gmic_core.errors import GMICError
from gmic_core.imaging import Exam

if TYPE_CHECKING:
    from app.gui.window import MainWindow

STUDY_COLUMNS = ("Patient ID", "Date", "Modalities", "Instances", "Description")


def nodes_file(window: MainWindow) -> Path:
    return window.settings.data_dir / NODES_FILE


class OpenFromPacs(QDialog):
    studies_found = Signal(int)  # how many
    retrieved = Signal(object)  # the ScanReport of the study retrieved

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.setWindowTitle("Open from PACS")
        self.main = window
        self.config = NodeConfig()
        self.rows: list[StudyRow] = []
        self._worker: Worker | None = None
        self._opened: set[str] = set()
        self.node = QComboBox()
        edit = QPushButton("Edit nodes...")
        edit.clicked.connect(self.edit_nodes)
        node_row = QHBoxLayout()
        node_row.addWidget(self.node, 1)
        node_row.addWidget(edit)
        self.patient_id = QLineEdit()
        self.dates = QLineEdit()
        self.dates.setPlaceholderText("YYYYMMDD-YYYYMMDD (either side may be open)")
        self.modality = QLineEdit("MG")
        form = QFormLayout()
        form.addRow("PACS", node_row)
        form.addRow("Patient ID", self.patient_id)
        form.addRow("Study dates", self.dates)
        form.addRow("Modality", self.modality)
        self.search_button = QPushButton("Search")
        self.search_button.clicked.connect(self.search)
        self.table = QTableWidget(0, len(STUDY_COLUMNS))
        self.table.setHorizontalHeaderLabels(STUDY_COLUMNS)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.doubleClicked.connect(self.retrieve)
        self.retrieve_button = QPushButton("Retrieve and open")
        self.retrieve_button.clicked.connect(self.retrieve)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.status = QLabel()
        self.status.setWordWrap(True)
        actions = QHBoxLayout()
        for widget in (self.retrieve_button, self.cancel_button, self.progress):
            actions.addWidget(widget)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.search_button)
        layout.addWidget(self.table, 1)
        layout.addLayout(actions)
        layout.addWidget(self.status)
        self.resize(720, 480)
        self.reload_nodes()
        self._set_busy(False)

    def reload_nodes(self) -> None:
        try:
            self.config = read_nodes(nodes_file(self.main))
        except GMICError as error:
            self.config = NodeConfig()
            self.status.setText(str(error))
        self.node.clear()
        self.node.addItems(sorted(self.config.nodes))
        if not self.config.nodes:
            self.status.setText("No PACS node is configured: add one with Edit nodes.")

    def edit_nodes(self) -> None:
        if NodesDialog(nodes_file(self.main), self).exec():
            self.reload_nodes()

    def _source(self):
        node = self.config.nodes.get(self.node.currentText())
        if node is None:
            raise GMICError("Choose a PACS node first (Edit nodes adds one).")
        return pacs_tasks.source_of(node, self.config)

    def _start(self, worker: Worker) -> Worker:
        worker.signals.progress.connect(self._progress)
        worker.signals.error.connect(self.status.setText)
        worker.signals.cancelled.connect(lambda: self.status.setText("Cancelled; retrieving again resumes."))
        worker.signals.finished.connect(lambda: self._set_busy(False))
        self._worker = worker
        self._set_busy(True)
        self.main.io_pool.start(worker)
        return worker

    def search(self) -> Worker | None:
        try:
            query = StudyQuery.of(
                self.patient_id.text().strip(), self.dates.text().strip() or None, self.modality.text()
            )
            source = self._source()
        except GMICError as error:
            self.status.setText(str(error))
            return None
        self.status.clear()
        worker = Worker("Searching the PACS", pacs_tasks.find_studies, source, query)
        worker.signals.result.connect(self._show_studies)
        return self._start(worker)

    def _show_studies(self, rows: list[StudyRow]) -> None:
        self.rows = rows
        self.table.setRowCount(len(rows))
        for index, row in enumerate(rows):
            values = (row.patient_id, row.date, row.modalities, row.instances, row.description)
            for column, value in enumerate(values):
                self.table.setItem(index, column, QTableWidgetItem("" if value is None else str(value)))
        if rows:
            self.table.selectRow(0)
        self.status.setText(f"{len(rows)} studies found." if rows else "No study matches.")
        self.studies_found.emit(len(rows))

    def retrieve(self) -> Worker | None:
        selected = self.table.selectionModel().selectedRows()
        if not selected or self._worker is not None:
            return None
        try:
            source = self._source()
        except GMICError as error:
            self.status.setText(str(error))
            return None
        study_uid = self.rows[selected[0].row()].study_uid
        folder = self.main.settings.data_dir / pacs_tasks.PACS_FOLDER / study_uid
        self.status.setText("Retrieving; the exam opens once its four views are here.")
        worker = Worker("Retrieving from the PACS", pacs_tasks.retrieve_study, source, study_uid, folder)
        worker.signals.partial.connect(self._exam_arrived)
        worker.signals.result.connect(self._retrieved)
        return self._start(worker)

    def _exam_arrived(self, exam: Exam) -> None:
        self._opened.add(exam.exam_id)
        self.main.worklist.add(exam)
        self.main.open_exam(exam)

    def _retrieved(self, report: ScanReport) -> None:
        fresh = [exam for exam in report.exams if exam.exam_id not in self._opened]
        for exam in fresh:
            self.main.worklist.add(exam)
        if fresh and len(fresh) == len(report.exams):
            self._exam_arrived(fresh[0])  # none had four views: open what there is
        self.main.batch.refresh_scores()
        failures = f"; {len(report.failures)} files could not be used" if report.failures else ""
        self.status.setText(f"Retrieved: {len(report.exams)} exams{failures}.")
        self.retrieved.emit(report)

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    def _progress(self, message: str, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1) if total else 0)
        self.progress.setValue(done)
        self.progress.setFormat(f"{message}: %v/%m" if total else message)

    def _set_busy(self, busy: bool) -> None:
        if not busy:
            self._worker = None
        for widget in (self.search_button, self.retrieve_button):
            widget.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.progress.setVisible(busy)


class NodesDialog(QDialog):
    """The nodes file as a form: this node's AE title, and one node (name, AE title, host, port,
    DICOMweb URL, TLS files) at a time, chosen from the list; Save writes the file."""

    def __init__(self, path: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("PACS nodes")
        self.path = path
        self.status = QLabel()
        self.status.setWordWrap(True)
        try:
            config = read_nodes(path)
        except GMICError as error:
            config = NodeConfig()
            self.status.setText(f"{error} Saving replaces it.")
        self.nodes = dict(config.nodes)
        self.calling_ae = QLineEdit(config.calling_ae)
        self.choice = QComboBox()
        self.choice.currentTextChanged.connect(self._show)
        remove = QPushButton("Remove")
        remove.clicked.connect(self._remove)
        self.name, self.ae_title, self.host = QLineEdit(), QLineEdit(), QLineEdit()
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(104)
        self.dicomweb = QLineEdit()
        self.tls_ca, self.tls_cert, self.tls_key = QLineEdit(), QLineEdit(), QLineEdit()
        apply = QPushButton("Add or update this node")
        apply.clicked.connect(self.apply)
        form = QFormLayout()
        form.addRow("This node's AE title", self.calling_ae)
        choice_row = QHBoxLayout()
        choice_row.addWidget(self.choice, 1)
        choice_row.addWidget(remove)
        form.addRow("Nodes", choice_row)
        for label, field in (
            ("Name", self.name),
            ("AE title", self.ae_title),
            ("Host", self.host),
            ("Port", self.port),
            ("DICOMweb URL (optional)", self.dicomweb),
            ("TLS CA file (optional)", self.tls_ca),
            ("TLS certificate (optional)", self.tls_cert),
            ("TLS key (optional)", self.tls_key),
        ):
            form.addRow(label, field)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(apply)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self._refresh_choice()

    def _refresh_choice(self, current: str = "") -> None:
        self.choice.blockSignals(True)
        self.choice.clear()
        self.choice.addItems(sorted(self.nodes))
        self.choice.blockSignals(False)
        self.choice.setCurrentText(current)
        self._show(self.choice.currentText())

    def _show(self, name: str) -> None:
        node = self.nodes.get(name)
        if node is None:
            return
        tls = node.tls or Tls()
        for field, value in (
            (self.name, node.name),
            (self.ae_title, node.ae_title),
            (self.host, node.host),
            (self.dicomweb, node.dicomweb),
            (self.tls_ca, tls.ca),
            (self.tls_cert, tls.cert),
            (self.tls_key, tls.key),
        ):
            field.setText("" if value is None else str(value))
        self.port.setValue(node.port)

    def apply(self) -> PacsNode | None:
        """The form as a node, added or replacing the one of its name; None (reason shown) if invalid."""
        paths = [
            Path(field.text().strip()) if field.text().strip() else None
            for field in (self.tls_ca, self.tls_cert, self.tls_key)
        ]
        try:
            name = self.name.text().strip()
            if not name:
                raise GMICError("Give the node a name.")
            node = PacsNode(
                name,
                self.ae_title.text().strip(),
                self.host.text().strip(),
                self.port.value(),
                self.dicomweb.text().strip() or None,
                Tls(*paths) if any(paths) else None,
            )
        except GMICError as error:
            self.status.setText(str(error))
            return None
        self.nodes[name] = node
        self.status.clear()
        self._refresh_choice(name)
        return node

    def _remove(self) -> None:
        self.nodes.pop(self.choice.currentText(), None)
        self._refresh_choice()

    def save(self) -> None:
        """Write the file (with the form's node when filled in) and close; stays open on an error."""
        if self.name.text().strip() and self.apply() is None:
            return
        try:
            write_nodes(NodeConfig(check_ae_title(self.calling_ae.text().strip()), self.nodes), self.path)
        except (GMICError, OSError) as error:
            self.status.setText(f"{self.path}: not saved ({error})")
            return
        self.accept()


def open_from_pacs(window: MainWindow) -> OpenFromPacs:
    """Show the window's Open-from-PACS dialog (one per main window), its nodes reread."""
    dialog = window.findChild(OpenFromPacs)
    if dialog is None:
        dialog = OpenFromPacs(window)
    else:
        dialog.reload_nodes()
    dialog.show()
    dialog.raise_()
    return dialog


def edit_nodes(window: MainWindow) -> None:
    NodesDialog(nodes_file(window), window).exec()
