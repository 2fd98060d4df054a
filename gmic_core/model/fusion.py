"""Inference-time folding of batch norms into the convolutions that feed them.

A batch norm in eval mode is an affine map per channel; when it directly follows a convolution it
can be folded into that convolution's weights and bias, which saves one pass over the activations.
The pre-activation batch norms of the global network follow a residual sum, not a convolution, and
stay as they are.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

# (convolution, batch norm) attribute pairs, per module type, where the norm consumes the conv's output.
FOLDABLE_PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "PreActivationBlock": (("conv1", "norm2"),),
    "BasicBlock": (("conv1", "norm1"), ("conv2", "norm2")),
    "BottleneckBlock": (("conv1", "norm1"), ("conv2", "norm2"), ("conv3", "norm3")),
    "Projection": (("conv", "norm"),),
    "LocalNetwork": (("stem_conv", "stem_norm"),),
}


@torch.no_grad()
def fold_batch_norms(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with every conv -> batch-norm pair folded into the conv."""
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        for conv_name, norm_name in FOLDABLE_PAIRS.get(type(module).__name__, ()):
            conv: nn.Conv2d = getattr(module, conv_name)
            norm: nn.BatchNorm2d = getattr(module, norm_name)
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            fused = nn.Conv2d(
                conv.in_channels,
                conv.out_channels,
                conv.kernel_size,
                stride=conv.stride,
                padding=conv.padding,
                bias=True,
            ).to(conv.weight.device, conv.weight.dtype)
            fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
            bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
            fused.bias.copy_((bias - norm.running_mean) * scale + norm.bias)
            setattr(module, conv_name, fused)
            setattr(module, norm_name, nn.Identity())
    return folded
