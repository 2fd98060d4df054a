"""Helpers for tests that use the published GMIC reference material."""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gmic_core.config import GMICConfig
from gmic_core.model import GMIC, published_to_project_names


@cache
def _make_weights_module(reference_dir: Path):
    spec = importlib.util.spec_from_file_location("make_weights", reference_dir / "make_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def published_state_dict(reference_dir: Path, seed: int) -> dict[str, torch.Tensor]:
    """The seeded checkpoint of ``make_weights.py``, with the published parameter names."""
    return _make_weights_module(reference_dir).make_state_dict(seed)


def seeded_model(reference_dir: Path, seed: int, top_t: float) -> GMIC:
    model = GMIC(GMICConfig(top_t=top_t))
    model.load_state_dict(published_to_project_names(published_state_dict(reference_dir, seed)), strict=True)
    return model.eval()


def sample_exam(reference_dir: Path) -> dict:
    return json.loads((reference_dir / "sample_exam" / "exam.json").read_text())


def read_png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))
