"""Reading one DICOM mammogram with pydicom: :func:`read_dicom_header` (no pixels) and
:func:`read_dicom` (decoded, display-ready orientation).

The pipeline is explicit and ordered (STYLE.md item 6):

1. parse the file; refuse what is not a 2-D breast image (SOP class, body part, frames, pixel module,
   transfer syntax), each with its own :class:`~gmic_core.errors.DicomError` subclass;
2. decode the stored values (pylibjpeg plugins for the compressed syntaxes);
3. Modality LUT (Rescale Slope/Intercept or the Modality LUT Sequence, PS3.3 C.11.1);
4. MONOCHROME1 inversion, so that higher values are brighter (the window pairs and VOI LUTs are
   inverted with the pixels, so a MONOCHROME1 file displays as its MONOCHROME2 twin);
5. mirroring, so that right views face left and left views face right (the published convention).

Damaged input is caught where pydicom or a decoder reports it (parsing, converting one attribute,
decoding the pixel data), by the specific exception types those steps raise, and re-raised chained as
a typed error. Everything else is validated before it is used.
"""

from __future__ import annotations

import functools
import logging
import os
import struct
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import numpy as np
import pydicom.config
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.filereader import read_partial
from pydicom.multival import MultiValue
from pydicom.pixels import pixel_array
from pydicom.sequence import Sequence
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    BreastProjectionXRayImageStorageForPresentation,
    BreastProjectionXRayImageStorageForProcessing,
    BreastTomosynthesisImageStorage,
    ComputedRadiographyImageStorage,
    DeflatedExplicitVRLittleEndian,
    DigitalMammographyXRayImageStorageForPresentation,
    DigitalMammographyXRayImageStorageForProcessing,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    RLELossless,
    SecondaryCaptureImageStorage,
)

from gmic_core.errors import (
    CorruptDicomError,
    DicomError,
    LateralityError,
    NoPixelDataError,
    NotABreastImageError,
    NotAnImageError,
    NotAScreeningViewError,
    NotDicomError,
    PixelDecodeError,
    TomosynthesisError,
    UnsupportedImageError,
    UnsupportedTransferSyntaxError,
    ViewError,
)
from gmic_core.imaging import decoders, evidence
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
from gmic_core.imaging.views import Laterality, NotScreening, ViewCode, ViewModifier
from gmic_core.imaging.voi import Voi, VoiFunction, VoiLut, Window

logger = logging.getLogger(__name__)

# pydicom's value validation (on by default) warns *and logs* offending values, which for PN, LO and
# DA attributes are patient names, IDs and birth dates. This reader validates what it uses itself.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE


class _PydicomToDebug(logging.Handler):
    """pydicom's own records (a decoder plugin's failure with its traceback, one per plugin tried)
    go to this module's log at DEBUG: the user sees one line per file, the typed error's message."""

    def emit(self, record: logging.LogRecord) -> None:
        logger.debug("pydicom: %s", record.getMessage(), exc_info=record.exc_info)


logging.getLogger("pydicom").addHandler(_PydicomToDebug())
logging.getLogger("pydicom").propagate = False
# pydicom also issues what it logs as a warning ("End of file reached before delimiter" on a truncated
# file), which Python would print; the reader reports such files itself, with a typed error.
warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")

# Pixel Data, Float Pixel Data, Double Float Pixel Data (PS3.6 section 6).
PIXEL_DATA_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
PIXEL_DATA_TAG = 0x7FE00010
UNDEFINED_LENGTH = 0xFFFFFFFF  # PS3.5 7.1.2

# A sanity bound on Rows x Columns before anything is allocated: the largest mammography detectors
# are about 30 megapixels.
MAX_PIXELS = 100_000_000

# PS3.4 Annex B.5 storage SOP classes.
MAMMOGRAPHY_CLASSES = frozenset(
    {DigitalMammographyXRayImageStorageForPresentation, DigitalMammographyXRayImageStorageForProcessing}
)
# Read when Modality is MG or Body Part Examined (0018,0015) names the breast ("BREAST", "LEFT BREAST").
BREAST_IF_STATED_CLASSES = frozenset(
    {
        DigitalXRayImageStorageForPresentation,
        DigitalXRayImageStorageForProcessing,
        ComputedRadiographyImageStorage,
        SecondaryCaptureImageStorage,
        MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
        MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    }
)
TOMOSYNTHESIS_CLASSES = frozenset(
    {
        BreastTomosynthesisImageStorage,
        BreastProjectionXRayImageStorageForPresentation,
        BreastProjectionXRayImageStorageForProcessing,
    }
)
STRUCTURED_REPORT_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.88."  # PS3.4 B.5: all SR storage classes

# PS3.5 sections 8 and A.4: uncompressed, JPEG (baseline, extended, lossless), JPEG-LS, JPEG 2000,
# HTJ2K and RLE; pydicom decodes the compressed ones with the pylibjpeg plugins.
SUPPORTED_TRANSFER_SYNTAXES = frozenset(
    {
        ImplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        DeflatedExplicitVRLittleEndian,
        ExplicitVRBigEndian,
        JPEGBaseline8Bit,
        JPEGExtended12Bit,
        JPEGLossless,
        JPEGLosslessSV1,
        JPEGLSLossless,
        JPEGLSNearLossless,
        JPEG2000Lossless,
        JPEG2000,
        HTJ2KLossless,
        HTJ2KLosslessRPCL,
        HTJ2K,
        RLELossless,
    }
)

# View for Mammography, PS3.16 CID 4014: SNOMED CT code and its SNOMED RT predecessor (written with
# designator SRT or, by older devices, SNM3).
VIEW_CODES: dict[str, ViewCode] = {
    "399162004": ViewCode.CC,
    "R-10242": ViewCode.CC,
    "399368009": ViewCode.MLO,
    "R-10226": ViewCode.MLO,
    "399260004": ViewCode.ML,
    "R-10224": ViewCode.ML,
    "399352003": ViewCode.LM,
    "R-10228": ViewCode.LM,
    "399099002": ViewCode.LMO,
    "R-10230": ViewCode.LMO,
    "399192008": ViewCode.XCCL,
    "R-1024A": ViewCode.XCCL,
    "399101009": ViewCode.XCCM,
    "R-1024B": ViewCode.XCCM,
    "399196006": ViewCode.FB,
    "R-10244": ViewCode.FB,
    "399188001": ViewCode.SIO,
    "R-102D0": ViewCode.SIO,
    "441555000": ViewCode.ISO,
    "R-40AAA": ViewCode.ISO,
    "127457009": ViewCode.SPECIMEN,
    "G-8310": ViewCode.SPECIMEN,
}
# View Modifier for Mammography, PS3.16 CID 4015, likewise.
VIEW_MODIFIER_CODES: dict[str, ViewModifier] = {
    "399055006": ViewModifier.SPOT_COMPRESSION,
    "R-102D7": ViewModifier.SPOT_COMPRESSION,
    "399163009": ViewModifier.MAGNIFICATION,
    "R-102D6": ViewModifier.MAGNIFICATION,
    "399209000": ViewModifier.IMPLANT_DISPLACED,
    "R-102D5": ViewModifier.IMPLANT_DISPLACED,
    "399197002": ViewModifier.ROLLED_LATERAL,
    "R-102D3": ViewModifier.ROLLED_LATERAL,
    "399226006": ViewModifier.ROLLED_MEDIAL,
    "R-102D4": ViewModifier.ROLLED_MEDIAL,
    "415670009": ViewModifier.ROLLED_SUPERIOR,
    "R-102C9": ViewModifier.ROLLED_SUPERIOR,
    "414493004": ViewModifier.ROLLED_INFERIOR,
    "R-102CA": ViewModifier.ROLLED_INFERIOR,
    "399161006": ViewModifier.CLEAVAGE,
    "R-102D2": ViewModifier.CLEAVAGE,
    "399011000": ViewModifier.AXILLARY_TAIL,
    "R-102D1": ViewModifier.AXILLARY_TAIL,
    "399110001": ViewModifier.TANGENTIAL,
    "R-102C2": ViewModifier.TANGENTIAL,
    "442581004": ViewModifier.NIPPLE_IN_PROFILE,
    "R-40AB3": ViewModifier.NIPPLE_IN_PROFILE,
    "442580003": ViewModifier.AXILLARY_TISSUE,
    "R-40AB2": ViewModifier.AXILLARY_TISSUE,
    "442593008": ViewModifier.INFRAMAMMARY_FOLD,
    "R-40ABE": ViewModifier.INFRAMAMMARY_FOLD,
    "441752004": ViewModifier.ANTERIOR_COMPRESSION,
    "P2-00161": ViewModifier.ANTERIOR_COMPRESSION,
}
SNOMED_DESIGNATORS = frozenset({"SCT", "SRT", "SNM3"})

# View Position (0018,5101) as mammography devices write it: the ACR MQCM labels, where a trailing
# "ID" marks an implant-displaced view and "CV" is the cleavage view (a CC with the cleavage modifier).
VIEW_POSITION_LABELS: dict[str, tuple[ViewCode, frozenset[ViewModifier]]] = {
    **{
        code.value: (code, frozenset())
        for code in ViewCode
        if code not in (ViewCode.SPECIMEN, ViewCode.OTHER)
    },
    "CV": (ViewCode.CC, frozenset({ViewModifier.CLEAVAGE})),
}
IMPLANT_DISPLACED_SUFFIX = "ID"

# The smallest image that is a full-field mammogram, (short side, long side) in mm: two thirds of the
# smallest full-field detector, 18 x 24 cm, so that images cropped to the breast still pass. The 788 x
# 1318 aperture of a stereotactic unit (about 67 x 112 mm at 0.085 mm) is well below it.
FULL_FIELD_MIN_MM = (120.0, 160.0)
# Header text that may name a stereotactic, biopsy, specimen, spot or magnification image.
PROCEDURE_TEXT = ("ImageType", "SeriesDescription", "ProtocolName", "AcquisitionDeviceProcessingDescription")
# Header text that may name the laterality and projection, in precedence order.
HEADER_TEXT = ("SeriesDescription", "ProtocolName", "PatientID")
# Path names consulted where the header is silent: the file's and its parent folders' up to this many.
FOLDER_LEVELS = 3

# Decoded values in the file frame, Modality LUT applied, MONOCHROME1 inverted; called only where
# the evidence of the header and the path names leaves the laterality or the view open.
_Pixels = Callable[["_PixelModule", "_ModalityLut"], np.ndarray]

_Code = TypeVar("_Code", ViewCode, ViewModifier)

# What pydicom raises while parsing damaged bytes (tests/core/test_dicom_fuzz.py finds them all):
# premature ends of file, bad lengths and VRs, undecodable text, corrupt deflate streams.
PARSE_ERRORS = (
    EOFError,
    OSError,
    struct.error,
    ValueError,
    NotImplementedError,
    OverflowError,
    zlib.error,
    BytesLengthException,
)
# What converting one raw attribute value can raise (bad VR, odd lengths, unparsable numbers, a
# garbled sequence parsed on first access).
VALUE_ERRORS = (
    ValueError,
    TypeError,
    struct.error,
    NotImplementedError,
    OverflowError,
    BytesLengthException,
    OSError,
    EOFError,
)
# What pydicom's pixel pipeline and the pylibjpeg decoders raise on damaged or unusual codestreams.
DECODE_ERRORS = (RuntimeError, ValueError, struct.error, EOFError, BytesLengthException)


@dataclass(frozen=True)
class _PixelElement:
    """The top-level pixel data element header as the parser met it."""

    tag: int
    length: int  # UNDEFINED_LENGTH for encapsulated pixel data
    value_offset: int


@dataclass(frozen=True)
class _PixelModule:
    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    photometric: Photometric

    @property
    def native_bytes(self) -> int:
        return self.rows * self.columns * self.bits_allocated // 8

    @property
    def stored_range(self) -> tuple[int, int]:
        if self.signed:
            return -(1 << (self.bits_stored - 1)), (1 << (self.bits_stored - 1)) - 1
        return 0, (1 << self.bits_stored) - 1


@dataclass(frozen=True, eq=False)
class _ModalityLut:
    """PS3.3 C.11.1: a Modality LUT Sequence table, else Rescale Slope and Intercept."""

    slope: float = 1.0
    intercept: float = 0.0
    table: VoiLut | None = None  # the same (first mapped, data, bits) structure as a VOI LUT

    def apply(self, stored: np.ndarray) -> np.ndarray:
        if self.table is not None:
            index = np.clip(stored.astype(np.int64) - self.table.first_mapped, 0, len(self.table.data) - 1)
            return self.table.data[index].astype(np.uint16)
        if self.slope == 1.0 and self.intercept == 0.0 and stored.dtype.kind == "u":
            return stored.astype(np.uint16, copy=False)
        return (stored.astype(np.float32) * np.float32(self.slope) + np.float32(self.intercept)).astype(
            np.float32
        )

    def output_range(self, pixel_module: _PixelModule) -> tuple[float, float]:
        if self.table is not None:
            return 0.0, float((1 << self.table.bits) - 1)
        low, high = (value * self.slope + self.intercept for value in pixel_module.stored_range)
        return min(low, high), max(low, high)


@dataclass(frozen=True, eq=False)
class _Parsed:
    ref: ImageRef
    pixel_module: _PixelModule
    modality_lut: _ModalityLut
    patient_orientation: list[str]


class _Attributes:
    """Typed access to the attributes the reader uses. A value pydicom cannot convert, or of the wrong
    type, is a :class:`CorruptDicomError` that names the attribute and the file."""

    def __init__(self, dataset: Dataset, path: Path) -> None:
        self._dataset = dataset
        self.path = path

    def corrupt(self, keyword: str, problem: str = "is malformed") -> CorruptDicomError:
        return CorruptDicomError(f"{self.path}: the {keyword} attribute {problem}; the file may be damaged")

    def value(self, keyword: str) -> object:
        """The converted value, None when absent or empty."""
        try:
            value = self._dataset.get(keyword)
        except VALUE_ERRORS as exc:
            raise self.corrupt(keyword) from exc
        if isinstance(value, str | bytes | list | MultiValue | Sequence) and len(value) == 0:
            return None
        return value

    def text(self, keyword: str) -> str:
        """The value as text ("" when absent); several values are joined with a backslash."""
        return "\\".join(self.texts(keyword))

    def texts(self, keyword: str) -> list[str]:
        value = self.value(keyword)
        values = value if isinstance(value, MultiValue | list) else [] if value is None else [value]
        if any(isinstance(item, bytes | Dataset | Sequence) for item in values):
            raise self.corrupt(keyword, "is not text")
        return [str(item).strip() for item in values]

    def numbers(self, keyword: str) -> list[float]:
        value = self.value(keyword)
        values = value if isinstance(value, MultiValue | list) else [] if value is None else [value]
        if not all(isinstance(item, int | float) and np.isfinite(item) for item in values):
            raise self.corrupt(keyword, "is not a number")
        return [float(item) for item in values]

    def number(self, keyword: str) -> float | None:
        values = self.numbers(keyword)
        if len(values) > 1:
            raise self.corrupt(keyword, "has several values where one is expected")
        return values[0] if values else None

    def integer(self, keyword: str) -> int | None:
        value = self.number(keyword)
        if value is not None and not value.is_integer():
            raise self.corrupt(keyword, "is not an integer")
        return None if value is None else int(value)

    def required_integer(self, keyword: str) -> int:
        value = self.integer(keyword)
        if value is None:
            raise self.corrupt(keyword, "is missing")
        return value

    def items(self, keyword: str) -> list[_Attributes]:
        value = self.value(keyword)
        if value is None:
            return []
        if not isinstance(value, Sequence):
            raise self.corrupt(keyword, "is not a sequence")
        return [_Attributes(item, self.path) for item in value]

    def raw_bytes(self, keyword: str) -> bytes | None:
        value = self.value(keyword)
        if value is not None and not isinstance(value, bytes):
            raise self.corrupt(keyword, "is not binary data")
        return value


def read_dicom_header(path: Path | str, hints: Hints | None = None) -> ImageRef:
    """The header of one image, its pixel data left unread. Raises a :class:`DicomError` subclass for
    anything :func:`read_dicom` would refuse without decoding. ``hints`` are a dataset layout's
    evidence (:class:`Hints`)."""
    path = Path(path)
    dataset, pixel_element, file_size = _read_dataset(path, header_only=True)

    def pixels(module: _PixelModule, modality_lut: _ModalityLut) -> np.ndarray:
        return _values(_read_dataset(path, header_only=False)[0], path, module, modality_lut)

    return _parse(dataset, path, pixel_element, file_size, hints, pixels).ref


def read_dicom(
    path: Path | str, hints: Hints | None = None, decoding: decoders.Decoding = decoders.FULL_SIZE_CPU
) -> Mammogram:
    """Decode one image: Modality LUT applied, MONOCHROME1 inverted, mirrored to the published
    convention. Raises a :class:`DicomError` subclass for any file it cannot read. ``decoding`` is
    what a model's input path may accept instead of the full-size image decoded on the CPU
    (:func:`~gmic_core.imaging.decoders.choose_decoder`); a reduced image says so in its ``grid``,
    and its orientation is decided from its own, smaller pixels where the header does not tell."""
    path = Path(path)
    dataset, pixel_element, file_size = _read_dataset(path, header_only=False)
    pixels = functools.cache(functools.partial(_values, dataset, path, decoding=decoding))
    parsed = _parse(dataset, path, pixel_element, file_size, hints, pixels)
    values = pixels(parsed.pixel_module, parsed.modality_lut)
    mirror, source = _needs_mirroring(values, parsed.ref.laterality, parsed.patient_orientation)
    if mirror:
        values = np.ascontiguousarray(values[:, ::-1])
    grid = None
    if values.shape != parsed.ref.shape:
        grid = PixelGrid.reduced(decoding.level, parsed.ref.shape, mirror)
    return Mammogram(parsed.ref, values, parsed.ref.voi.or_auto(values), mirror, source, grid)


def _read_dataset(path: Path, header_only: bool) -> tuple[FileDataset, _PixelElement | None, int]:
    try:
        file = path.open("rb")
    except OSError as exc:
        raise DicomError(f"{path}: cannot be opened ({exc.strerror or exc})") from exc
    with file:
        found: list[_PixelElement] = []

        def at_pixel_data(tag: int, vr: str | None, length: int) -> bool:
            if tag not in PIXEL_DATA_TAGS:
                return False
            found.append(_PixelElement(int(tag), length, file.tell()))
            return header_only

        try:
            dataset = read_partial(file, stop_when=at_pixel_data)
            truncated = _ends_early(dataset)
        except InvalidDicomError as exc:
            raise NotDicomError(
                f"{path}: not a DICOM file (no 'DICM' marker after the 128-byte preamble)"
            ) from exc
        except PARSE_ERRORS as exc:
            raise CorruptDicomError(
                f"{path}: the DICOM data set is damaged or truncated and cannot be parsed"
            ) from exc
        file_size = os.fstat(file.fileno()).st_size
    pixel_element = found[0] if found else None
    if truncated or (pixel_element is not None and not header_only and pixel_element.tag not in dataset):
        raise CorruptDicomError(f"{path}: truncated: the file ends inside a data element")
    return dataset, pixel_element, file_size


def _ends_early(dataset: FileDataset) -> bool:
    """Whether the last element read is shorter than its stated length (pydicom stops quietly at an
    early end of file)."""
    tags = list(dataset.keys())
    if not tags:
        return False
    last = dataset.get_item(tags[-1])
    return (
        isinstance(last, RawDataElement)
        and isinstance(last.value, bytes)
        and last.length != UNDEFINED_LENGTH
        and len(last.value) < last.length
    )


def _parse(
    dataset: FileDataset,
    path: Path,
    pixel_element: _PixelElement | None,
    file_size: int,
    hints: Hints | None,
    pixels: _Pixels,
) -> _Parsed:
    attributes = _Attributes(dataset, path)
    _check_image_kind(attributes, pixel_element)
    pixel_module = _pixel_module(attributes)
    spacing = _pixel_spacing(attributes)
    _check_screening(attributes, pixel_module, spacing)
    transfer_syntax = _transfer_syntax(dataset, path)
    if pixel_element is not None and pixel_element.tag != PIXEL_DATA_TAG:
        raise UnsupportedImageError(
            f"{path}: floating-point pixel data is not a mammogram this workstation reads"
        )
    if not transfer_syntax.is_encapsulated and transfer_syntax != DeflatedExplicitVRLittleEndian:
        _check_native_length(path, pixel_element, pixel_module, file_size)
    modality_lut = _modality_lut(attributes, transfer_syntax.is_little_endian)
    voi = _voi(attributes, transfer_syntax.is_little_endian)
    if pixel_module.photometric is Photometric.MONOCHROME1:
        low, high = modality_lut.output_range(pixel_module)
        voi = voi.inverted(low + high)
    patient = PatientIdentifiers(
        name=attributes.text("PatientName"),
        patient_id=attributes.text("PatientID"),
        birth_date=attributes.text("PatientBirthDate"),
        study_date=attributes.text("StudyDate"),
        accession_number=attributes.text("AccessionNumber"),
    )
    texts = [(keyword, evidence.read_text(attributes.text(keyword))) for keyword in HEADER_TEXT]
    names = [
        (source, evidence.read_text(part.name))
        for source, part in [("file name", path), *(("folder name", folder) for folder in path.parents)][
            : 1 + FOLDER_LEVELS
        ]
    ]

    def values() -> np.ndarray:
        return pixels(pixel_module, modality_lut)

    laterality, laterality_source = _laterality(attributes, hints, texts, names, values)
    ref = ImageRef(
        source=path,
        format=ImageFormat.DICOM,
        laterality=laterality,
        position=_view_info(attributes, hints, texts, names, values),
        presentation_intent=_presentation_intent(attributes),
        photometric=pixel_module.photometric,
        shape=(pixel_module.rows, pixel_module.columns),
        bits_stored=pixel_module.bits_stored,
        pixel_spacing_mm=spacing,
        voi=voi,
        acquisition_time=_acquisition_time(attributes),
        instance_number=attributes.integer("InstanceNumber"),
        sop_instance_uid=attributes.text("SOPInstanceUID") or None,
        study_instance_uid=attributes.text("StudyInstanceUID") or None,
        series_instance_uid=attributes.text("SeriesInstanceUID") or None,
        patient=patient,
        laterality_source=laterality_source,
        hints=hints,
    )
    return _Parsed(ref, pixel_module, modality_lut, attributes.texts("PatientOrientation"))


def _check_image_kind(attributes: _Attributes, pixel_element: _PixelElement | None) -> None:
    """Refuse, in this order: tomosynthesis, reports, other non-images, other body parts, images
    without pixel data, multi-frame images."""
    path = attributes.path
    sop_class = UID(attributes.text("SOPClassUID"))
    if not sop_class:
        raise CorruptDicomError(f"{path}: no SOP Class UID; the file does not say what kind of object it is")
    name = sop_class.name if sop_class.is_valid else sop_class
    if sop_class in TOMOSYNTHESIS_CLASSES:
        raise TomosynthesisError(
            f"{path}: {name}: breast tomosynthesis is not supported; load the 2-D (or synthesised 2-D) views"
        )
    if sop_class.startswith(STRUCTURED_REPORT_CLASS_PREFIX):
        raise NotAnImageError(f"{path}: {name}: a structured report (such as a dose report), not an image")
    if sop_class not in MAMMOGRAPHY_CLASSES | BREAST_IF_STATED_CLASSES:
        if pixel_element is None:
            raise NotAnImageError(f"{path}: {name}: not an image")
        raise NotABreastImageError(f"{path}: {name} is not a mammogram")
    if sop_class not in MAMMOGRAPHY_CLASSES:
        body_part = attributes.text("BodyPartExamined").upper()
        modality = attributes.text("Modality").upper()
        if modality != "MG" and "BREAST" not in evidence.tokens(body_part):
            raise NotABreastImageError(
                f"{path}: {name} of modality {modality or '(not stated)'} and body part "
                f"{body_part or '(not stated)'}, not a breast image"
            )
    if pixel_element is None:
        raise NoPixelDataError(f"{path}: {name} without pixel data (a QC or placeholder object?)")
    frames = attributes.integer("NumberOfFrames")
    if frames is not None and frames != 1:
        if "TOMOSYNTHESIS" in (value.upper() for value in attributes.texts("ImageType")):
            raise TomosynthesisError(f"{path}: breast tomosynthesis ({frames} frames) is not supported")
        raise UnsupportedImageError(f"{path}: {frames} frames; only single-frame mammograms are read")


def _pixel_module(attributes: _Attributes) -> _PixelModule:
    path = attributes.path
    samples = attributes.required_integer("SamplesPerPixel")
    photometric_text = attributes.text("PhotometricInterpretation").upper()
    if samples != 1 or photometric_text not in Photometric.__members__:
        raise UnsupportedImageError(
            f"{path}: photometric interpretation {photometric_text or '(missing)'} with {samples} samples per "
            "pixel; mammograms are MONOCHROME1 or MONOCHROME2"
        )
    rows = attributes.required_integer("Rows")
    columns = attributes.required_integer("Columns")
    if rows < 1 or columns < 1 or rows * columns > MAX_PIXELS:
        raise CorruptDicomError(f"{path}: implausible image size {rows} x {columns}")
    bits_allocated = attributes.required_integer("BitsAllocated")
    bits_stored = attributes.required_integer("BitsStored")
    high_bit = attributes.integer("HighBit")
    representation = attributes.required_integer("PixelRepresentation")
    if (
        bits_allocated not in (8, 16)
        or not 1 <= bits_stored <= bits_allocated
        or representation not in (0, 1)
    ):
        raise UnsupportedImageError(
            f"{path}: {bits_stored} of {bits_allocated} bits (pixel representation {representation}); "
            "mammograms have 8 or 16 bits allocated"
        )
    if high_bit is not None and high_bit != bits_stored - 1:
        raise CorruptDicomError(f"{path}: High Bit {high_bit} does not match Bits Stored {bits_stored}")
    return _PixelModule(
        rows, columns, bits_allocated, bits_stored, representation == 1, Photometric(photometric_text)
    )


def _transfer_syntax(dataset: FileDataset, path: Path) -> UID:
    meta = _Attributes(dataset.file_meta, path)
    transfer_syntax = UID(meta.text("TransferSyntaxUID"))
    if not transfer_syntax:
        raise CorruptDicomError(f"{path}: the file meta information has no Transfer Syntax UID")
    if transfer_syntax not in SUPPORTED_TRANSFER_SYNTAXES:
        name = transfer_syntax.name if transfer_syntax.is_valid else transfer_syntax
        raise UnsupportedTransferSyntaxError(
            f"{path}: pixel data encoded as {name}, which this workstation cannot decode; "
            "export the image uncompressed or as JPEG 2000, JPEG-LS, JPEG lossless or RLE"
        )
    return transfer_syntax


def _check_native_length(
    path: Path, pixel_element: _PixelElement | None, pixel_module: _PixelModule, file_size: int
) -> None:
    if pixel_element is None:
        return
    expected = pixel_module.native_bytes
    if pixel_element.length == UNDEFINED_LENGTH:
        raise CorruptDicomError(f"{path}: encapsulated pixel data in an uncompressed transfer syntax")
    available = min(pixel_element.length, max(file_size - pixel_element.value_offset, 0))
    if available < expected:
        raise CorruptDicomError(
            f"{path}: truncated: the pixel data has {available} bytes where {pixel_module.rows} x "
            f"{pixel_module.columns} pixels need {expected}"
        )


def _values(
    dataset: FileDataset,
    path: Path,
    module: _PixelModule,
    modality_lut: _ModalityLut,
    decoding: decoders.Decoding = decoders.FULL_SIZE_CPU,
) -> np.ndarray:
    """The decoded pixels in the file frame: Modality LUT applied, MONOCHROME1 inverted."""
    values = modality_lut.apply(_decode(dataset, path, module, decoding))
    if module.photometric is Photometric.MONOCHROME1:
        low, high = modality_lut.output_range(module)
        values = _invert(values, low + high)
    return values


def _decode(
    dataset: FileDataset, path: Path, module: _PixelModule, decoding: decoders.Decoding
) -> np.ndarray:
    """The stored values: full size, or at ``decoding.level`` where the decoder chosen can."""
    transfer_syntax = UID(dataset.file_meta.TransferSyntaxUID)
    if not module.signed:  # signed JPEG 2000 may need pydicom's sign correction; mammograms are unsigned
        decoder = decoders.choose_decoder(transfer_syntax, decoding)
        dtype = np.dtype(f"u{module.bits_allocated // 8}")
        data = _Attributes(dataset, path).raw_bytes("PixelData") or b""
        if decoder is decoders.Decoder.REDUCED_LEVEL:
            stored = decoders.decode_reduced(data, decoding.level, module.bits_stored, dtype)
            if stored is not None:
                factor = 1 << decoding.level
                return _checked_shape(
                    path, module, stored, (-(-module.rows // factor), -(-module.columns // factor))
                )
        elif decoder is decoders.Decoder.NVIMAGECODEC:
            stored = decoders.decode_on_gpu(data, dtype)
            if stored is not None:
                return _checked_shape(path, module, stored)
    if not transfer_syntax.is_encapsulated:
        data = _Attributes(dataset, path).raw_bytes("PixelData") or b""
        if len(data) < module.native_bytes:
            raise CorruptDicomError(
                f"{path}: truncated: the pixel data has {len(data)} bytes where {module.native_bytes} are needed"
            )
    try:
        # pylibjpeg-rle panics (a BaseException) on damaged RLE segments; pydicom's own RLE decoder
        # reports them with ValueError.
        plugin = "pydicom" if transfer_syntax == RLELossless else ""
        stored = pixel_array(dataset, decoding_plugin=plugin)
    except DECODE_ERRORS as exc:
        raise PixelDecodeError(
            f"{path}: the {transfer_syntax.name} pixel data cannot be decoded (damaged, or written by a "
            "non-conformant encoder); re-export the image from the modality or PACS"
        ) from exc
    return _checked_shape(path, module, stored)


def _checked_shape(
    path: Path, module: _PixelModule, stored: np.ndarray, shape: tuple[int, int] | None = None
) -> np.ndarray:
    """``stored`` when it has ``shape`` (the header's rows and columns unless given)."""
    if stored.shape != (shape or (module.rows, module.columns)):
        raise PixelDecodeError(
            f"{path}: decoded pixels are {stored.shape}, the header says {module.rows} x {module.columns}"
        )
    return stored


def _invert(values: np.ndarray, total: float) -> np.ndarray:
    if values.dtype == np.uint16:
        return (np.int32(total) - values.astype(np.int32)).clip(0, 0xFFFF).astype(np.uint16)
    return (np.float32(total) - values).astype(np.float32)


def _modality_lut(attributes: _Attributes, little_endian: bool) -> _ModalityLut:
    for item in attributes.items("ModalityLUTSequence")[:1]:
        table = _lut(item, little_endian)
        if table is not None:
            return _ModalityLut(table=table)
    slope = attributes.number("RescaleSlope")
    intercept = attributes.number("RescaleIntercept")
    if slope == 0.0:
        raise attributes.corrupt("RescaleSlope", "is zero")
    return _ModalityLut(1.0 if slope is None else slope, 0.0 if intercept is None else intercept)


def _voi(attributes: _Attributes, little_endian: bool) -> Voi:
    centers = attributes.numbers("WindowCenter")
    widths = attributes.numbers("WindowWidth")
    explanations = attributes.texts("WindowCenterWidthExplanation")
    function_text = attributes.text("VOILUTFunction").upper()
    function = VoiFunction(function_text) if function_text in VoiFunction.__members__ else VoiFunction.LINEAR
    windows = tuple(
        Window(center, width, function, explanations[index] if index < len(explanations) else "")
        for index, (center, width) in enumerate(zip(centers, widths, strict=False))
        if (width >= 1 if function is VoiFunction.LINEAR else width > 0)  # PS3.3 C.11.2.1.2
    )
    luts = tuple(
        table
        for item in attributes.items("VOILUTSequence")
        if (table := _lut(item, little_endian)) is not None
    )
    return Voi(windows, luts)


def _lut(item: _Attributes, little_endian: bool) -> VoiLut | None:
    """A LUT item (PS3.3 C.11.1.1.1 / C.11.2.1.1), None when it is inconsistent."""
    descriptor = item.numbers("LUTDescriptor")
    if len(descriptor) != 3:
        return None
    entries, first, bits = (int(value) for value in descriptor)
    entries = entries or 65536  # a descriptor entry count of 0 means 2^16
    value = item.value("LUTData")
    if isinstance(value, bytes):
        data = np.frombuffer(value[: len(value) // 2 * 2], dtype="<u2" if little_endian else ">u2")
    elif isinstance(value, MultiValue | list) and all(isinstance(entry, int) for entry in value):
        data = np.asarray(value, dtype=np.int64)
    else:
        return None
    if len(data) != entries or not 8 <= bits <= 16 or data.min() < 0:
        return None
    return VoiLut(first, data.astype(np.uint16), bits, item.text("LUTExplanation"))


def _check_screening(
    attributes: _Attributes, module: _PixelModule, spacing: tuple[float, float] | None
) -> None:
    """Refuse what is not a screening view, by its header alone: a stereotactic, biopsy or
    localisation image (ImageType STEREO, or such words in the procedure text), a specimen (the
    specimen view code, or the word), an image whose physical size is under a full-field
    mammogram's. Without a pixel spacing the size is unknown and never refused."""
    path = attributes.path
    for keyword in PROCEDURE_TEXT:
        text = attributes.text(keyword)
        if (kind := evidence.not_screening(text)) is not None:
            raise NotAScreeningViewError(
                f"{path}: not a screening view: {kind.value} ({keyword} {text}); not scored", kind
            )
    if _header_view(attributes).code is ViewCode.SPECIMEN:
        kind = NotScreening.SPECIMEN
        raise NotAScreeningViewError(
            f"{path}: not a screening view: {kind.value} (ViewCodeSequence); not scored", kind
        )
    if spacing is None:
        return
    extent = sorted((module.rows * spacing[0], module.columns * spacing[1]))
    if extent[0] < FULL_FIELD_MIN_MM[0] or extent[1] < FULL_FIELD_MIN_MM[1]:
        kind = NotScreening.TOO_SMALL
        raise NotAScreeningViewError(
            f"{path}: not a screening view: {kind.value} ({module.rows} x {module.columns} pixels cover "
            f"{extent[0]:.0f} x {extent[1]:.0f} mm, a full-field mammogram at least "
            f"{FULL_FIELD_MIN_MM[0]:.0f} x {FULL_FIELD_MIN_MM[1]:.0f} mm); not scored",
            kind,
        )


def _consistent(path: Path, what: str, stated: list[tuple[str, str]], error: type[DicomError]) -> None:
    """Every consulted source that states a value states the same one; else an error naming them."""
    if len({value for _, value in stated}) > 1:
        listed = ", ".join(f"{source} {value}" for source, value in stated)
        raise error(f"{path}: contradictory {what} ({listed}); check which {what} this image shows")


def _laterality(
    attributes: _Attributes,
    hints: Hints | None,
    texts: list[tuple[str, evidence.TextEvidence]],
    names: list[tuple[str, evidence.TextEvidence]],
    values: Callable[[], np.ndarray],
) -> tuple[Laterality, str]:
    """ImageLaterality, Laterality, FrameLaterality, a layout's hint and the header text: every one
    that states a laterality must agree, the first wins. Where none does, the path names (which
    must agree), else the pixels. Returns the laterality and its source."""
    path = attributes.path
    tags = [
        ("ImageLaterality", attributes.text("ImageLaterality").upper()),
        ("Laterality", attributes.text("Laterality").upper()),
        ("FrameLaterality", _frame_laterality(attributes)),
    ]
    for keyword, value in tags:
        if value and value not in (Laterality.RIGHT.value, Laterality.LEFT.value):
            raise LateralityError(
                f"{path}: {keyword} is {value!r}; a mammogram shows the right (R) or left (L) breast"
            )
    stated = [(keyword, value) for keyword, value in tags if value]
    if hints is not None and hints.laterality is not None:
        stated.append((hints.source, hints.laterality.value))
    stated += [(source, text.laterality.value) for source, text in texts if text.laterality is not None]
    if not stated:
        stated = [(source, name.laterality.value) for source, name in names if name.laterality is not None]
    _consistent(path, "laterality", stated, LateralityError)
    if stated:
        return Laterality(stated[0][1]), stated[0][0]
    return evidence.laterality_from_pixels(values()), "pixels"


def _frame_laterality(attributes: _Attributes) -> str:
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for group in attributes.items(groups)[:1]:
            for anatomy in group.items("FrameAnatomySequence")[:1]:
                return anatomy.text("FrameLaterality").upper()
    return ""


def _view_info(
    attributes: _Attributes,
    hints: Hints | None,
    texts: list[tuple[str, evidence.TextEvidence]],
    names: list[tuple[str, evidence.TextEvidence]],
    values: Callable[[], np.ndarray],
) -> ViewInfo:
    """The view from the header (:func:`_header_view`), a layout's hint and the header text: every one
    that names a projection must agree, the first wins. Where none does, the path names (which must
    agree), else, only when the header has no view attribute at all, the pixels. Modifiers from the
    View Modifier Code Sequence and the words SPOT and MAG in the header text."""
    header = _header_view(attributes)
    modifiers = header.modifiers | frozenset(
        modifier
        for keyword in (*PROCEDURE_TEXT, "ViewPosition")
        for modifier in evidence.modifiers(attributes.text(keyword))
    )
    stated: list[tuple[str, ViewCode, str]] = []
    if header.code is not ViewCode.OTHER:
        stated.append((header.source, header.code, header.label or header.code.value))
    if hints is not None and hints.view is not None:
        stated.append((hints.source, hints.view, hints.view.value))
    stated += [(source, text.view, text.view.value) for source, text in texts if text.view is not None]
    if not stated:
        stated = [(source, name.view, name.view.value) for source, name in names if name.view is not None]
    _consistent(attributes.path, "view", [(source, code.value) for source, code, _ in stated], ViewError)
    if stated:
        source, code, label = stated[0]
        return ViewInfo(code, modifiers, source, label)
    if header.source:
        return ViewInfo(header.code, modifiers, header.source, header.label)
    return ViewInfo(evidence.view_from_pixels(values()), modifiers, "pixels")


def _header_view(attributes: _Attributes) -> ViewInfo:
    """View Position if it is a known label, else the View Code Sequence; modifiers from the View
    Modifier Code Sequence in either case."""
    code_items = attributes.items("ViewCodeSequence")[:1]
    modifiers = frozenset(
        modifier
        for item in code_items
        for modifier_item in item.items("ViewModifierCodeSequence")
        if (modifier := _coded(modifier_item, VIEW_MODIFIER_CODES)) is not None
    )
    label = attributes.text("ViewPosition")
    normalised = label.upper().replace(" ", "")
    extra = frozenset()
    if normalised.endswith(IMPLANT_DISPLACED_SUFFIX) and normalised != IMPLANT_DISPLACED_SUFFIX:
        normalised = normalised.removesuffix(IMPLANT_DISPLACED_SUFFIX)
        extra = frozenset({ViewModifier.IMPLANT_DISPLACED})
    if normalised in VIEW_POSITION_LABELS:
        code, implied = VIEW_POSITION_LABELS[normalised]
        return ViewInfo(code, modifiers | implied | extra, "ViewPosition", label)
    for item in code_items:
        code = _coded(item, VIEW_CODES)
        if code is not None:
            return ViewInfo(code, modifiers, "ViewCodeSequence", item.text("CodeMeaning") or code.value)
    return ViewInfo(ViewCode.OTHER, modifiers, "ViewPosition" if label else "", label)


def _coded(item: _Attributes, table: dict[str, _Code]) -> _Code | None:
    if item.text("CodingSchemeDesignator").upper() not in SNOMED_DESIGNATORS:
        return None
    return table.get(item.text("CodeValue").upper())


def _presentation_intent(attributes: _Attributes) -> PresentationIntent:
    text = attributes.text("PresentationIntentType").upper()
    known = {intent.value for intent in PresentationIntent}
    return PresentationIntent(text) if text in known else PresentationIntent.UNSPECIFIED


def _pixel_spacing(attributes: _Attributes) -> tuple[float, float] | None:
    """Imager Pixel Spacing divided by the Estimated Radiographic Magnification Factor (PS3.3
    10.7.1.1: spacing at the detector, corrected to the breast), else Pixel Spacing."""
    imager = attributes.numbers("ImagerPixelSpacing")
    if len(imager) == 2 and min(imager) > 0:
        magnification = attributes.number("EstimatedRadiographicMagnificationFactor")
        factor = magnification if magnification is not None and magnification > 0 else 1.0
        return imager[0] / factor, imager[1] / factor
    spacing = attributes.numbers("PixelSpacing")
    if len(spacing) == 2 and min(spacing) > 0:
        return spacing[0], spacing[1]
    return None


def _acquisition_time(attributes: _Attributes) -> datetime | None:
    """Acquisition DateTime, else Acquisition Date and Time, else Content Date and Time; None when
    absent or unparsable (it only orders duplicates)."""
    combined = attributes.text("AcquisitionDateTime")
    candidates = [
        (combined[:8], combined[8:]),
        (attributes.text("AcquisitionDate"), attributes.text("AcquisitionTime")),
        (attributes.text("ContentDate"), attributes.text("ContentTime")),
    ]
    for date, time in candidates:
        parsed = _parse_date_time(date, time)
        if parsed is not None:
            return parsed
    return None


def _parse_date_time(date: str, time: str) -> datetime | None:
    """DICOM DA (YYYYMMDD) and TM (HH[MM[SS[.F{1,6}]]]) values, time zone offsets ignored."""
    time = time.split("+")[0].split("-")[0].replace(":", "")
    whole, _, fraction = time.partition(".")
    if len(date) != 8 or len(whole) not in (0, 2, 4, 6) or not (date + whole + fraction).isdigit():
        return None
    whole = whole.ljust(6, "0")
    try:
        return datetime(
            int(date[:4]),
            int(date[4:6]),
            int(date[6:8]),
            int(whole[:2]),
            int(whole[2:4]),
            min(int(whole[4:6]), 59),  # a leap second (60) is legal in TM
            int(fraction[:6].ljust(6, "0")) if fraction else 0,
        )
    except ValueError:
        return None


def _needs_mirroring(
    values: np.ndarray, laterality: Laterality, patient_orientation: list[str]
) -> tuple[bool, OrientationSource]:
    """Whether the stored image must be mirrored so that R views face left and L views face right.

    PatientOrientation's first value is the direction of increasing column (PS3.3 C.7.6.1.1.1): a
    breast faces right when its rows run toward the nipple (A, anterior) and left when they run toward
    the chest wall (P, posterior). Without an A or P there, the pixels decide
    (:func:`evidence.chest_wall_on_left`).
    """
    row_direction = patient_orientation[0].upper() if patient_orientation else ""
    if ("A" in row_direction) != ("P" in row_direction):
        faces_right = "A" in row_direction
        source = OrientationSource.PATIENT_ORIENTATION
    else:
        faces_right = evidence.chest_wall_on_left(values)
        source = OrientationSource.PIXELS
    should_face_right = laterality is Laterality.LEFT
    return faces_right != should_face_right, source
