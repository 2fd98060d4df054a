"""Giving an estimate in the side panel as a reader does: the value, then Enter."""

from __future__ import annotations

from app.gui.side_panel import BreastBox


def give(box: BreastBox, percent: int) -> None:
    box.probability.setValue(percent)
    box.probability.editingFinished.emit()
