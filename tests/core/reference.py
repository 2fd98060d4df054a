"""Helpers for tests that use the published GMIC reference material and the parity fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from gmic_core.config import GMICConfig
from gmic_core.model import GMIC, published_to_project_names
from tests.core.published_weights import published_state_dict


def seeded_model(seed: int, top_t: float) -> GMIC:
    model = GMIC(GMICConfig(top_t=top_t))
    model.load_state_dict(published_to_project_names(published_state_dict(seed)), strict=True)
    return model.eval()


def sample_exam(reference_dir: Path) -> dict:
    return json.loads((reference_dir / "sample_exam" / "exam.json").read_text())


def read_png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))
