"""Shared fixtures. What the project may carry is under tests/fixtures (provenance and licences in its
README). The rest of the published GMIC reference material (the sample exam, whose images are AGPL,
and the real-world DICOM samples, see tests/fixtures/README.md) stays outside the repository: tests that
need it skip, naming where to get it, unless GMIC_REQUIRE_REFERENCE=1 (as in .ci/run) makes them fail."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"
WHERE = (
    "the GMIC reference material (sample_exam/ with its expected_seed2_t003.* outputs, and dicom/; "
    "see tests/fixtures/README.md for where each comes from): put it at ../shared/reference or set "
    "GMIC_REFERENCE_DIR"
)


def _missing(what: str) -> None:
    message = f"needs {what}, not found; {WHERE}"
    if os.environ.get("GMIC_REQUIRE_REFERENCE") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _reference_dir() -> Path:
    return Path(os.environ.get("GMIC_REFERENCE_DIR", REPO_ROOT.parent / "shared" / "reference")).resolve()


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The outside reference material with the published sample exam."""
    path = _reference_dir()
    if not (path / "sample_exam" / "exam.json").is_file():
        _missing(f"the published sample exam at {path / 'sample_exam'}")
    return path


@pytest.fixture(scope="session")
def dicom_samples() -> Path:
    """The real-world DICOM test files (OpenREM, D. Clunie, NEMA WG-04) that the project does not carry."""
    path = _reference_dir() / "dicom"
    if not (path / "MG1_J2KI").is_file():
        _missing(f"the real-world DICOM samples at {path}")
    return path


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    """A real PACS for the DICOM node tests: an Orthanc of ``.ci/orthanc``, stopped by its PID."""
    from tests.app.node_servers import Orthanc

    server = Orthanc(tmp_path_factory.mktemp("orthanc"))
    server.start()
    yield server
    server.stop()
