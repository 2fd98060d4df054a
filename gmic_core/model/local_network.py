"""The local network f_l: a torchvision-layout ResNet-18/34/50 applied to the ROI patches
(paper section 2.2, SPEC.md section 4.1)."""

from __future__ import annotations

import torch
from torch import nn

from gmic_core.config import LOCAL_STAGE_DEPTHS, GMICConfig

LOCAL_STAGE_WIDTHS = (64, 128, 256, 512)


class Projection(nn.Module):
    """Shortcut of a block that changes shape: 1x1 conv then batch norm, on the raw block input."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


def _projection(in_channels: int, out_channels: int, stride: int) -> Projection | None:
    """The shortcut needs a projection exactly when the block changes resolution or width."""
    return (
        Projection(in_channels, out_channels, stride) if stride != 1 or in_channels != out_channels else None
    )


class BasicBlock(nn.Module):
    """ResNet v1 basic block (ResNet-18/34): ``relu(bn(conv(relu(bn(conv_s(x))))) + shortcut)``."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(width)
        self.projection = _projection(in_channels, width * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.projection is None else self.projection(x)
        out = self.norm1(self.conv1(x)).relu_()
        return (self.norm2(self.conv2(out)) + shortcut).relu_()


class BottleneckBlock(nn.Module):
    """ResNet v1.5 bottleneck block (ResNet-50): 1x1 reduce, 3x3 (strided), 1x1 expand by 4."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.norm1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.norm3 = nn.BatchNorm2d(out_channels)
        self.projection = _projection(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.projection is None else self.projection(x)
        out = self.norm1(self.conv1(x)).relu_()
        out = self.norm2(self.conv2(out)).relu_()
        return (self.norm3(self.conv3(out)) + shortcut).relu_()


class LocalNetwork(nn.Module):
    """ResNet over single-channel patches: ``[B, 1, h_c, w_c] -> h [B, L]``.

    The grey patch is repeated to three identical channels (the layout of ImageNet ResNets), and the
    features are the spatial mean of the last stage; there is no fc layer.
    """

    def __init__(self, config: GMICConfig) -> None:
        super().__init__()
        block = BottleneckBlock if config.local_backbone == "resnet50" else BasicBlock
        self.stem_conv = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.stem_norm = nn.BatchNorm2d(64)
        self.stem_pool = nn.MaxPool2d(3, stride=2, padding=1)
        stages = []
        in_channels = 64
        for index, (depth, width) in enumerate(
            zip(LOCAL_STAGE_DEPTHS[config.local_backbone], LOCAL_STAGE_WIDTHS, strict=True)
        ):
            blocks = []
            for block_index in range(depth):
                stride = 2 if index > 0 and block_index == 0 else 1
                blocks.append(block(in_channels, width, stride))
                in_channels = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        if in_channels != config.local_feature_size:
            raise AssertionError("local feature size does not match the backbone")

    def forward_features(self, patches: torch.Tensor) -> torch.Tensor:
        """``[B, 1, h_c, w_c] -> [B, L, h_c / 32, w_c / 32]``: the last stage's feature map."""
        x = patches.expand(-1, 3, -1, -1)
        x = self.stem_pool(self.stem_norm(self.stem_conv(x)).relu_())
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.forward_features(patches).mean(dim=2).mean(dim=2)  # rows, then columns: SPEC.md 4.1
