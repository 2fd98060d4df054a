"""Shared fixtures: the reference material of the published GMIC lives outside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _reference_dir() -> Path:
    return Path(os.environ.get("GMIC_REFERENCE_DIR", REPO_ROOT.parent / "shared" / "reference")).resolve()


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    path = _reference_dir()
    if not (path / "SPEC.md").is_file():
        pytest.fail(f"GMIC reference material not found at {path}; set GMIC_REFERENCE_DIR")
    return path


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    """A real PACS for the DICOM node tests: an Orthanc of ``.ci/orthanc``, stopped by its PID."""
    from tests.app.node_servers import Orthanc

    server = Orthanc(tmp_path_factory.mktemp("orthanc"))
    server.start()
    yield server
    server.stop()
