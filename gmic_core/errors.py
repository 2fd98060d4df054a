"""Typed errors with messages a radiologist or an operator can act on."""


class GMICError(Exception):
    """Base class of every error this project raises on bad input."""


class CheckpointError(GMICError):
    """A weights file that cannot be used: unreadable, truncated, or not matching the model."""


class DicomError(GMICError):
    """A DICOM file that cannot be read or is not a usable 2-D mammogram."""


class ExamError(GMICError):
    """An exam that cannot be assembled or processed (missing views, contradictory metadata, ...)."""


class PreprocessingError(ExamError):
    """An image that the published preprocessing cannot place (for example no breast found)."""
