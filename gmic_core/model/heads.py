"""GMIC's stages between and after the two networks: saliency, top-t pooling, ROI retrieval,
patch cropping, gated attention and fusion (paper sections 2.1-2.4, SPEC.md sections 3-4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gmic_core.config import GMICConfig, top_k_cells


class SaliencyHead(nn.Module):
    """``h_g [N, C_g, h, w] -> A [N, classes, h, w]``: 1x1 conv without bias, then sigmoid (SPEC 3.1)."""

    def __init__(self, config: GMICConfig) -> None:
        super().__init__()
        self.conv = nn.Conv2d(config.global_feature_size, config.num_classes, 1, bias=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(features))


class TopTPooling(nn.Module):
    """``A [N, classes, h, w] -> y_global [N, classes]``: mean of the k largest cells (paper eq. 7).

    k = round(t * h * w); t = 1 / (h * w) is global max pooling and t = 1 global average pooling.
    """

    def __init__(self, top_t: float) -> None:
        super().__init__()
        self.top_t = top_t

    def forward(self, saliency: torch.Tensor) -> torch.Tensor:
        cells = saliency.flatten(2)
        return cells.topk(top_k_cells(cells.shape[2], self.top_t), dim=2).values.mean(dim=2)


class RoiSelector(nn.Module):
    """Paper algorithm 1 as published (SPEC.md section 3.3).

    ``A [N, classes, h, w] -> locations [N, K, 2]`` (int64): upper-left (row, column) of each of the
    K patches in model-input pixels, in pick order. Each class map is min-max normalised, the maps
    are summed, and K times the window of crop size (on the grid) with the highest mean is taken
    (first maximum in row-major order) and its cells are zeroed. Windows may partly overlap.
    """

    def __init__(self, config: GMICConfig) -> None:
        super().__init__()
        self.num_rois = config.num_rois
        self.grid = (config.saliency_height, config.saliency_width)
        self.input_size = (config.input_height, config.input_width)
        self.window = (
            round(config.crop_height * config.saliency_height / config.input_height),
            round(config.crop_width * config.saliency_width / config.input_width),
        )

    def forward(self, saliency: torch.Tensor) -> torch.Tensor:
        maps = saliency.detach().float()
        low = maps.amin(dim=(2, 3), keepdim=True)
        high = maps.amax(dim=(2, 3), keepdim=True)
        score = ((maps - low) / (high - low)).sum(dim=1, keepdim=True)  # no epsilon: SPEC 3.3 step 1
        (grid_h, grid_w), (win_h, win_w) = self.grid, self.window
        pooled_w = grid_w - win_w + 1
        rows = torch.arange(grid_h, device=maps.device).view(1, 1, grid_h, 1)
        cols = torch.arange(grid_w, device=maps.device).view(1, 1, 1, grid_w)
        picks = []
        for _ in range(self.num_rois):
            window_means = F.avg_pool2d(score, (win_h, win_w), stride=1)
            flat_index = window_means.flatten(1).argmax(dim=1)  # first maximum in row-major order
            top = (flat_index // pooled_w).view(-1, 1, 1, 1)
            left = (flat_index % pooled_w).view(-1, 1, 1, 1)
            picks.append(torch.stack((top.flatten(), left.flatten()), dim=1))
            inside = (rows >= top) & (rows < top + win_h) & (cols >= left) & (cols < left + win_w)
            score = score * (~inside)  # a multiplication, so NaN stays NaN as published
        grid_locations = torch.stack(picks, dim=1).double()
        # SPEC 3.3 step 6: rhe((i / h) * H) in float64
        grid_size = torch.tensor(self.grid, dtype=torch.float64, device=maps.device)
        input_size = torch.tensor(self.input_size, dtype=torch.float64, device=maps.device)
        return torch.round(grid_locations / grid_size * input_size).long()


class PatchCropper(nn.Module):
    """Cut ``[N, K, h_c, w_c]`` patches from ``image [N, 1, H, W]`` at ``locations [N, K, 2]``.

    SPEC.md section 3.4: the part of the window inside the image goes to the bottom-right corner of
    the patch and the rest is filled with the image's minimum. One gather, no loops over pixels.
    """

    def __init__(self, config: GMICConfig) -> None:
        super().__init__()
        self.crop_size = (config.crop_height, config.crop_width)

    def forward(self, image: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = image.shape
        crop_h, crop_w = self.crop_size
        row_index, row_valid = _patch_axis(locations[..., 0], crop_h, height)
        col_index, col_valid = _patch_axis(locations[..., 1], crop_w, width)
        sample = torch.arange(batch, device=image.device).view(batch, 1, 1, 1)
        patches = image[:, 0][sample, row_index[..., :, None], col_index[..., None, :]]
        fill = image.amin(dim=(1, 2, 3)).view(batch, 1, 1, 1)
        return torch.where(row_valid[..., :, None] & col_valid[..., None, :], patches, fill)


def _patch_axis(start: torch.Tensor, crop: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Source indices ``[N, K, crop]`` along one axis and whether each lies inside the image."""
    first = start.clamp(0, size)
    end = (start + crop).clamp(0, size)
    index = end.unsqueeze(-1) - crop + torch.arange(crop, device=start.device)
    return index.clamp(0, size - 1), index >= first.unsqueeze(-1)


class GatedAttentionPooling(nn.Module):
    """Gated attention MIL pooling (paper eqs. 8-10, SPEC.md section 4.2).

    ``h [N, K, L] -> (z [N, L], alpha [N, K])`` with
    ``alpha = softmax_k(w^T (sigmoid(U h_k) * tanh(V h_k)))`` and ``z = sum_k alpha_k h_k``.
    """

    def __init__(self, config: GMICConfig) -> None:
        super().__init__()
        features, hidden = config.local_feature_size, config.attention_hidden_size
        self.tanh_branch = nn.Linear(features, hidden, bias=False)  # V
        self.sigmoid_gate = nn.Linear(features, hidden, bias=False)  # U
        self.score = nn.Linear(hidden, 1, bias=False)  # w

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gated = torch.sigmoid(self.sigmoid_gate(features)) * torch.tanh(self.tanh_branch(features))
        attention = torch.softmax(self.score(gated).squeeze(-1), dim=1)
        pooled = (attention.unsqueeze(-1) * features).sum(dim=1)
        return pooled, attention


class FusionHead(nn.Module):
    """``(h_g [N, C_g, h, w], z [N, L]) -> y_fusion [N, classes]`` (paper eq. 11).

    The input is ``[GMP(h_g), z]``: global max-pool first, then the attention-pooled features.
    """

    def __init__(self, config: GMICConfig) -> None:
        super().__init__()
        self.linear = nn.Linear(config.global_feature_size + config.local_feature_size, config.num_classes)

    def forward(self, global_features: torch.Tensor, pooled_local: torch.Tensor) -> torch.Tensor:
        global_max = global_features.amax(dim=(2, 3))
        return torch.sigmoid(self.linear(torch.cat((global_max, pooled_local.to(global_max.dtype)), dim=1)))
