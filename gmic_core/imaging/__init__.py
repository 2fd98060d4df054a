"""Reading mammograms and finding exams on disk.

Two steps, so that nothing decodes pixels before it has to:

* **Headers.** :func:`scan_folder` walks a folder (recursively; DICOM files with or without an
  extension, and ``exam.json`` manifests of published-format PNGs) reading headers only, and returns
  a :class:`ScanResult`: :class:`Exam` objects grouped by StudyInstanceUID, plus every file it could
  not use with the reason. :func:`find_exams` does it for any paths (folders, single DICOM files,
  manifests) and is what ``gmic predict``, ``gmic triage`` and the workstation use; :func:`load_exam`
  for one exam;
  :func:`read_dicom_header` for one file. An exam holds :class:`ImageRef` objects: frozen,
  picklable headers (laterality, view, intent, photometric, VOI, spacing, UIDs).
* **Pixels.** :func:`load_image` decodes one :class:`ImageRef` into a :class:`Mammogram`;
  :func:`read_dicom` decodes one path. Each call opens its own file and builds its own data set,
  sharing nothing with other calls: the GUI decodes the four views in parallel threads and shows each
  when it is ready; triage sends ``ImageRef`` objects to worker processes.

A decoded DICOM mammogram is display-ready: Modality LUT applied, MONOCHROME1 inverted, mirrored so
that right views face left and left views face right (``horizontal_flip`` is False for DICOM
exams). PNG images stay as stored and their exam carries the manifest's ``horizontal_flip``.

Bad input raises a typed error (``gmic_core.errors``): a :class:`~gmic_core.errors.DicomError`
subclass per problem for single files, :class:`~gmic_core.errors.ExamError` for exams and
manifests. Their messages name the file and what to do, never patient identifiers;
:class:`PatientIdentifiers` are for display and hidden from ``repr``.

The rules (VOI default, orientation, view and laterality sources, duplicate views) are documented in
``docs/imaging.md``.
"""

from gmic_core.imaging.dicom import read_dicom, read_dicom_header
from gmic_core.imaging.exam import (
    BreastLabels,
    Exam,
    LesionMasks,
    MaskFrame,
    assemble_exam,
    not_scored,
    selection_key,
)
from gmic_core.imaging.image import (
    Hints,
    ImageFormat,
    ImageRef,
    Mammogram,
    OrientationSource,
    PatientIdentifiers,
    Photometric,
    PixelGrid,
    PresentationIntent,
    ViewInfo,
)
from gmic_core.imaging.manifest import read_exam_manifest, read_png
from gmic_core.imaging.scan import ScanResult, decode_view, find_exams, load_exam, load_image, scan_folder
from gmic_core.imaging.views import Laterality, NotScreening, View, ViewCode, ViewModifier, ViewPosition
from gmic_core.imaging.voi import Voi, VoiFunction, VoiLut, Window, auto_window

__all__ = [
    "BreastLabels",
    "Exam",
    "Hints",
    "ImageFormat",
    "ImageRef",
    "Laterality",
    "LesionMasks",
    "Mammogram",
    "MaskFrame",
    "NotScreening",
    "OrientationSource",
    "PatientIdentifiers",
    "Photometric",
    "PixelGrid",
    "PresentationIntent",
    "ScanResult",
    "View",
    "ViewCode",
    "ViewInfo",
    "ViewModifier",
    "ViewPosition",
    "Voi",
    "VoiFunction",
    "VoiLut",
    "Window",
    "assemble_exam",
    "auto_window",
    "decode_view",
    "find_exams",
    "load_exam",
    "load_image",
    "not_scored",
    "read_dicom",
    "read_dicom_header",
    "read_exam_manifest",
    "read_png",
    "scan_folder",
    "selection_key",
]
