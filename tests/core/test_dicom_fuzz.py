"""Randomly corrupted copies of valid files (bytes flipped, truncated, attributes deleted) must give a
typed DicomError or a valid image: no other exception, no hang."""

from __future__ import annotations

import io
import random
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from gmic_core.errors import DicomError
from gmic_core.imaging import Mammogram, read_dicom, read_dicom_header
from gmic_core.imaging.views import View
from tests.core import dicom_factory as factory

CASES = 2400
SECONDS_PER_CASE = 10  # a hang fails the test instead of blocking it
HEADER_BYTES = 2048  # half of the flips land in the header, where they do the most harm
REFERENCE_FILES = (
    "MG-Im-GE_Seno_1_ForPresentation.dcm",
    "MG-Im-GE-SenDS-scaled.dcm",
    "MG_Explicit_Little.dcm",
    "MG-Im-Hologic-PropProj.dcm",
    "MG-RDSR-Giotto-DBT.dcm",
    "DX-Im-SiemensMultix.dcm",
)
SMALL = (64, 52)


class Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise Hang


def _valid_files(dicom_samples: Path) -> list[bytes]:
    files = [(dicom_samples / name).read_bytes() for name in REFERENCE_FILES]
    for transfer_syntax in (
        ExplicitVRLittleEndian,
        DeflatedExplicitVRLittleEndian,
        RLELossless,
        JPEGLosslessSV1,
        JPEGLSLossless,
        JPEG2000Lossless,
    ):
        buffer = io.BytesIO()
        factory.encode(factory.dataset(View.R_MLO, size=SMALL), transfer_syntax).save_as(
            buffer, enforce_file_format=True
        )
        files.append(buffer.getvalue())
    return files


def _flip(rng: random.Random, data: bytes) -> bytes:
    corrupted = bytearray(data)
    for _ in range(rng.randint(1, 12)):
        limit = min(len(data), HEADER_BYTES) if rng.random() < 0.5 else len(data)
        corrupted[rng.randrange(limit)] = rng.randrange(256)
    return bytes(corrupted)


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))]


def _delete(rng: random.Random, data: bytes) -> bytes | None:
    dataset = pydicom.dcmread(io.BytesIO(data), force=True)
    groups = [dataset, dataset.file_meta]
    group = rng.choice([group for group in groups if len(group)])
    for tag in rng.sample(list(group.keys()), k=min(len(group), rng.randint(1, 3))):
        del group[tag]
    buffer = io.BytesIO()
    try:
        dataset.save_as(buffer, enforce_file_format=False)
    except (ValueError, AttributeError, TypeError, KeyError):
        return None  # pydicom cannot write this combination: no case
    return buffer.getvalue()


def _cases(files: list[bytes], seed: int) -> Iterator[tuple[str, bytes]]:
    rng = random.Random(seed)
    made = 0
    while made < CASES:
        operation = rng.choice((_flip, _truncate, _delete))
        corrupted = operation(rng, rng.choice(files))
        if corrupted is not None:
            made += 1
            yield operation.__name__, corrupted


@factory.READS_DAMAGED_FILES
def test_corrupted_files_give_typed_errors_or_valid_images(tmp_path: Path, dicom_samples: Path) -> None:
    path = tmp_path / "case"
    outcomes: Counter[str] = Counter()
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for number, (operation, data) in enumerate(_cases(_valid_files(dicom_samples), seed=20240611)):
            path.write_bytes(data)
            signal.alarm(SECONDS_PER_CASE)
            try:
                header = _outcome(read_dicom_header, path)
                result = _outcome(read_dicom, path)
            except Hang:
                pytest.fail(f"case {number} ({operation}) did not finish in {SECONDS_PER_CASE} s")
            finally:
                signal.alarm(0)
            if isinstance(result, Mammogram):
                assert not isinstance(header, DicomError), f"case {number}: the header read refused it"
                assert result.pixels.ndim == 2
                assert result.pixels.shape == result.ref.shape
                assert np.isfinite(result.voi.apply(result.pixels[:2, :2])).all()
            outcomes[f"{operation}:{type(result).__name__}"] += 1
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert sum(outcomes.values()) >= 2000
    assert any(key.endswith(":Mammogram") for key in outcomes)


def _outcome(reader, path: Path) -> object:
    """The reader's result, or its typed error; any other exception propagates and fails the test."""
    try:
        return reader(path)
    except DicomError as error:
        return error
