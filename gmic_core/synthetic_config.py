"""What a synthetic dataset can be asked for (the choices of ``gmic synth``): lesion kinds, sizes,
encodings. Standard library only, so that the command line offers these without importing numpy,
torch or pydicom; :mod:`gmic_core.synthetic` draws the exams."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

FULL_SIZE = (4096, 3328)  # rows, columns of a Hologic Selenia Dimensions image
FULL_SIZE_SPACING_MM = 0.07  # its detector pixel pitch (at full size)
TRANSFER_SYNTAX_NAMES = ("explicit-little", "jpeg2000-lossless")
PHOTOMETRICS = ("MONOCHROME2", "MONOCHROME1")
BITS_STORED = (12, 14)


class Lesion(StrEnum):
    """Lesion morphologies (BI-RADS descriptors) and whether they are malignant."""

    ROUND_MASS = "mass:round"
    OVAL_MASS = "mass:oval"
    IRREGULAR_MASS = "mass:irregular"
    SPICULATED_MASS = "mass:spiculated"
    COARSE_CALCIFICATIONS = "calcifications:coarse"
    PLEOMORPHIC_CALCIFICATIONS = "calcifications:fine-pleomorphic"
    LINEAR_CALCIFICATIONS = "calcifications:fine-linear-branching"

    @property
    def malignant(self) -> bool:
        return self in MALIGNANT_LESIONS

    @property
    def is_mass(self) -> bool:
        return self.value.startswith("mass")


MALIGNANT_LESIONS = frozenset(
    {
        Lesion.IRREGULAR_MASS,
        Lesion.SPICULATED_MASS,
        Lesion.PLEOMORPHIC_CALCIFICATIONS,
        Lesion.LINEAR_CALCIFICATIONS,
    }
)
BENIGN_LESIONS = (Lesion.ROUND_MASS, Lesion.OVAL_MASS, Lesion.COARSE_CALCIFICATIONS)
MALIGNANT_CHOICES = (
    Lesion.IRREGULAR_MASS,
    Lesion.SPICULATED_MASS,
    Lesion.PLEOMORPHIC_CALCIFICATIONS,
    Lesion.LINEAR_CALCIFICATIONS,
)


@dataclass(frozen=True)
class SynthesisConfig:
    """What a dataset looks like. ``size`` is (rows, columns); smaller sizes are the same anatomy at a
    coarser pixel spacing. The fractions are per-breast probabilities of carrying at least one
    lesion of that class; ``lesions`` are the kinds drawn from (a class with none of its kinds there
    gets no lesion)."""

    size: tuple[int, int] = FULL_SIZE
    malignant_fraction: float = 0.2
    benign_fraction: float = 0.2
    bits_stored: int = 12
    lesions: frozenset[Lesion] = frozenset(Lesion)

    @property
    def spacing_mm(self) -> float:
        return spacing_mm(self.size)


def spacing_mm(size: tuple[int, ...]) -> float:
    """Pixel spacing at the breast of an image of ``size``: the full-size detector's, scaled."""
    return FULL_SIZE_SPACING_MM * FULL_SIZE[0] / size[0]
