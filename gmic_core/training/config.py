"""Training configuration: every hyperparameter of a run, read from a TOML file.

The paper's random search (section 3.2) drew the learning rate from 10^[-5.5, -4] (log-uniform),
beta from 10^[-5.5, -3.5] and top-t from {1, 2, 3, 5, 10, 20} %; `configs/demo/` holds the runs that made the demo model.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gmic_core.config import GMICConfig
from gmic_core.errors import UsageError

LEARNING_RATE_RANGE = (10**-5.5, 10**-4)  # paper section 3.2
BETA_RANGE = (10**-5.5, 10**-3.5)
TOP_T_CHOICES = (0.01, 0.02, 0.03, 0.05, 0.10, 0.20)


@dataclass(frozen=True)
class ModelSettings:
    local_backbone: str = "resnet18"
    top_t: float = 0.03
    input_scale: float = 1.0  # 0.5 trains at half resolution (1472 x 960 window, 128 x 128 patches)
    init_from: str = ""  # a checkpoint (published or ours) to fine-tune from
    init_parts: tuple[
        str, ...
    ] = ()  # "global" (global network + saliency head), "local" (local network + attention), "fusion"

    def gmic_config(self) -> GMICConfig:
        return GMICConfig.at_scale(self.input_scale, top_t=self.top_t, local_backbone=self.local_backbone)


@dataclass(frozen=True)
class OptimisationSettings:
    epochs: int = 30
    batch_size: int = 4
    learning_rate: float = 3e-5
    beta: float = 3e-5  # weight of the saliency L1 term of eq. 13
    weight_decay: float = 0.0
    checkpoint_every: int = 50  # steps between resumable checkpoints within an epoch


@dataclass(frozen=True)
class AugmentationSettings:
    window_noise: bool = True  # SPEC.md 6.1
    max_location_noise: int = 100
    max_size_noise: int = 100
    rotate_patches: bool = True  # paper section 3.2: 0/90/180/270 degrees, training only


@dataclass(frozen=True)
class CardSettings:
    name: str = "GMIC"
    version: str = "0.1"
    training_data: str = ""
    intended_use: str = "research"
    license: str = ""
    limitations: str = ""


@dataclass(frozen=True)
class TrainingConfig:
    manifest: tuple[Path, ...]  # one manifest, or several whose exams are combined (TOML: a list)
    output_dir: Path
    cache_dir: Path | None = None
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    model: ModelSettings = field(default_factory=ModelSettings)
    optimisation: OptimisationSettings = field(default_factory=OptimisationSettings)
    augmentation: AugmentationSettings = field(default_factory=AugmentationSettings)
    card: CardSettings = field(default_factory=CardSettings)

    @classmethod
    def from_toml(cls, path: str | Path) -> TrainingConfig:
        path = Path(path)
        with path.open("rb") as stream:
            values = tomllib.load(stream)
        return cls.from_dict(values, base=path.parent)

    @classmethod
    def from_dict(cls, values: dict[str, Any], base: Path = Path(".")) -> TrainingConfig:
        sections = {
            "model": ModelSettings,
            "optimisation": OptimisationSettings,
            "augmentation": AugmentationSettings,
            "card": CardSettings,
        }
        values = dict(values)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise UsageError(f"unknown training settings: {sorted(unknown)}")
        for name, section in sections.items():
            given = values.get(name, {})
            allowed = {f.name for f in dataclasses.fields(section)}
            if set(given) - allowed:
                raise UsageError(f"unknown [{name}] settings: {sorted(set(given) - allowed)}")
            if "init_parts" in given:
                given = {**given, "init_parts": tuple(given["init_parts"])}
            if given.get("init_from"):
                given = {**given, "init_from": str(_relative_to(base, given["init_from"]))}
            values[name] = section(**given)
        manifests = values.get("manifest")
        if not manifests:
            raise UsageError("a training config names its manifest (or a list of them)")
        values["manifest"] = tuple(
            _relative_to(base, name) for name in ([manifests] if isinstance(manifests, str) else manifests)
        )
        for name in ("output_dir", "cache_dir"):
            if values.get(name):
                values[name] = _relative_to(base, values[name])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def _relative_to(base: Path, name: str | Path) -> Path:
    """Paths in a config file are relative to its folder."""
    candidate = Path(name)
    return candidate if candidate.is_absolute() else base / candidate


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value
