"""The crossing from the ``stored`` frame (the image as the reader returns it) to the ``file`` frame
(the pixel grid of the DICOM file), DESIGN.md Conventions. The reader decodes the whole grid and at
most mirrors its columns (:attr:`~gmic_core.imaging.Mammogram.mirrored`); it never crops, transposes
or resamples, so the mirror is all there is to undo."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gmic_core.imaging import Mammogram


@dataclass(frozen=True)
class FileFrame:
    """One view's file frame: its shape (rows, columns; the stored image's too) and whether the reader
    mirrored the file's columns to make the stored image."""

    shape: tuple[int, int]
    mirrored: bool

    @classmethod
    def of(cls, mammogram: Mammogram) -> FileFrame:
        rows, columns = mammogram.pixels.shape
        return cls((rows, columns), mammogram.mirrored)

    def points(self, points: np.ndarray) -> np.ndarray:
        """``[N, 2]`` continuous stored (row, column) -> file (row, column); pixel ``i`` spans
        ``[i, i + 1)`` in both frames, so a mirror maps column ``c`` to ``columns - c``."""
        points = np.asarray(points, dtype=np.float64)
        if not self.mirrored:
            return points.copy()
        return np.stack([points[:, 0], self.shape[1] - points[:, 1]], axis=1)

    def box(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """A stored (top, left, bottom, right; exclusive) box as the file-frame box it covers."""
        top, left, bottom, right = box
        (_, left), (_, right) = np.sort(self.points(np.array([[top, left], [bottom, right]])), axis=0)
        return top, float(left), bottom, float(right)

    def image(self, values: np.ndarray) -> np.ndarray:
        """``[..., H, W]`` on the stored pixel grid -> the same values on the file's pixel grid."""
        if values.shape[-2:] != self.shape:
            raise ValueError(f"a map of shape {values.shape[-2:]} is not on this {self.shape} image")
        return np.ascontiguousarray(values[..., ::-1]) if self.mirrored else values
