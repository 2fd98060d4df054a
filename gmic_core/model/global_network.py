"""The global network f_g: GMIC's memory-light "ResNet-22" (SPEC.md section 2)."""

from __future__ import annotations

import torch
from torch import nn

from gmic_core.config import GMICConfig


class PreActivationBlock(nn.Module):
    """Pre-activation residual block of the global network.

    ``[N, C_in, H, W] -> [N, C_out, H / stride, W / stride]``. With a projection, the shortcut is a
    1x1 conv of the *activated* input; without, it is the raw input. Nothing follows the addition.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, project: bool) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.projection = (
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False) if project else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.norm1(x).relu_()
        shortcut = x if self.projection is None else self.projection(activated)
        out = self.norm2(self.conv1(activated)).relu_()
        return self.conv2(out).add_(shortcut)


class GlobalNetwork(nn.Module):
    """ResNet-22 over the whole image: ``[N, 1, H, W] -> h_g [N, C_g, H / 64, W / 64]``.

    Stem: 7x7 conv (stride 2) straight into a 3x3 max-pool (stride 2, no padding), with no norm or
    activation between them. Five stages of two pre-activation blocks; block 0 of every stage, stage
    0 included, has a learned projection. The output passes a final batch norm and ReLU.
    """

    def __init__(self, config: GMICConfig) -> None:
        super().__init__()
        widths = config.global_stage_widths
        self.stem_conv = nn.Conv2d(1, widths[0], 7, stride=2, padding=3, bias=False)
        self.stem_pool = nn.MaxPool2d(3, stride=2, padding=0)
        stages = []
        in_channels = widths[0]
        for index, width in enumerate(widths):
            stride = 1 if index == 0 else 2
            stages.append(
                nn.Sequential(
                    PreActivationBlock(in_channels, width, stride, project=True),
                    PreActivationBlock(width, width, 1, project=False),
                )
            )
            in_channels = width
        self.stages = nn.ModuleList(stages)
        self.final_norm = nn.BatchNorm2d(in_channels)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.stem_pool(self.stem_conv(image))
        for stage in self.stages:
            x = stage(x)
        return torch.relu(self.final_norm(x))
