"""What the readers return: :class:`ImageRef` (an image's header, read without its pixels) and
:class:`Mammogram` (the decoded image). No file access here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path

import numpy as np

from gmic_core.imaging.views import Laterality, View, ViewCode, ViewModifier, ViewPosition
from gmic_core.imaging.voi import Voi


class ImageFormat(StrEnum):
    DICOM = "DICOM"
    PNG = "PNG"  # the published 16-bit PNGs, listed by an exam.json manifest


class PresentationIntent(StrEnum):
    """Presentation Intent Type (0008,0068); UNSPECIFIED where the class does not carry it."""

    FOR_PRESENTATION = "FOR PRESENTATION"
    FOR_PROCESSING = "FOR PROCESSING"
    UNSPECIFIED = ""


class Photometric(StrEnum):
    """Photometric Interpretation (0028,0004) values a mammogram may have (PS3.3 C.7.6.3.1.2)."""

    MONOCHROME1 = "MONOCHROME1"  # minimum value is white
    MONOCHROME2 = "MONOCHROME2"  # minimum value is black


class OrientationSource(StrEnum):
    """What decided whether the reader mirrored the stored image."""

    PATIENT_ORIENTATION = "PatientOrientation"
    PIXELS = "pixels"  # no usable PatientOrientation: the brighter edge is taken as the chest wall
    AS_STORED = "as stored"  # PNG manifests: kept as stored, the exam's horizontal_flip tells


@dataclass(frozen=True)
class ViewInfo:
    """The projection of one image, where it was read from, and its modifiers."""

    code: ViewCode
    modifiers: frozenset[ViewModifier] = frozenset()
    source: str = ""  # the attribute it was read from: "ViewPosition", "ViewCodeSequence", "exam.json"
    label: str = ""  # the text in the file (e.g. "XCCL", "cranio-caudal"), for display

    @property
    def position(self) -> ViewPosition | None:
        """CC or MLO for a standard screening view; None for extra views (other projections, or any
        modifier)."""
        return None if self.modifiers else self.code.standard_position


@dataclass(frozen=True)
class Hints:
    """What a dataset layout knows of an image beyond its header (CBIS-DDSM's folder names, INbreast's
    file names, a label table): one more source of evidence, named by ``source``. The reader uses a
    hint where the header is silent; a header value that contradicts it is an error naming both."""

    laterality: Laterality | None = None
    view: ViewCode | None = None
    source: str = ""  # where the layout read them, e.g. "CBIS-DDSM folder name"


@dataclass(frozen=True)
class PatientIdentifiers:
    """For display only. Never log these, never put them in an exception message; ``repr`` hides them."""

    name: str = ""
    patient_id: str = ""
    birth_date: str = ""  # DICOM DA, YYYYMMDD
    study_date: str = ""
    accession_number: str = ""

    def __repr__(self) -> str:
        return "PatientIdentifiers(<withheld>)"


@dataclass(frozen=True)
class ImageRef:
    """One image on disk and everything its header says; no pixels. Cheap, picklable: hand it to a
    thread or a process and decode it there with :func:`gmic_core.imaging.load_image`."""

    source: Path
    format: ImageFormat
    laterality: Laterality
    position: ViewInfo
    presentation_intent: PresentationIntent
    photometric: Photometric
    shape: tuple[int, int]  # rows, columns as stored
    bits_stored: int
    pixel_spacing_mm: tuple[float, float] | None  # row, column spacing at the breast
    voi: Voi  # the file's VOI (after MONOCHROME1 inversion); may be empty until decoded
    acquisition_time: datetime | None = None
    instance_number: int | None = None
    sop_instance_uid: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    patient: PatientIdentifiers = field(default_factory=PatientIdentifiers, repr=False)
    laterality_source: str = ""  # the attribute or evidence the laterality was read from
    hints: Hints | None = None  # a layout's hints, passed again when the image is decoded

    @property
    def view(self) -> View | None:
        """The standard view this image is, None for an extra image."""
        position = self.position.position
        return None if position is None else View.of(self.laterality, position)


@dataclass(frozen=True)
class PixelGrid:
    """Where the pixels of an image decoded at a reduced JPEG 2000 resolution level lie on the stored
    image (``stored_shape``, the full size): pixel ``(i, j)`` covers stored rows
    ``[row_origin + f i, row_origin + f (i + 1))`` and columns likewise, ``f = 2**level``.

    A level's low-pass sample ``i`` is centred on stored pixel ``f i`` (ISO/IEC 15444-1 Annex F: the
    image origin at 0, the analysis filters symmetric about the even samples), hence the origin
    ``-(f - 1) / 2``; a mirrored image counts its columns from the far edge, where the last sample
    may reach past the image (the size is ``ceil(stored / f)``).
    """

    level: int
    stored_shape: tuple[int, int]
    row_origin: float
    col_origin: float

    @property
    def factor(self) -> int:
        return 1 << self.level

    @classmethod
    def reduced(cls, level: int, stored_shape: tuple[int, int], mirrored: bool) -> PixelGrid:
        factor = 1 << level
        phase = -(factor - 1) / 2
        columns = -(-stored_shape[1] // factor)
        col_origin = stored_shape[1] - factor * columns - phase if mirrored else phase
        return cls(level, stored_shape, phase, col_origin)


@dataclass(frozen=True, eq=False)
class Mammogram:
    """A decoded image.

    ``pixels`` is 2-D, uint16 (or float32 where the Modality LUT rescales or the data are signed):
    the Modality LUT applied, MONOCHROME1 inverted so that higher is brighter, and mirrored where
    needed so that R views face left and L views face right (``mirrored`` says whether it was). PNG
    images are exactly as stored (``mirrored`` False; see ``Exam.horizontal_flip``). ``voi`` always
    has a default (the file's, or an automatic window). ``grid`` is None for the full-size image;
    a model's input path may ask for a reduced JPEG 2000 resolution level instead, and then ``grid``
    places the smaller ``pixels`` on the stored image.
    """

    ref: ImageRef
    pixels: np.ndarray = field(repr=False)
    voi: Voi
    mirrored: bool
    orientation_source: OrientationSource
    grid: PixelGrid | None = None

    @property
    def view(self) -> View | None:
        return self.ref.view

    @property
    def laterality(self) -> Laterality:
        return self.ref.laterality

    @property
    def position(self) -> ViewInfo:
        return self.ref.position

    @property
    def pixel_spacing_mm(self) -> tuple[float, float] | None:
        return self.ref.pixel_spacing_mm

    @property
    def photometric(self) -> Photometric:
        """As stored in the file (the pixels are always brighter-is-higher)."""
        return self.ref.photometric

    @property
    def presentation_intent(self) -> PresentationIntent:
        return self.ref.presentation_intent

    @property
    def acquisition_time(self) -> datetime | None:
        return self.ref.acquisition_time

    @property
    def source(self) -> Path:
        return self.ref.source

    @property
    def sop_instance_uid(self) -> str | None:
        return self.ref.sop_instance_uid

    def display(self) -> np.ndarray:
        """The pixels through the default VOI: float32 in [0, 1], 1 is white."""
        return self.voi.apply(self.pixels)
