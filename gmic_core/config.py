"""Every architecture number of GMIC in one place.

Defaults are the published GMIC-ResNet-18 (SPEC.md section 0, paper sections 2-3).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from gmic_core.errors import UsageError

LocalBackbone = Literal["resnet18", "resnet34", "resnet50"]

# Paper section 2.2: ResNet-18/34 end in 512 channels, ResNet-50 (bottleneck blocks) in 2048.
LOCAL_FEATURE_SIZES: dict[str, int] = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}
LOCAL_STAGE_DEPTHS: dict[str, tuple[int, int, int, int]] = {
    "resnet18": (2, 2, 2, 2),
    "resnet34": (3, 4, 6, 3),
    "resnet50": (3, 4, 6, 3),
}
# The global network ("ResNet-22"): five stages of two blocks each, width doubling from stage 1 on.
GLOBAL_NUM_STAGES = 5


@dataclass(frozen=True)
class GMICConfig:
    """Architecture of one GMIC model.

    Sizes are (rows, columns) in pixels of the model input frame.
    """

    input_height: int = 2944  # SPEC.md section 0
    input_width: int = 1920
    saliency_height: int = 46  # SPEC.md section 2: 2944 / 64
    saliency_width: int = 30  # 1920 / 64
    num_rois: int = 6  # K, paper section 2.3
    crop_height: int = 256  # paper section 2.3
    crop_width: int = 256
    top_t: float = 0.03  # fraction of saliency cells pooled into y_global, paper eq. 7
    global_feature_size: int = 256  # channels of h_g, SPEC.md section 2
    local_backbone: LocalBackbone = "resnet18"
    attention_hidden_size: int = 128  # M, paper eq. 8-10
    num_classes: int = 2  # 0 benign, 1 malignant
    input_scale: float = 1.0  # stored pixels are resampled by this factor before the window is placed

    def __post_init__(self) -> None:
        if self.local_backbone not in LOCAL_FEATURE_SIZES:
            raise UsageError(
                f"local_backbone must be one of {sorted(LOCAL_FEATURE_SIZES)}, got {self.local_backbone!r}"
            )
        if not 0.0 < self.top_t <= 1.0:
            raise UsageError(f"top_t is a fraction in (0, 1], got {self.top_t}")
        if self.global_feature_size % 2 ** (GLOBAL_NUM_STAGES - 1):
            raise UsageError("global_feature_size must be divisible by 16")
        expected = (
            _global_output_size(self.input_height),
            _global_output_size(self.input_width),
        )
        if expected != (self.saliency_height, self.saliency_width):
            raise UsageError(
                f"an input of {self.input_height} x {self.input_width} gives a saliency grid of "
                f"{expected[0]} x {expected[1]}, not {self.saliency_height} x {self.saliency_width}"
            )
        if self.input_height % 2 or self.input_width % 2:
            raise UsageError("the input window must have even height and width")
        if not 0.0 < self.input_scale <= 1.0:
            raise UsageError(f"input_scale must be in (0, 1], got {self.input_scale}")

    @property
    def local_feature_size(self) -> int:
        """L: the width of each patch's feature vector h_k."""
        return LOCAL_FEATURE_SIZES[self.local_backbone]

    @property
    def global_stage_widths(self) -> tuple[int, ...]:
        """Output channels of the global network's stages 0-4 (16, 32, 64, 128, 256 published)."""
        top = self.global_feature_size
        return tuple(top // 2 ** (GLOBAL_NUM_STAGES - 1 - s) for s in range(GLOBAL_NUM_STAGES))

    @property
    def top_k_cells(self) -> int:
        """Number of saliency cells averaged by top-t pooling: SPEC.md section 3.2."""
        return top_k_cells(self.saliency_height * self.saliency_width, self.top_t)

    @classmethod
    def at_scale(cls, scale: float, **changes: Any) -> GMICConfig:
        """The published architecture on inputs resampled by ``scale``: window and crop sizes scaled,
        the saliency grid following from the window (0.5 gives 1472 x 960, a 23 x 15 grid and
        128 x 128 patches)."""
        base = cls()
        height, width = round(base.input_height * scale), round(base.input_width * scale)
        return cls(
            input_height=height,
            input_width=width,
            saliency_height=_global_output_size(height),
            saliency_width=_global_output_size(width),
            crop_height=round(base.crop_height * scale),
            crop_width=round(base.crop_width * scale),
            input_scale=scale,
            **changes,
        )

    def replace(self, **changes: Any) -> GMICConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GMICConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise UsageError(f"unknown GMICConfig fields: {sorted(unknown)}")
        return cls(**values)


def top_k_cells(cells: int, fraction: float) -> int:
    """k of top-t pooling over ``cells`` map cells: round(cells * t), at least one (SPEC.md 3.2)."""
    return max(1, round(cells * fraction))


def _global_output_size(size: int) -> int:
    """Spatial size after the global network: SPEC.md section 2 table."""
    size = (size + 2 * 3 - 7) // 2 + 1  # stem conv 7x7, stride 2, padding 3
    size = (size - 3) // 2 + 1  # stem max-pool 3x3, stride 2, no padding
    for _ in range(GLOBAL_NUM_STAGES - 1):
        size = (size + 2 - 3) // 2 + 1  # first 3x3 conv of stages 1-4, stride 2, padding 1
    return size
