"""Which decoder turns a DICOM file's compressed pixel data into stored values, chosen in one place
(:func:`choose_decoder`) from what the caller asks (:class:`Decoding`) and what the file is:

* a **reduced resolution level** of a JPEG 2000 codestream (Pillow's OpenJPEG), for a model whose
  input scale is ``1 / 2**level``: a quarter of the full decode's work per level, and no resampling;
* **NVIDIA nvImageCodec on the GPU** for JPEG 2000 when it is installed (the optional extra ``gpu``)
  and the model runs on a CUDA device;
* **pydicom** with its pylibjpeg plugins otherwise.

Each returns the stored values as pydicom's ``pixel_array`` would (its dtype: unsigned or signed
per Pixel Representation, 8 or 16 bits per Bits Allocated), so the Modality LUT, MONOCHROME1
inversion and mirroring that follow (``gmic_core.imaging.dicom``) never know which one ran. Neither
the GPU nor the reduced level is ever required: a codestream they cannot decode goes to pydicom,
which decodes it or reports the file as damaged with the usual typed error.
"""

from __future__ import annotations

import functools
import importlib
import io
import logging
import struct
import threading
from dataclasses import dataclass
from enum import StrEnum
from types import ModuleType

import numpy as np
from PIL import Image
from pydicom.encaps import generate_frames
from pydicom.uid import JPEG2000, UID, JPEG2000Lossless

logger = logging.getLogger(__name__)

# PS3.5 A.4.4: JPEG 2000 Part 1, lossless only and lossy (HTJ2K, Part 15, is left to pydicom).
JPEG2000_SYNTAXES = frozenset({JPEG2000Lossless, JPEG2000})
NVIMAGECODEC_MODULE = "nvidia.nvimgcodec"  # the import name of the PyPI package nvidia-nvimgcodec-cu12
# ISO/IEC 15444-1 Annex A: the SIZ and COD marker segments of the main header.
SIZ_MARKER, COD_MARKER = b"\xff\x51", b"\xff\x52"
PILLOW_BITS = 16  # Pillow widens 9- to 16-bit grey samples to 16 bits ("I;16"), shifting them left


class Decoder(StrEnum):
    PYDICOM = "pydicom"
    NVIMAGECODEC = "nvImageCodec"
    REDUCED_LEVEL = "JPEG 2000 reduced resolution level"


@dataclass(frozen=True)
class Decoding:
    """What the caller of a read wants beyond the full-size stored image: ``level`` > 0 accepts a
    JPEG 2000 image at ``1 / 2**level`` of its size (a model's input path only; the display always
    decodes full size); ``cuda`` says the pixels are for a model on a CUDA device, where JPEG 2000
    may be decoded. A full-size, CPU read is ``Decoding()``."""

    level: int = 0
    cuda: bool = False

    @property
    def key(self) -> str:
        """What a model key must say about this decoding: the reduced level changes scores (a wavelet
        low-pass is not an area average, and the crop is found on the smaller image: docs/scale.md);
        where the decode ran does not."""
        return f"j2k-level{self.level}" if self.level else ""


FULL_SIZE_CPU = Decoding()  # what the display takes, and every read that asks for nothing else


def choose_decoder(transfer_syntax: UID, decoding: Decoding) -> Decoder:
    """The reduced level when one is asked for and the transfer syntax is JPEG 2000; else
    nvImageCodec when it is JPEG 2000, a CUDA device is in use (the model's device, so that decoding
    never claims a GPU the run does not use) and the module imports; pydicom otherwise. Why JPEG 2000
    for a CUDA device falls back to pydicom is logged once per reason."""
    if transfer_syntax not in JPEG2000_SYNTAXES:
        return Decoder.PYDICOM
    if decoding.level:
        return Decoder.REDUCED_LEVEL
    if not decoding.cuda:
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


def _codestream(pixel_data: bytes) -> bytes | None:
    """The one frame of encapsulated Pixel Data; None when the encapsulation is damaged (pydicom then
    reports it)."""
    try:
        return next(generate_frames(pixel_data, number_of_frames=1))
    except (ValueError, StopIteration, struct.error, EOFError):
        return None


_thread_state = threading.local()


def decode_on_gpu(pixel_data: bytes, dtype: np.dtype) -> np.ndarray | None:
    """The stored values of a single-frame JPEG 2000 Pixel Data value decoded by nvImageCodec, as
    ``dtype``; None when nvImageCodec cannot decode it (the caller then asks pydicom). One decoder per
    thread: the views of an exam are decoded in parallel threads."""
    module = nvimagecodec()
    if getattr(_thread_state, "module", None) is not module:
        _thread_state.module, _thread_state.decoder = module, module.Decoder()
    codestream = _codestream(pixel_data)
    if codestream is None:
        return None
    # Unchanged colour (one grey channel) at the codestream's own bit depth, not 8-bit RGB.
    params = module.DecodeParams(allow_any_depth=True, color_spec=module.ColorSpec.UNCHANGED)
    try:
        image = _thread_state.decoder.decode(codestream, params=params)
    except RuntimeError:
        image = None
    if image is None:
        logger.debug("nvImageCodec could not decode a JPEG 2000 codestream; pydicom decodes it")
        return None
    values = np.asarray(image.cpu())
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[..., 0]
    return values.astype(dtype, copy=False)


def decode_reduced(pixel_data: bytes, level: int, bits_stored: int, dtype: np.dtype) -> np.ndarray | None:
    """The stored values of an unsigned, single-component JPEG 2000 image at resolution ``level``
    (``ceil(size / 2**level)``), as ``dtype``; None when the codestream is not such an image of
    ``bits_stored`` bits, with its origin at 0 and at least ``level`` decomposition levels, or Pillow
    cannot decode that level (Pillow 13 fails on some odd sizes from level 2 on): the caller then
    decodes full size."""
    codestream = _codestream(pixel_data)
    header = None if codestream is None else _main_header(codestream)
    if header is None:
        return None
    components, bits, signed, origin, levels = header
    if components != 1 or bits != bits_stored or signed or origin != (0, 0) or levels < level:
        return None
    try:
        with Image.open(io.BytesIO(codestream)) as image:
            image.reduce = level
            image.load()
            values = np.asarray(image)
    except (OSError, ValueError, struct.error) as error:
        logger.debug("JPEG 2000 resolution level %d not decoded (%s); decoding full size", level, error)
        return None
    if values.dtype == np.uint16 and bits_stored < PILLOW_BITS:
        values = values >> (PILLOW_BITS - bits_stored)
    return values.astype(dtype, copy=False)


def _main_header(codestream: bytes) -> tuple[int, int, bool, tuple[int, int], int] | None:
    """(components, bits, signed, image origin, decomposition levels) from the SIZ and COD marker
    segments, None when they are not where ISO/IEC 15444-1 A.5.1 and A.6.1 put them."""
    siz = codestream.find(SIZ_MARKER)
    cod = codestream.find(COD_MARKER)
    if siz != 2 or cod < 0 or len(codestream) < max(siz + 43, cod + 10):
        return None
    origin_x, origin_y = struct.unpack_from(">II", codestream, siz + 14)
    components = struct.unpack_from(">H", codestream, siz + 38)[0]
    ssiz = codestream[siz + 40]  # the first component's depth: bits - 1, sign in the high bit
    return components, (ssiz & 0x7F) + 1, bool(ssiz & 0x80), (origin_y, origin_x), codestream[cod + 9]
