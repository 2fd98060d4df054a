"""The decoder selection (gmic_core/imaging/decoders.py) and its fallback, without a GPU: nvImageCodec
absent, and a fake nvImageCodec module injected that returns known pixels, whose path from the stored
values on (Modality LUT, MONOCHROME1 inversion, mirroring, VOI) must be pydicom's."""

from __future__ import annotations

import copy
import logging
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import HTJ2K, JPEG2000, ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from gmic_core.imaging import View, decoders, read_dicom
from gmic_core.imaging.decoders import Decoder, choose_decoder
from tests.core import dicom_factory as factory


class FakeImage:
    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def cpu(self) -> FakeImage:
        return self

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.values


def fake_nvimagecodec(pixels: np.ndarray | None) -> tuple[types.ModuleType, list[bytes]]:
    """A stand-in for ``nvidia.nvimgcodec`` whose decoder returns ``pixels`` (height x width x 1, as
    nvImageCodec returns a grey image), or None as nvImageCodec does for what it cannot decode; and
    the codestreams it was given."""
    calls: list[bytes] = []

    class FakeDecoder:
        def decode(self, codestream: bytes, params: dict) -> FakeImage | None:
            assert params == {"allow_any_depth": True, "color_spec": "unchanged"}
            calls.append(bytes(codestream))
            return None if pixels is None else FakeImage(pixels[..., None])

    module = types.ModuleType(decoders.NVIMAGECODEC_MODULE)
    module.Decoder = FakeDecoder
    module.DecodeParams = dict
    module.ColorSpec = types.SimpleNamespace(UNCHANGED="unchanged")
    return module, calls


@pytest.fixture(autouse=True)
def fresh_selection():
    """The module lookup and the once-per-reason log are cached per process."""
    decoders.nvimagecodec.cache_clear()
    decoders._log_fallback_once.cache_clear()
    yield
    decoders.nvimagecodec.cache_clear()
    decoders._log_fallback_once.cache_clear()


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    """The same MONOCHROME1, rescaled right view twice: as JPEG 2000 of the synthetic pixels, and
    uncompressed with other known stored values (``known``) that the fake GPU decoder returns."""
    base = factory.relabelled(
        factory.dataset(View.R_CC),
        PhotometricInterpretation="MONOCHROME1",
        RescaleSlope="2",
        RescaleIntercept="-5",
    )
    known = (base.pixel_array // 2 + 7).astype(np.uint16)
    native = copy.deepcopy(base)
    native.PixelData = known.tobytes()
    jpeg2000 = factory.save(factory.encode(base, JPEG2000Lossless), tmp_path / "j2k.dcm")
    return jpeg2000, factory.save(native, tmp_path / "native.dcm"), known


def test_selection(monkeypatch):
    assert choose_decoder(JPEG2000Lossless, cuda=True) is Decoder.PYDICOM  # not installed here
    monkeypatch.setitem(sys.modules, decoders.NVIMAGECODEC_MODULE, fake_nvimagecodec(None)[0])
    decoders.nvimagecodec.cache_clear()
    assert choose_decoder(JPEG2000Lossless, cuda=True) is Decoder.NVIMAGECODEC
    assert choose_decoder(JPEG2000, cuda=True) is Decoder.NVIMAGECODEC
    assert choose_decoder(JPEG2000, cuda=False) is Decoder.PYDICOM
    for other in (HTJ2K, RLELossless, ExplicitVRLittleEndian):
        assert choose_decoder(other, cuda=True) is Decoder.PYDICOM


def test_without_nvimagecodec_pydicom_decodes_and_says_why_once(files, monkeypatch, caplog):
    jpeg2000, _, _ = files
    monkeypatch.setitem(sys.modules, decoders.NVIMAGECODEC_MODULE, None)  # import fails
    with caplog.at_level(logging.INFO, logger=decoders.__name__):
        on_cuda = [read_dicom(jpeg2000, cuda=True) for _ in range(2)]
    on_cpu = read_dicom(jpeg2000)
    for image in on_cuda:
        np.testing.assert_array_equal(image.pixels, on_cpu.pixels)
    reasons = [r.getMessage() for r in caplog.records if r.name == decoders.__name__]
    assert reasons == [
        "JPEG 2000 is decoded on the CPU by pydicom: nvImageCodec is not installed "
        "(pip install 'gmic-reader[gpu]')"
    ]


def test_gpu_pixels_take_pydicoms_path_from_the_stored_values_on(files, monkeypatch):
    jpeg2000, native, known = files
    module, calls = fake_nvimagecodec(known)
    monkeypatch.setitem(sys.modules, decoders.NVIMAGECODEC_MODULE, module)
    on_gpu = read_dicom(jpeg2000, cuda=True)
    reference = read_dicom(native)  # the same header, the known stored values, decoded by pydicom
    assert len(calls) == 1
    assert calls[0][:2] == b"\xff\x4f"
    assert on_gpu.pixels.dtype == reference.pixels.dtype
    np.testing.assert_array_equal(on_gpu.pixels, reference.pixels)
    assert on_gpu.voi == reference.voi
    assert (on_gpu.mirrored, on_gpu.orientation_source) == (reference.mirrored, reference.orientation_source)
    assert not np.array_equal(on_gpu.pixels, read_dicom(jpeg2000).pixels)  # the fake's pixels were used
    read_dicom(jpeg2000, cuda=False)
    assert len(calls) == 1  # a CPU run never asks the GPU


def test_what_nvimagecodec_cannot_decode_goes_to_pydicom(files, monkeypatch):
    jpeg2000, _, _ = files
    module, calls = fake_nvimagecodec(None)
    monkeypatch.setitem(sys.modules, decoders.NVIMAGECODEC_MODULE, module)
    np.testing.assert_array_equal(read_dicom(jpeg2000, cuda=True).pixels, read_dicom(jpeg2000).pixels)
    assert len(calls) == 1
