"""Which decoder turns a DICOM file's compressed pixel data into stored values, chosen in one place
(:func:`choose_decoder`): NVIDIA nvImageCodec on the GPU for JPEG 2000 when it is installed (the
optional extra ``gpu``) and the model runs on a CUDA device, pydicom with its pylibjpeg plugins
otherwise.

Both return the same thing, the stored values as pydicom's ``pixel_array`` would (its dtype: unsigned
or signed per Pixel Representation, 8 or 16 bits per Bits Allocated), so the Modality LUT,
MONOCHROME1 inversion and mirroring that follow (``gmic_core.imaging.dicom``) never know which one
ran. The GPU is a speed-up, never a requirement: a codestream nvImageCodec cannot decode goes to
pydicom, which decodes it or reports the file as damaged with the usual typed error.
"""

from __future__ import annotations

import functools
import importlib
import logging
import struct
import threading
from enum import StrEnum
from types import ModuleType

import numpy as np
from pydicom.encaps import generate_frames
from pydicom.uid import JPEG2000, UID, JPEG2000Lossless

logger = logging.getLogger(__name__)

# PS3.5 A.4.4: JPEG 2000 Part 1, lossless only and lossy (HTJ2K, Part 15, is left to pydicom).
JPEG2000_SYNTAXES = frozenset({JPEG2000Lossless, JPEG2000})
NVIMAGECODEC_MODULE = "nvidia.nvimgcodec"  # the import name of the PyPI package nvidia-nvimgcodec-cu12


class Decoder(StrEnum):
    PYDICOM = "pydicom"
    NVIMAGECODEC = "nvImageCodec"


def choose_decoder(transfer_syntax: UID, cuda: bool) -> Decoder:
    """nvImageCodec when the transfer syntax is JPEG 2000, a CUDA device is in use (``cuda``: the
    model's device, so that decoding never claims a GPU the run does not use) and the module imports;
    pydicom otherwise. Why JPEG 2000 falls back to pydicom is logged once per reason."""
    if transfer_syntax not in JPEG2000_SYNTAXES:
        return Decoder.PYDICOM
    if not cuda:
        _log_fallback_once("no CUDA device is in use")
        return Decoder.PYDICOM
    if nvimagecodec() is None:
        _log_fallback_once("nvImageCodec is not installed (pip install 'gmic-reader[gpu]')")
        return Decoder.PYDICOM
    return Decoder.NVIMAGECODEC


@functools.cache
def nvimagecodec() -> ModuleType | None:
    """The nvImageCodec module, None when it cannot be imported (not installed, or no CUDA runtime)."""
    try:
        return importlib.import_module(NVIMAGECODEC_MODULE)
    except ImportError:
        return None


@functools.cache
def _log_fallback_once(reason: str) -> None:
    logger.info("JPEG 2000 is decoded on the CPU by pydicom: %s", reason)


_thread_state = threading.local()


def decode_on_gpu(pixel_data: bytes, dtype: np.dtype) -> np.ndarray | None:
    """The stored values of a single-frame JPEG 2000 Pixel Data value decoded by nvImageCodec, as
    ``dtype``; None when nvImageCodec cannot decode it (the caller then asks pydicom). One decoder per
    thread: the views of an exam are decoded in parallel threads."""
    module = nvimagecodec()
    if getattr(_thread_state, "module", None) is not module:
        _thread_state.module, _thread_state.decoder = module, module.Decoder()
    decoder = _thread_state.decoder
    try:
        codestream = next(generate_frames(pixel_data, number_of_frames=1))
    except (ValueError, StopIteration, struct.error, EOFError):
        return None  # damaged encapsulation: pydicom reports it
    # Unchanged colour (one grey channel) at the codestream's own bit depth, not 8-bit RGB.
    params = module.DecodeParams(allow_any_depth=True, color_spec=module.ColorSpec.UNCHANGED)
    try:
        image = decoder.decode(codestream, params=params)
    except RuntimeError:
        image = None
    if image is None:
        logger.debug("nvImageCodec could not decode a JPEG 2000 codestream; pydicom decodes it")
        return None
    values = np.asarray(image.cpu())
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[..., 0]
    return values.astype(dtype, copy=False)
