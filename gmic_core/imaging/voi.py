"""Display defaults: the VOI (value of interest) transformation of DICOM PS3.3 section C.11.2.

A :class:`Voi` holds every window pair and VOI LUT a file offers and names the one that wins
(:attr:`Voi.default`):

1. the first valid Window Center / Window Width pair (0028,1050/1051), applied with the file's VOI
   LUT Function (0028,1056): the vendor's first pair is its primary rendering ("NORMAL" on GE), and a
   window is what the viewer's level controls start from;
2. else the first valid item of the VOI LUT Sequence (0028,3010);
3. else, once pixels are decoded, an automatic window over the breast (:func:`auto_window`).

Every transformation maps modality values (after the Modality LUT, and after MONOCHROME1 inversion,
see :meth:`Voi.inverted`) to display values in [0, 1], where 1 is white.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

# Percentiles of the non-background pixels spanned by the automatic window (a display choice).
AUTO_WINDOW_PERCENTILES = (0.5, 99.5)
AUTO_WINDOW_EXPLANATION = "AUTO"


class VoiFunction(StrEnum):
    """VOI LUT Function (0028,1056) defined terms."""

    LINEAR = "LINEAR"  # PS3.3 C.11.2.1.2.1
    LINEAR_EXACT = "LINEAR_EXACT"  # PS3.3 C.11.2.1.3.2
    SIGMOID = "SIGMOID"  # PS3.3 C.11.2.1.3.1


@dataclass(frozen=True)
class Window:
    """One window pair. ``width`` is at least 1 for LINEAR and above 0 otherwise (PS3.3 C.11.2.1.2)."""

    center: float
    width: float
    function: VoiFunction = VoiFunction.LINEAR
    explanation: str = ""

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Display values in [0, 1] (float32) for modality values."""
        x = np.asarray(values, dtype=np.float32)
        center, width = np.float32(self.center), np.float32(self.width)
        if self.function is VoiFunction.SIGMOID:
            return (1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))).astype(np.float32)
        if self.function is VoiFunction.LINEAR_EXACT:
            return np.clip((x - center) / width + 0.5, 0.0, 1.0)
        if width <= 1:
            return (x > center - 0.5).astype(np.float32)
        return np.clip((x - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)

    def inverted(self, total: float) -> Window:
        """The window that displays ``total - x`` as this one displays ``x``, inverted (MONOCHROME1).
        LINEAR's half-pixel offset (C.11.2.1.2.1) makes its mirror centre one higher."""
        shift = 1.0 if self.function is VoiFunction.LINEAR else 0.0
        return Window(total - self.center + shift, self.width, self.function, self.explanation)


@dataclass(frozen=True, eq=False)
class VoiLut:
    """One VOI LUT Sequence item (PS3.3 C.11.2.1.1): LUT Descriptor (entries, first value mapped,
    bits per entry) and LUT Data. Inputs below or above the table take its first or last entry."""

    first_mapped: int
    data: np.ndarray
    bits: int
    explanation: str = ""

    @property
    def center(self) -> float:
        """Centre of the input range the table covers (for level controls)."""
        return self.first_mapped + len(self.data) / 2

    @property
    def width(self) -> float:
        return float(len(self.data))

    def apply(self, values: np.ndarray) -> np.ndarray:
        index = np.clip(
            np.rint(np.asarray(values, dtype=np.float64)) - self.first_mapped, 0, len(self.data) - 1
        )
        top = np.float32((1 << self.bits) - 1)
        return np.minimum(self.data[index.astype(np.intp)].astype(np.float32) / top, np.float32(1.0))

    def inverted(self, total: float) -> VoiLut:
        """The table for inputs ``total - x`` with inverted output (MONOCHROME1)."""
        top = (1 << self.bits) - 1
        data = (top - np.minimum(self.data[::-1].astype(np.int64), top)).astype(np.uint16)
        return VoiLut(int(total) - self.first_mapped - len(self.data) + 1, data, self.bits, self.explanation)


@dataclass(frozen=True)
class Voi:
    """Every VOI a file offers; :attr:`default` is the one the rule in the module docstring picks."""

    windows: tuple[Window, ...] = ()
    luts: tuple[VoiLut, ...] = ()

    @property
    def default(self) -> Window | VoiLut | None:
        if self.windows:
            return self.windows[0]
        if self.luts:
            return self.luts[0]
        return None

    @property
    def center(self) -> float | None:
        default = self.default
        return None if default is None else default.center

    @property
    def width(self) -> float | None:
        default = self.default
        return None if default is None else default.width

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Display values in [0, 1] under the default VOI."""
        default = self.default
        if default is None:
            raise ValueError("no VOI to apply: use the Voi of a decoded Mammogram, which always has one")
        return default.apply(values)

    def inverted(self, total: float) -> Voi:
        return Voi(
            tuple(window.inverted(total) for window in self.windows),
            tuple(lut.inverted(total) for lut in self.luts),
        )

    def or_auto(self, pixels: np.ndarray) -> Voi:
        """This VOI if it has a default, else one holding only :func:`auto_window` of ``pixels``."""
        if self.default is not None:
            return self
        return Voi(windows=(auto_window(pixels),))


def auto_window(pixels: np.ndarray) -> Window:
    """A LINEAR window over the 0.5-99.5th percentiles of the pixels above the image minimum (the
    background of a mammogram whose higher values are brighter)."""
    sample = np.asarray(pixels)[::4, ::4]
    tissue = sample[sample > sample.min()]
    if tissue.size == 0:
        tissue = sample.ravel()
    low, high = np.percentile(tissue, AUTO_WINDOW_PERCENTILES)
    width = max(float(high - low), 1.0)
    return Window(float(low) + width / 2, width, VoiFunction.LINEAR, AUTO_WINDOW_EXPLANATION)
