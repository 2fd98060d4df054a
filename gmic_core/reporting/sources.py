"""The source images' headers, read with pydicom up to the pixel data: what every exported object
copies its patient, study and equipment identity from, and what it references."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset

from gmic_core.errors import ExportError
from gmic_core.imaging import ImageFormat, Mammogram, View
from gmic_core.reporting.frames import FileFrame

# Type 2 attributes of the Patient and General Study modules (PS3.3 C.7.1.1, C.7.2.1) that every
# object copies: a source that lacks one gets it empty (unknown), never a made-up value.
PATIENT_AND_STUDY_TYPE_2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)


@dataclass(frozen=True, eq=False)
class SourceImage:
    """One analysed view: its decoded image, its file's header and its file frame."""

    mammogram: Mammogram
    header: Dataset

    @property
    def frame(self) -> FileFrame:
        return FileFrame.of(self.mammogram)


def read_sources(mammograms: Mapping[View, Mammogram]) -> dict[View, SourceImage]:
    """Raises :class:`ExportError` for an image that is not a DICOM file."""
    sources = {}
    for view, mammogram in mammograms.items():
        if mammogram.ref.format is not ImageFormat.DICOM:
            raise ExportError(
                f"{mammogram.source}: a {mammogram.ref.format} image has no DICOM header to copy the "
                "patient and study from; results as DICOM need the exam's DICOM files"
            )
        header = pydicom.dcmread(mammogram.source, stop_before_pixels=True)
        for keyword in PATIENT_AND_STUDY_TYPE_2:
            if keyword not in header:
                setattr(header, keyword, None)
        sources[view] = SourceImage(mammogram, header)
    return sources
