"""Settings: the model (one checkpoint or an ensemble of several) and the device it runs on."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.settings import DEMO_MODEL, Settings
from gmic_core.inference import select_device, supported_precisions


def available_devices() -> list[str]:
    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._settings = settings
        self.weights = QListWidget()
        for path in settings.weights:
            self.weights.addItem(str(path))
        add = QPushButton("Add checkpoint...")
        add.clicked.connect(self._add)
        demo = QPushButton("Use the demo model")
        demo.setEnabled(DEMO_MODEL.is_file())
        demo.clicked.connect(self._use_demo)
        remove = QPushButton("Remove")
        remove.clicked.connect(self._remove)
        buttons_row = QHBoxLayout()
        for button in (add, demo, remove):
            buttons_row.addWidget(button)
        self.device = QComboBox()
        self.device.addItems(available_devices())
        self.device.setCurrentText(settings.device)
        self.precision = QComboBox()
        self.device.currentTextChanged.connect(self._device_changed)
        self._device_changed(self.device.currentText())
        self.precision.setCurrentText(settings.precision)
        note = QLabel(
            "Several checkpoints make an ensemble: probabilities and saliency maps are the members' means. "
            "The published GMIC checkpoints (sample_model_1.p ... sample_model_5.p) load as they are."
        )
        note.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Device", self.device)
        form.addRow("Precision", self.precision)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        box.accepted.connect(self.accept)
        box.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Model checkpoints"))
        layout.addWidget(self.weights)
        layout.addLayout(buttons_row)
        layout.addWidget(note)
        layout.addLayout(form)
        layout.addWidget(box)

    def _add(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Add checkpoints", str(DEMO_MODEL.parent), "Checkpoints (*.pt *.p *.pth);;All files (*)"
        )
        for file in files:
            self.weights.addItem(file)

    def _remove(self) -> None:
        for item in self.weights.selectedItems():
            self.weights.takeItem(self.weights.row(item))

    def _use_demo(self) -> None:
        self.weights.clear()
        self.weights.addItem(str(DEMO_MODEL))

    def _device_changed(self, device: str) -> None:
        current = self.precision.currentText()
        self.precision.clear()
        self.precision.addItems(["auto", *supported_precisions(select_device(device))])
        if current:
            self.precision.setCurrentText(current)

    def chosen(self) -> Settings:
        return dataclasses.replace(
            self._settings,
            weights=[Path(self.weights.item(row).text()) for row in range(self.weights.count())],
            device=self.device.currentText(),
            precision=self.precision.currentText(),
        )
