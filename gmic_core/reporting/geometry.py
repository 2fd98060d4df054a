"""File-frame (row, column) points as SCOORD graphic data: (column, row) pairs, the upper left corner
of the upper left pixel at (0, 0) (PS3.3 C.18.6.1.2)."""

from __future__ import annotations

import numpy as np


def graphic_data(points: np.ndarray) -> np.ndarray:
    """``[N, 2]`` (row, column) -> ``[N, 2]`` (column, row), float32 as DICOM FL stores it."""
    return np.asarray(points, dtype=np.float64)[:, ::-1].astype(np.float32)


def box_outline(box: tuple[float, float, float, float]) -> np.ndarray:
    """A (top, left, bottom, right) box as a closed ``[5, 2]`` (row, column) polyline."""
    top, left, bottom, right = box
    return np.array([[top, left], [top, right], [bottom, right], [bottom, left], [top, left]], np.float64)
