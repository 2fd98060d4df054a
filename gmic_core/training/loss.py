"""The training loss of paper eq. 13."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gmic_core.model import GMICOutput


@dataclass(frozen=True)
class LossTerms:
    total: torch.Tensor
    global_bce: torch.Tensor
    local_bce: torch.Tensor
    fusion_bce: torch.Tensor
    saliency_l1: torch.Tensor


def gmic_loss(output: GMICOutput, labels: torch.Tensor, beta: float) -> LossTerms:
    """Paper eq. 13, averaged over the batch: for benign and malignant, the binary cross-entropy of
    y_global, y_local and y_fusion against the image labels ``[N, 2]``, plus ``beta`` times the L1
    norm of the (sigmoid) saliency map."""

    def bce(prediction: torch.Tensor) -> torch.Tensor:
        # summed over the two classes, averaged over the batch
        return F.binary_cross_entropy(prediction.float(), labels, reduction="sum") / labels.shape[0]

    global_bce, local_bce, fusion_bce = bce(output.y_global), bce(output.y_local), bce(output.y_fusion)
    saliency_l1 = output.saliency.float().abs().sum() / labels.shape[0]
    total = global_bce + local_bce + fusion_bce + beta * saliency_l1
    return LossTerms(total, global_bce, local_bce, fusion_bce, saliency_l1)
