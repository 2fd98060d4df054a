"""Reading and writing GMIC weights: the five published checkpoints and this project's own format.

Published checkpoints (``sample_model_<i>.p``) are bare state dicts with the published parameter
names; :func:`published_to_project_names` renames them onto this package's modules, after which
loading is strict. This project's checkpoints are a dict carrying the GMICConfig (top-t included),
a model card and optional training metadata beside the weights. Files are always read with
``weights_only=True``: no arbitrary object is ever unpickled.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from gmic_core.config import GMICConfig
from gmic_core.errors import CheckpointError
from gmic_core.model.gmic import GMIC

FORMAT_NAME = "gmic-reader-checkpoint"
FORMAT_VERSION = 1

# SPEC.md section 1.3: the top-t fraction each published sample model was trained with.
PUBLISHED_TOP_T = {1: 0.02, 2: 0.03, 3: 0.03, 4: 0.05, 5: 0.10}
_PUBLISHED_FILE = re.compile(r"sample_model_([1-5])\.p$")

# Published name -> project name, applied in order; the first match wins (SPEC.md section 1.2).
_PUBLISHED_RENAMES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"^ds_net\.first_conv\.", "global_network.stem_conv."),
        (r"^ds_net\.layer_list\.(\d+)\.(\d+)\.bn(\d)\.", r"global_network.stages.\1.\2.norm\3."),
        (r"^ds_net\.layer_list\.(\d+)\.(\d+)\.conv(\d)\.", r"global_network.stages.\1.\2.conv\3."),
        (r"^ds_net\.layer_list\.(\d+)\.(\d+)\.downsample\.0\.", r"global_network.stages.\1.\2.projection."),
        (r"^ds_net\.final_bn\.", "global_network.final_norm."),
        (r"^left_postprocess_net\.gn_conv_last\.", "saliency_head.conv."),
        (r"^dn_resnet\.conv1\.", "local_network.stem_conv."),
        (r"^dn_resnet\.bn1\.", "local_network.stem_norm."),
        (r"^dn_resnet\.layer(\d)\.(\d+)\.downsample\.0\.", r"local_network.stages.<\1>.\2.projection.conv."),
        (r"^dn_resnet\.layer(\d)\.(\d+)\.downsample\.1\.", r"local_network.stages.<\1>.\2.projection.norm."),
        (r"^dn_resnet\.layer(\d)\.(\d+)\.bn(\d)\.", r"local_network.stages.<\1>.\2.norm\3."),
        (r"^dn_resnet\.layer(\d)\.(\d+)\.conv(\d)\.", r"local_network.stages.<\1>.\2.conv\3."),
        (r"^mil_attn_V\.", "attention.tanh_branch."),
        (r"^mil_attn_U\.", "attention.sigmoid_gate."),
        (r"^mil_attn_w\.", "attention.score."),
        (r"^classifier_linear\.", "local_classifier."),
        (r"^fusion_dnn\.", "fusion_head.linear."),
    )
)
_ONE_BASED_STAGE = re.compile(r"<(\d)>")


@dataclass(frozen=True)
class ModelCard:
    """What a checkpoint is, what it was trained on and what it may be used for."""

    name: str
    version: str
    training_data: str
    intended_use: str
    license: str = ""
    performance: dict[str, float] = field(default_factory=dict)
    limitations: str = ""


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A model ready for inference (eval mode, on the CPU) and what is known about it."""

    model: GMIC
    card: ModelCard
    sha256: str
    path: Path
    published: bool
    training: dict[str, Any] | None = None

    @property
    def config(self) -> GMICConfig:
        return self.model.config


def published_to_project_names(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a published GMIC state dict's keys onto this package's module names.

    Keys that match no rule are kept as they are, so that strict loading reports them as unexpected.
    The published local network counts its stages ``layer1..layer4``; ours are ``stages.0..3``.
    """
    renamed = {}
    for name, tensor in state_dict.items():
        for pattern, replacement in _PUBLISHED_RENAMES:
            new_name, count = pattern.subn(replacement, name)
            if count:
                name = _ONE_BASED_STAGE.sub(lambda m: str(int(m.group(1)) - 1), new_name)
                break
        renamed[name] = tensor
    return renamed


def published_top_t(path: Path) -> float | None:
    """The top-t of a published sample model, recognised by its file name ``sample_model_<i>.p``."""
    match = _PUBLISHED_FILE.search(path.name)
    return PUBLISHED_TOP_T[int(match.group(1))] if match else None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_checkpoint(path: str | os.PathLike[str], top_t: float | None = None) -> LoadedCheckpoint:
    """Load a published GMIC checkpoint or one of this project's, strictly.

    ``top_t`` overrides the checkpoint's pooling fraction; a published checkpoint carries none, so it
    comes from ``top_t`` or, for a file named ``sample_model_<i>.p``, from the published index.
    Raises :class:`CheckpointError` naming the problem for anything that is not a matching model.
    """
    path = Path(path)
    raw = _read(path)
    if isinstance(raw, dict) and raw.get("format") == FORMAT_NAME:
        return _load_project(path, raw, top_t)
    if isinstance(raw, dict) and raw and all(isinstance(key, str) for key in raw):
        return _load_published(path, raw, top_t)
    raise CheckpointError(f"{path}: not a GMIC checkpoint (expected a state dict of named tensors)")


def _read(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path}: holds objects other than tensors and plain values, refused for safety ({error})"
        ) from error
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, TypeError, AttributeError) as error:
        raise CheckpointError(
            f"{path}: not a readable PyTorch file, truncated or corrupt ({error})"
        ) from error


def _load_published(path: Path, state: dict[str, Any], top_t: float | None) -> LoadedCheckpoint:
    top_t = top_t if top_t is not None else published_top_t(path)
    if top_t is None:
        raise CheckpointError(
            f"{path}: a published GMIC checkpoint carries no top-t; give it explicitly "
            f"(the published sample models 1-5 use {', '.join(map(str, PUBLISHED_TOP_T.values()))})"
        )
    model = GMIC(GMICConfig(top_t=top_t))
    _load_strict(path, model, published_to_project_names(state))
    card = ModelCard(
        name=f"GMIC-ResNet-18 ({path.name})",
        version="published",
        training_data="NYU Breast Cancer Screening Dataset (Shen et al. 2021), as published",
        intended_use="research; see the GMIC publication",
    )
    return LoadedCheckpoint(model.eval(), card, file_sha256(path), path, published=True)


def _load_project(path: Path, raw: dict[str, Any], top_t: float | None) -> LoadedCheckpoint:
    if raw.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {raw.get('format_version')} is not supported"
        )
    try:
        config = GMICConfig.from_dict(raw["config"])
        card = ModelCard(**raw["model_card"])
        state = raw["state_dict"]
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: malformed checkpoint header ({error})") from error
    if top_t is not None:
        config = config.replace(top_t=top_t)
    model = GMIC(config)
    _load_strict(path, model, state)
    return LoadedCheckpoint(
        model.eval(), card, file_sha256(path), path, published=False, training=raw.get("training")
    )


def _load_strict(path: Path, model: GMIC, state: dict[str, Any]) -> None:
    expected = model.state_dict()
    missing = [name for name in expected if name not in state]
    unexpected = [name for name in state if name not in expected]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} parameter(s): {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} parameter(s): {_names(unexpected)}")
    for name, tensor in state.items():
        if name in expected:
            if not isinstance(tensor, torch.Tensor):
                problems.append(f"{name} is not a tensor")
            elif tensor.shape != expected[name].shape:
                problems.append(
                    f"{name} has shape {list(tensor.shape)}, the model needs {list(expected[name].shape)}"
                )
    if problems:
        raise CheckpointError(
            f"{path}: does not match {model.config.local_backbone} GMIC: " + "; ".join(problems)
        )
    model.load_state_dict(state, strict=True)


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def save_checkpoint(
    path: str | os.PathLike[str],
    model: GMIC,
    card: ModelCard,
    training: dict[str, Any] | None = None,
    half_precision: bool = False,
) -> Path:
    """Write the model in this project's format, atomically (a crash never leaves half a file)."""
    path = Path(path)
    state = {
        name: tensor.detach().cpu().half()
        if half_precision and tensor.is_floating_point()
        else tensor.detach().cpu()
        for name, tensor in model.state_dict().items()
    }
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "model_card": asdict(card),
        "training": training,
        "state_dict": state,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.name, suffix=".tmp", delete=False) as tmp:
        torch.save(payload, tmp)
    os.replace(tmp.name, path)
    return path


def save_release(
    path: str | os.PathLike[str], loaded: LoadedCheckpoint, card: ModelCard | None = None
) -> Path:
    """A checkpoint to hand out: half-precision weights, and the training metadata without the
    optimiser state that only resuming needs (it triples the file)."""
    training = {key: value for key, value in (loaded.training or {}).items() if key != "optimiser"}
    return save_checkpoint(path, loaded.model, card or loaded.card, training=training, half_precision=True)
