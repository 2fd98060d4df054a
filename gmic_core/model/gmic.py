"""GMIC: the globally-aware multiple instance classifier (Shen et al., Medical Image Analysis 2021)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gmic_core.config import GMICConfig
from gmic_core.model.global_network import GlobalNetwork
from gmic_core.model.heads import (
    FusionHead,
    GatedAttentionPooling,
    PatchCropper,
    RoiSelector,
    SaliencyHead,
    TopTPooling,
)
from gmic_core.model.local_network import LocalNetwork


@dataclass(frozen=True)
class GMICOutput:
    """Everything one forward pass produces, for a batch of N images. Class 0 benign, 1 malignant.

    saliency: ``[N, 2, h, w]`` sigmoid saliency maps A.
    y_global: ``[N, 2]`` top-t pooled saliency (paper eq. 7).
    roi_locations: ``[N, K, 2]`` int64 upper-left (row, column) of each patch in the model input.
    patches: ``[N, K, h_c, w_c]`` the crops the local network saw.
    attention: ``[N, K]`` gated-attention weights, summing to 1 per image.
    y_local: ``[N, 2]`` the local network's prediction from the attention-pooled features.
    y_fusion: ``[N, 2]`` the fused prediction, GMIC's output.
    """

    saliency: torch.Tensor
    y_global: torch.Tensor
    roi_locations: torch.Tensor
    patches: torch.Tensor
    attention: torch.Tensor
    y_local: torch.Tensor
    y_fusion: torch.Tensor


class GMIC(nn.Module):
    """``image [N, 1, H, W] (standardised) -> GMICOutput``.

    The global network sees the whole image and makes saliency maps; K patches chosen from them go
    through the local network as one batch of N * K; gated attention pools them; a fusion layer
    combines the global max-pooled features with the pooled patch features.
    """

    def __init__(self, config: GMICConfig | None = None) -> None:
        super().__init__()
        self.config = config or GMICConfig()
        self.global_network = GlobalNetwork(self.config)
        self.saliency_head = SaliencyHead(self.config)
        self.top_t_pooling = TopTPooling(self.config.top_t)
        self.roi_selector = RoiSelector(self.config)
        self.patch_cropper = PatchCropper(self.config)
        self.local_network = LocalNetwork(self.config)
        self.attention = GatedAttentionPooling(self.config)
        self.local_classifier = nn.Linear(self.config.local_feature_size, self.config.num_classes, bias=False)
        self.fusion_head = FusionHead(self.config)

    def forward(self, image: torch.Tensor, patch_rotations: torch.Tensor | None = None) -> GMICOutput:
        """``patch_rotations [N, K]`` (0-3 quarter turns) rotates the patches before the local
        network; training uses it for augmentation (paper section 3.2), inference never does."""
        global_features = self.global_network(image)
        saliency = self.saliency_head(global_features)
        y_global = self.top_t_pooling(saliency)
        locations = self.roi_selector(saliency)
        patches = self.patch_cropper(image, locations)
        local_input = patches if patch_rotations is None else rotate_patches(patches, patch_rotations)
        batch, num_rois, crop_h, crop_w = local_input.shape
        local_features = self.local_network(local_input.reshape(batch * num_rois, 1, crop_h, crop_w))
        pooled, attention = self.attention(local_features.view(batch, num_rois, -1))
        y_local = torch.sigmoid(self.local_classifier(pooled))
        y_fusion = self.fusion_head(global_features, pooled)
        return GMICOutput(
            saliency=saliency,
            y_global=y_global,
            roi_locations=locations,
            patches=patches,
            attention=attention,
            y_local=y_local,
            y_fusion=y_fusion,
        )


def rotate_patches(patches: torch.Tensor, quarter_turns: torch.Tensor) -> torch.Tensor:
    """Rotate each square patch of ``[N, K, s, s]`` by ``quarter_turns [N, K]`` times 90 degrees."""
    if patches.shape[-1] != patches.shape[-2]:
        raise ValueError("only square patches can be rotated by quarter turns")
    rotations = torch.stack([torch.rot90(patches, turns, dims=(-2, -1)) for turns in range(4)])
    choice = quarter_turns.long().view(1, *quarter_turns.shape, 1, 1).expand(1, *patches.shape)
    return rotations.gather(0, choice).squeeze(0)
