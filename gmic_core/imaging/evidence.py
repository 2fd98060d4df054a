"""Evidence of what an image is beyond its laterality and view attributes: text patterns (in header
text and path names) and pixels. :mod:`gmic_core.imaging.dicom` weighs it; the rules and their
precedence are in ``docs/imaging.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from gmic_core.imaging.views import Laterality, NotScreening, ViewCode, ViewModifier

LATERALITY_WORDS = {
    "L": Laterality.LEFT,
    "R": Laterality.RIGHT,
    "LEFT": Laterality.LEFT,
    "RIGHT": Laterality.RIGHT,
}
# Projections a text may name. "ML" is the medio-lateral projection, never MLO.
VIEW_WORDS = {
    code.value: code
    for code in (
        ViewCode.CC,
        ViewCode.MLO,
        ViewCode.ML,
        ViewCode.LM,
        ViewCode.LMO,
        ViewCode.XCCL,
        ViewCode.XCCM,
    )
}
# One token naming both, written together: LCC, RMLO, LEFTCC.
_JOINED = re.compile(rf"(LEFT|RIGHT|L|R)({'|'.join(sorted(VIEW_WORDS, key=len, reverse=True))})")

# Words that make an image something other than a screening view (whole tokens, upper case).
NOT_SCREENING_WORDS = (
    (re.compile(r"STEREO\w*|BIOPS(Y|IES)|LOCALI[SZ]ATION"), NotScreening.STEREOTACTIC),
    (re.compile(r"SPECIMENS?"), NotScreening.SPECIMEN),
)
MODIFIER_WORDS = (
    (re.compile(r"SPOT"), ViewModifier.SPOT_COMPRESSION),
    (re.compile(r"MAG|MAGNIFI(CATION|ED)"), ViewModifier.MAGNIFICATION),
)

# The fraction of the columns on each side compared to find the chest wall.
EDGE_FRACTION = 0.05
# The upper chest-wall corner examined for the pectoral muscle, as a fraction of rows and columns.
CORNER_FRACTION = 0.05


@dataclass(frozen=True)
class TextEvidence:
    """What one text says: a laterality and a projection, each None when it names none or several."""

    laterality: Laterality | None
    view: ViewCode | None


def tokens(text: str) -> list[str]:
    """Whole words, upper case: split at anything that is not a letter or digit (so "CC" inside a
    word or a UID is never a token)."""
    return [token for token in re.split(r"[^A-Z0-9]+", text.upper()) if token]


def read_text(text: str) -> TextEvidence:
    """The laterality and projection a text names: a laterality word followed by a projection (``L
    CC``, ``R-MLO``, ``LEFT_CC``, ``RIGHT MLO``) or joined (``LCC``, ``RMLO``); ``LEFT`` or ``RIGHT``
    alone; a projection alone (``MLO``). A lone ``L`` or ``R`` says nothing. A text naming two
    lateralities (or two projections) is ambiguous and says nothing of that value."""
    words = tokens(text)
    lateralities: set[Laterality] = set()
    views: set[ViewCode] = set()
    for index, word in enumerate(words):
        following = words[index + 1] if index + 1 < len(words) else ""
        if (joined := _JOINED.fullmatch(word)) is not None:
            lateralities.add(LATERALITY_WORDS[joined.group(1)])
            views.add(VIEW_WORDS[joined.group(2)])
        elif word in LATERALITY_WORDS and (len(word) > 1 or following in VIEW_WORDS):
            lateralities.add(LATERALITY_WORDS[word])
        elif word in VIEW_WORDS:
            views.add(VIEW_WORDS[word])
    return TextEvidence(
        next(iter(lateralities)) if len(lateralities) == 1 else None,
        next(iter(views)) if len(views) == 1 else None,
    )


def not_screening(text: str) -> NotScreening | None:
    """Whether a text names a stereotactic, biopsy or localisation image, or a specimen."""
    for word in tokens(text):
        for pattern, kind in NOT_SCREENING_WORDS:
            if pattern.fullmatch(word):
                return kind
    return None


def modifiers(text: str) -> frozenset[ViewModifier]:
    """The view modifiers a text names (SPOT, MAG)."""
    return frozenset(
        modifier for word in tokens(text) for pattern, modifier in MODIFIER_WORDS if pattern.fullmatch(word)
    )


def chest_wall_on_left(values: np.ndarray) -> bool:
    """Whether the chest wall is on the left of the image as given: the side whose outer 5 % of
    columns is brighter (tissue against background)."""
    edge = max(1, round(values.shape[1] * EDGE_FRACTION))
    left = float(np.mean(values[:, :edge], dtype=np.float64))
    right = float(np.mean(values[:, -edge:], dtype=np.float64))
    return left >= right


def laterality_from_pixels(values: np.ndarray) -> Laterality:
    """The laterality of an image stored in the display convention (right views face left, so their
    chest wall is on the right); wrong for a file stored otherwise, hence the last resort."""
    return Laterality.LEFT if chest_wall_on_left(values) else Laterality.RIGHT


def view_from_pixels(values: np.ndarray) -> ViewCode:
    """MLO when the pectoral muscle is there, else CC. The muscle fills the upper chest-wall corner of
    an MLO; a CC's breast leaves that corner to the background. The corner (5 % of rows and columns)
    counts as tissue when its mean is above the midpoint between the background (5th percentile) and
    the median of the pixels above it."""
    image = values if chest_wall_on_left(values) else values[:, ::-1]
    rows = max(1, round(image.shape[0] * CORNER_FRACTION))
    columns = max(1, round(image.shape[1] * CORNER_FRACTION))
    corner = float(np.mean(image[:rows, :columns], dtype=np.float64))
    background = float(np.percentile(image, 5))
    foreground = image[image > background]
    tissue = float(np.median(foreground)) if foreground.size else background
    return ViewCode.MLO if corner > (background + tissue) / 2 else ViewCode.CC
