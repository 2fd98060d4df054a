"""Small DICOM files for the reader tests: a synthetic mammogram re-encoded and re-labelled at will."""

from __future__ import annotations

import copy
import io
from functools import cache
from pathlib import Path

import imagecodecs
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from gmic_core.imaging.views import View
from gmic_core.synthetic import SynthesisConfig, generate_exam, write_image

SMALL = (256, 208)
# pydicom warns about what it tolerates in a damaged file (a truncated sequence, an unknown character
# set, RLE padding). The reader silences that process-wide (gmic_core.imaging.dicom; a user never sees
# them: test_views.py::test_a_user_never_sees_pydicom_warnings), but pytest records every warning of a
# test regardless of earlier filters. The tests that read damaged files on purpose expect them.
READS_DAMAGED_FILES = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")
LOSSLESS_SYNTAXES = (
    ImplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    RLELossless,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEG2000Lossless,
)


@cache
def small_exam(size: tuple[int, int] = SMALL, index: int = 0):
    return generate_exam(7, index, SynthesisConfig(size=size, malignant_fraction=0.5, benign_fraction=0.5))


def dataset(view: View = View.L_CC, size: tuple[int, int] = SMALL, index: int = 0) -> Dataset:
    """A synthetic MG For Presentation image, uncompressed, MONOCHROME2, 12 bits."""
    buffer = io.BytesIO()
    write_image(buffer, small_exam(size, index), view, "explicit-little")
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def encode(ds: Dataset, transfer_syntax: str) -> Dataset:
    """``ds`` with its pixel data re-encoded losslessly in ``transfer_syntax``."""
    pixels = ds.pixel_array
    out = copy.deepcopy(ds)
    if transfer_syntax in (JPEGLossless, JPEGLosslessSV1):
        predictor = 1 if transfer_syntax == JPEGLosslessSV1 else 6
        frame = imagecodecs.jpeg8_encode(
            pixels, lossless=True, predictor=predictor, bitspersample=ds.BitsStored
        )
        out.PixelData = encapsulate([frame])
    elif transfer_syntax == JPEGLSLossless:
        out.PixelData = encapsulate([imagecodecs.jpegls_encode(pixels, level=0)])
    elif transfer_syntax in (RLELossless, JPEG2000Lossless):
        out.compress(transfer_syntax, pixels, generate_instance_uid=False)
        return out
    else:
        out.file_meta.TransferSyntaxUID = transfer_syntax
        return out
    out["PixelData"].VR = "OB"
    out["PixelData"].is_undefined_length = True
    out.file_meta.TransferSyntaxUID = transfer_syntax
    return out


def save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def relabelled(ds: Dataset, **attributes: object) -> Dataset:
    """A copy with new UIDs and the given attributes set (None deletes one)."""
    out = copy.deepcopy(ds)
    out.SOPInstanceUID = out.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    for keyword, value in attributes.items():
        if value is None:
            if keyword in out:
                delattr(out, keyword)
        else:
            setattr(out, keyword, value)
    return out


CORRUPTIONS = ("header", "native pixels", "encoded pixels")


def corrupt_copy(original: Path, target: Path, kind: str) -> Path:
    """A damaged copy of ``original`` (same SOP Instance UID), one of :data:`CORRUPTIONS`: its header
    cut short; its native pixel data cut short (both found by a header read); or re-encoded as JPEG 2000
    and then cut short (the header reads, only decoding fails)."""
    data = original.read_bytes()
    if kind == "header":
        target.write_bytes(data[:600])
    elif kind == "native pixels":
        target.write_bytes(data[: len(data) // 2])
    else:
        buffer = io.BytesIO()
        encode(pydicom.dcmread(original), JPEG2000Lossless).save_as(buffer, enforce_file_format=True)
        encoded = buffer.getvalue()
        target.write_bytes(encoded[: len(encoded) - 2000])
    return target
