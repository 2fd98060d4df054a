"""Typed errors with messages a radiologist or an operator can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gmic_core.imaging.views import NotScreening


class GMICError(Exception):
    """Base class of every error this project raises on bad input."""


class UsageError(GMICError, ValueError):
    """A value given by the user that cannot be used: an option or setting that is unknown or out of range
    (a command-line option, a training or model config). Also a ValueError, which callers from before
    these typed errors catch."""


class DatasetError(GMICError, ValueError):
    """A labelled dataset (``manifest.csv``) that cannot be used for what was asked: a label that is not
    0 or 1, no exam in the split or set asked for."""


class AnalysisError(GMICError, ValueError):
    """Ratings or scores that cannot be analysed: one class only, too few readers or cases, tables whose
    sizes disagree, a hybrid weight outside [0, 1]."""


class CheckpointError(GMICError):
    """A weights file that cannot be used: unreadable, truncated, or not matching the model."""


class DicomError(GMICError):
    """A DICOM file that cannot be read or is not a usable 2-D mammogram."""


class ExamError(GMICError):
    """An exam that cannot be assembled or processed (missing views, contradictory metadata, ...)."""


class PreprocessingError(ExamError):
    """An image that the published preprocessing cannot place (for example no breast found)."""


class NotDicomError(DicomError):
    """A file that is not in the DICOM file format (no 'DICM' marker after the 128-byte preamble)."""


class CorruptDicomError(DicomError):
    """A DICOM file that is truncated, or whose header lacks or garbles an attribute the reader needs."""


class NotAnImageError(DicomError):
    """A DICOM object that holds no image: a dose report or other structured report, a presentation
    state, ..."""


class NoPixelDataError(NotAnImageError):
    """An object of an image class whose Pixel Data element is missing."""


class NotABreastImageError(DicomError):
    """An image of another body part or modality (a chest radiograph, a CT slice, ...)."""


class UnsupportedImageError(DicomError):
    """A breast image of a kind this workstation does not read: multi-frame, colour, unusual bit depth."""


class TomosynthesisError(UnsupportedImageError):
    """Breast tomosynthesis (slices or projections): GMIC reads 2-D mammograms only."""


class UnsupportedTransferSyntaxError(DicomError):
    """Pixel data in an encoding that no installed decoder handles."""


class PixelDecodeError(DicomError):
    """Pixel data that the decoder for its transfer syntax cannot decode (damaged or non-conformant)."""


class LateralityError(DicomError):
    """An image whose laterality is missing, not R or L, or contradicted by another attribute."""


class ViewError(DicomError):
    """An image whose view (projection) is contradicted by another source of evidence."""


class CalibrationError(GMICError):
    """A calibration set that cannot give a calibration or an operating point (one class only, too few
    cases, unreadable exams), or a stored calibration that cannot be read back."""


class ExportError(GMICError):
    """Results that cannot be written as DICOM (an exam read from PNG files has no DICOM header to
    copy the patient and study from)."""


class NotAScreeningViewError(DicomError):
    """A breast image that is not a screening view: stereotactic, biopsy or localisation images,
    specimen radiographs, images smaller than a full-field detector. ``reason`` says which."""

    def __init__(self, message: str, reason: NotScreening) -> None:
        super().__init__(message)
        self.reason = reason
