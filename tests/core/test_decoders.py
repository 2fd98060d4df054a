"""The decoder selection (gmic_core/imaging/decoders.py) and its fallback, without a GPU: nvImageCodec
absent, and a fake nvImageCodec module injected that returns known pixels, whose path from the stored
values on (Modality LUT, MONOCHROME1 inversion, mirroring, VOI) must be pydicom's. Then the reduced
JPEG 2000 resolution levels of half-size models: where their pixels land, the geometry back to the
full-size image, the fallback to full size, the model key."""

from __future__ import annotations

import copy
import dataclasses
import logging
import sys
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from pydicom.uid import HTJ2K, JPEG2000, ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from app.defaults import DEMO_MODEL
from benchmarks.reduced_decode_bench import TOLERANCE as REDUCED_LEVEL_TOLERANCE
from benchmarks.reduced_decode_bench import largest_difference
from gmic_core import synthetic
from gmic_core.config import GMICConfig
from gmic_core.imaging import PixelGrid, View, decoders, read_dicom
from gmic_core.imaging.decoders import FULL_SIZE_CPU, Decoder, Decoding, choose_decoder
from gmic_core.imaging.scan import find_exams
from gmic_core.inference import ModelIdentity, Predictor, ViewImage, decoding_for, load_standard_views
from gmic_core.model import load_checkpoint
from gmic_core.preprocess import preprocess
from tests.core import dicom_factory as factory

ON_CUDA = Decoding(cuda=True)


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
    assert choose_decoder(JPEG2000Lossless, ON_CUDA) is Decoder.PYDICOM  # not installed here
    monkeypatch.setitem(sys.modules, decoders.NVIMAGECODEC_MODULE, fake_nvimagecodec(None)[0])
    decoders.nvimagecodec.cache_clear()
    assert choose_decoder(JPEG2000Lossless, ON_CUDA) is Decoder.NVIMAGECODEC
    assert choose_decoder(JPEG2000, ON_CUDA) is Decoder.NVIMAGECODEC
    assert choose_decoder(JPEG2000, Decoding()) is Decoder.PYDICOM
    for other in (HTJ2K, RLELossless, ExplicitVRLittleEndian):
        assert choose_decoder(other, ON_CUDA) is Decoder.PYDICOM


def test_without_nvimagecodec_pydicom_decodes_and_says_why_once(files, monkeypatch, caplog):
    jpeg2000, _, _ = files
    monkeypatch.setitem(sys.modules, decoders.NVIMAGECODEC_MODULE, None)  # import fails
    with caplog.at_level(logging.INFO, logger=decoders.__name__):
        on_cuda = [read_dicom(jpeg2000, decoding=ON_CUDA) for _ in range(2)]
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
    on_gpu = read_dicom(jpeg2000, decoding=ON_CUDA)
    reference = read_dicom(native)  # the same header, the known stored values, decoded by pydicom
    assert len(calls) == 1
    assert calls[0][:2] == b"\xff\x4f"
    assert on_gpu.pixels.dtype == reference.pixels.dtype
    np.testing.assert_array_equal(on_gpu.pixels, reference.pixels)
    assert on_gpu.voi == reference.voi
    assert (on_gpu.mirrored, on_gpu.orientation_source) == (reference.mirrored, reference.orientation_source)
    assert not np.array_equal(on_gpu.pixels, read_dicom(jpeg2000).pixels)  # the fake's pixels were used
    read_dicom(jpeg2000, decoding=Decoding())
    assert len(calls) == 1  # a CPU run never asks the GPU


def test_what_nvimagecodec_cannot_decode_goes_to_pydicom(files, monkeypatch):
    jpeg2000, _, _ = files
    module, calls = fake_nvimagecodec(None)
    monkeypatch.setitem(sys.modules, decoders.NVIMAGECODEC_MODULE, module)
    np.testing.assert_array_equal(read_dicom(jpeg2000, decoding=ON_CUDA).pixels, read_dicom(jpeg2000).pixels)
    assert len(calls) == 1


# Reduced resolution levels: a test image whose breast is a plateau with a bright square in it, at
# known stored positions, so that where the decoded pixels land can be measured. The square is
# centred on an even pixel, like the low-pass samples of a level, so that the symmetric wavelet
# filters keep its centroid exactly.
PLATEAU, SQUARE = 1000, 3000
SQUARE_AT, SQUARE_SIZE = (199, 119), 23


def pattern(size: tuple[int, int]) -> np.ndarray:
    """The chest wall on the file's left, as a right view that must be mirrored is stored."""
    pixels = np.zeros(size, dtype=np.uint16)
    pixels[40 : size[0] - 40, : int(size[1] * 0.7)] = PLATEAU
    (row, col), side = SQUARE_AT, SQUARE_SIZE
    pixels[row : row + side, col : col + side] = SQUARE
    return pixels


def pattern_file(tmp_path: Path, view: View, size: tuple[int, int], transfer_syntax=JPEG2000Lossless) -> Path:
    base = factory.relabelled(factory.dataset(view), PatientOrientation=["A", "F"])
    base.Rows, base.Columns = size
    base.PixelData = pattern(size).tobytes()
    return factory.save(
        factory.encode(base, transfer_syntax), tmp_path / f"{view.value}-{size[0]}x{size[1]}.dcm"
    )


def square_centroid(pixels: np.ndarray, rows: Callable, cols: Callable) -> tuple[float, float]:
    """The bright square's centroid (its excess over the plateau as weights), pixel centres mapped to
    stored coordinates by ``rows`` and ``cols``."""
    weights = np.clip(np.asarray(pixels, dtype=np.float64) - PLATEAU, 0, None)
    weights[weights < (SQUARE - PLATEAU) * 0.25] = 0  # the wavelet's ringing at the plateau's edges
    index_rows, index_cols = np.indices(weights.shape) + 0.5
    total = weights.sum()
    return (
        float((rows(index_rows) * weights).sum() / total),
        float((cols(index_cols) * weights).sum() / total),
    )


@pytest.mark.parametrize("size", [(600, 480), (601, 483)])
@pytest.mark.parametrize("view", [View.L_CC, View.R_CC])
def test_a_reduced_level_lands_where_its_grid_says(tmp_path, view, size):
    path = pattern_file(tmp_path, view, size)
    full = read_dicom(path)
    reduced = read_dicom(path, decoding=Decoding(level=1))
    assert reduced.pixels.shape == (-(-size[0] // 2), -(-size[1] // 2))
    assert reduced.pixels.dtype == full.pixels.dtype
    assert reduced.mirrored == full.mirrored == (view is View.R_CC)
    assert reduced.grid == PixelGrid.reduced(1, size, full.mirrored)
    assert full.grid is None
    assert np.median(reduced.pixels[reduced.pixels > 0]) == PLATEAU  # Pillow's 16-bit widening undone
    grid = reduced.grid
    expected = square_centroid(full.pixels, lambda r: r, lambda c: c)
    measured = square_centroid(
        reduced.pixels,
        lambda r: grid.row_origin + grid.factor * r,
        lambda c: grid.col_origin + grid.factor * c,
    )
    np.testing.assert_allclose(measured, expected, atol=0.05)


@pytest.mark.parametrize("size", [(600, 480), (601, 483)])
def test_the_geometry_maps_a_reduced_input_to_the_full_size_image(tmp_path, size):
    """The square seen by a half-size model, mapped back through each path's Geometry, lands where it
    is on the stored image, whether the model read the reduced level or the resampled full image."""
    path = pattern_file(tmp_path, View.R_CC, size)
    full = read_dicom(path)
    reduced = read_dicom(path, decoding=Decoding(level=1))
    config = GMICConfig.at_scale(0.5)
    expected = square_centroid(full.pixels, lambda r: r, lambda c: c)
    for image in (full, reduced):
        prepared = preprocess(image.pixels, "R", False, config, grid=image.grid)
        geometry = prepared.geometry
        assert geometry.stored_shape == size
        standardised = prepared.tensor[0].numpy()
        plateau_level = np.median(standardised[standardised > standardised.min()])
        scale = (SQUARE - PLATEAU) / (standardised.max() - plateau_level)
        measured = square_centroid(
            PLATEAU + (standardised - plateau_level) * scale,
            geometry.model_rows_to_stored,
            geometry.model_cols_to_stored,
        )
        np.testing.assert_allclose(measured, expected, atol=0.5)


def test_what_has_no_such_level_is_decoded_full_size(tmp_path):
    native = pattern_file(tmp_path, View.L_CC, (600, 480), ExplicitVRLittleEndian)
    jpeg2000 = pattern_file(tmp_path, View.R_CC, (600, 480))
    for path, level in ((native, 1), (jpeg2000, 6)):  # OpenJPEG's default is 5 decomposition levels
        image = read_dicom(path, decoding=Decoding(level=level))
        assert image.grid is None
        np.testing.assert_array_equal(image.pixels, read_dicom(path).pixels)


def test_a_half_size_model_asked_to_reads_level_one_and_says_so_in_its_key():
    cpu = torch.device("cpu")
    assert decoding_for(GMICConfig.at_scale(0.5), cpu, True) == Decoding(level=1)
    assert decoding_for(GMICConfig.at_scale(0.25), torch.device("cuda"), True) == Decoding(level=2, cuda=True)
    assert decoding_for(GMICConfig.at_scale(0.5), cpu, False) == FULL_SIZE_CPU  # not asked for
    assert decoding_for(GMICConfig(), cpu, True) == FULL_SIZE_CPU
    assert decoding_for(GMICConfig.at_scale(0.375), cpu, True) == FULL_SIZE_CPU  # not 1/2^k: resampled
    identity = ModelIdentity(("m",), ("abc",), (0.01,), "fp32", "CPU", 0)
    assert identity.key == "abc|t0.01|fp32|tta0"  # full-size models keep their keys
    half = dataclasses.replace(identity, decoding=Decoding(level=1).key)
    assert half.key == "abc|t0.01|fp32|tta0|j2k-level1"
    assert Decoding(level=1, cuda=True).key == half.decoding  # where it ran does not change scores


@pytest.mark.slow
def test_the_demo_model_scores_a_reduced_level_within_the_tolerance(tmp_path):
    """The demo model (input scale 0.5) on a synthetic JPEG 2000 exam, read at level 1 and read full
    size and resampled: every view's and breast's probabilities within REDUCED_LEVEL_TOLERANCE."""
    synthetic.write_dataset(tmp_path, exams=1, seed=0, size=synthetic.FULL_SIZE, workers=1)
    exam = find_exams([tmp_path]).exams[0]
    checkpoint = load_checkpoint(DEMO_MODEL)
    assert Predictor([checkpoint], device="cpu").decoding == FULL_SIZE_CPU  # the default
    predictor = Predictor([checkpoint], device="cpu", reduced_levels=True)
    assert predictor.decoding == Decoding(level=1)
    assert predictor.identity.key.endswith("|j2k-level1")
    results = []
    for decoding in (predictor.decoding, FULL_SIZE_CPU):
        views = load_standard_views(exam, decoding)
        assert all((m.grid is not None) == bool(decoding.level) for m in views.values())
        images = {view: ViewImage.of(m, exam.horizontal_flip) for view, m in views.items()}
        results.append(predictor.predict(exam.exam_id, images, keep_patches=False))
    assert largest_difference(*results) <= REDUCED_LEVEL_TOLERANCE
