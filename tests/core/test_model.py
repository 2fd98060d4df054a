"""Each GMIC stage against the paper's definitions, on small inputs."""

from __future__ import annotations

import pytest
import torch

from gmic_core.config import GMICConfig
from gmic_core.model import GMIC
from gmic_core.model.gmic import rotate_patches
from gmic_core.model.heads import PatchCropper, RoiSelector, TopTPooling

# A reduced input that still exercises every stage: 512 x 384 -> 8 x 6 saliency grid, 64 x 64 patches.
SMALL = GMICConfig(
    input_height=512,
    input_width=384,
    saliency_height=8,
    saliency_width=6,
    crop_height=64,
    crop_width=64,
    num_rois=3,
)


def _randomised(model: GMIC, seed: int = 0) -> GMIC:
    """Give batch norms non-trivial statistics so that eval-mode outputs are informative."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(0.1 * torch.randn(module.running_mean.shape, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=generator))
    return model.eval()


def test_published_resnet18_parameter_count():
    assert sum(p.numel() for p in GMIC().parameters()) == 14_110_322


@pytest.mark.parametrize(("backbone", "features"), [("resnet18", 512), ("resnet34", 512), ("resnet50", 2048)])
def test_local_backbones(backbone, features):
    model = _randomised(GMIC(SMALL.replace(local_backbone=backbone)))
    assert model.config.local_feature_size == features
    assert model.attention.tanh_branch.in_features == features
    assert model.fusion_head.linear.in_features == SMALL.global_feature_size + features
    with torch.no_grad():
        out = model(torch.randn(2, 1, 512, 384))
    assert out.y_fusion.shape == (2, 2)


def test_config_rejects_inconsistent_grid():
    with pytest.raises(ValueError, match="saliency grid"):
        GMICConfig(input_height=1024)


def test_top_t_extremes_are_max_and_average_pooling():
    saliency = torch.rand(3, 2, 46, 30)
    as_max = TopTPooling(1 / (46 * 30))
    as_mean = TopTPooling(1.0)
    torch.testing.assert_close(as_max(saliency), saliency.amax(dim=(2, 3)))
    torch.testing.assert_close(as_mean(saliency), saliency.mean(dim=(2, 3)))


@pytest.mark.parametrize(
    ("t", "k"), [(0.01, 14), (0.02, 28), (0.03, 41), (0.05, 69), (0.10, 138), (0.20, 276)]
)
def test_top_t_cell_counts(t, k):
    assert GMICConfig(top_t=t).top_k_cells == k  # SPEC.md section 3.2 table


def test_roi_windows_are_distinct_and_greedy():
    """Algorithm 1: each pick is the best window of the map with earlier picks zeroed, so no window
    is picked twice while any positive mass remains."""
    config = GMICConfig()
    selector = RoiSelector(config)
    saliency = torch.rand(4, 2, 46, 30, generator=torch.Generator().manual_seed(1))
    locations = selector(saliency)
    assert locations.shape == (4, config.num_rois, 2)
    assert bool((locations % 64 == 0).all())
    for sample in range(4):
        picks = [tuple(p) for p in (locations[sample] // 64).tolist()]
        assert len(set(picks)) == config.num_rois
        maps = saliency[sample]
        low = maps.amin(dim=(1, 2), keepdim=True)
        score = ((maps - low) / (maps.amax(dim=(1, 2), keepdim=True) - low)).sum(0)
        for row, col in picks:
            means = torch.nn.functional.avg_pool2d(score[None, None], 4, stride=1)[0, 0]
            assert means[row, col] == means.max()
            score[row : row + 4, col : col + 4] = 0


def test_roi_picks_the_hot_spot_first_in_row_major_order():
    saliency = torch.zeros(1, 2, 46, 30)
    saliency[0, 1, 20:24, 10:14] = 1.0
    saliency[0, 0, 5, 5] = 1.0  # one hot cell: covered by 16 tied windows, the first in row-major wins
    locations = RoiSelector(GMICConfig())(saliency)[0].tolist()
    assert locations[0] == [20 * 64, 10 * 64]
    assert locations[1] == [2 * 64, 2 * 64]


def test_constant_saliency_gives_the_published_nan_behaviour():
    locations = RoiSelector(GMICConfig())(torch.full((1, 2, 46, 30), 0.5))
    assert locations.tolist() == [[[0, 0]] * 6]


def test_patch_cropper_inside_and_outside_the_image():
    config = GMICConfig()
    image = torch.arange(2944 * 1920, dtype=torch.float32).view(1, 1, 2944, 1920) - 5.0
    locations = torch.tensor([[[64, 128], [2800, 1800], [-32, 0]]])
    patches = PatchCropper(config)(image, locations)
    assert patches.shape == (1, 3, 256, 256)
    torch.testing.assert_close(patches[0, 0], image[0, 0, 64:320, 128:384])
    # Partly outside: the real pixels go to the bottom-right corner, the rest is the image minimum.
    torch.testing.assert_close(patches[0, 1, -144:, -120:], image[0, 0, 2800:, 1800:])
    assert bool((patches[0, 1, :-144] == -5.0).all())
    assert bool((patches[0, 1, :, :-120] == -5.0).all())
    torch.testing.assert_close(patches[0, 2, 32:, :], image[0, 0, 0:224, 0:256])
    assert bool((patches[0, 2, :32] == -5.0).all())


def test_attention_sums_to_one_and_fusion_input_is_global_max_then_pooled_features():
    model = _randomised(GMIC(SMALL))
    image = torch.randn(2, 1, 512, 384)
    with torch.no_grad():
        out = model(image)
        torch.testing.assert_close(out.attention.sum(dim=1), torch.ones(2))
        global_features = model.global_network(image)
        local = model.local_network(out.patches.reshape(-1, 1, 64, 64)).view(2, 3, -1)
        pooled = (out.attention.unsqueeze(-1) * local).sum(dim=1)
        fused_input = torch.cat((global_features.amax(dim=(2, 3)), pooled), dim=1)
        torch.testing.assert_close(out.y_fusion, torch.sigmoid(model.fusion_head.linear(fused_input)))
        torch.testing.assert_close(out.y_local, torch.sigmoid(model.local_classifier(pooled)))
        torch.testing.assert_close(out.saliency, torch.sigmoid(model.saliency_head.conv(global_features)))


def test_batch_equals_single_images():
    model = _randomised(GMIC(SMALL), seed=3)
    images = torch.randn(3, 1, 512, 384, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        batched = model(images)
        for index in range(3):
            single = model(images[index : index + 1])
            for name in (
                "saliency",
                "y_global",
                "roi_locations",
                "patches",
                "attention",
                "y_local",
                "y_fusion",
            ):
                torch.testing.assert_close(
                    getattr(single, name)[0], getattr(batched, name)[index], atol=1e-5, rtol=1e-5
                )


def test_forward_keeps_no_state():
    model = _randomised(GMIC(SMALL))
    before = set(vars(model))
    with torch.no_grad():
        model(torch.randn(1, 1, 512, 384))
    assert set(vars(model)) == before


def test_patch_rotation_turns_each_patch_independently():
    patches = torch.randn(2, 3, 8, 8)
    turns = torch.tensor([[0, 1, 2], [3, 2, 1]])
    rotated = rotate_patches(patches, turns)
    for n in range(2):
        for k in range(3):
            torch.testing.assert_close(
                rotated[n, k], torch.rot90(patches[n, k], int(turns[n, k]), dims=(0, 1))
            )


def test_gradients_reach_both_networks():
    model = GMIC(SMALL).train()
    out = model(torch.randn(2, 1, 512, 384), patch_rotations=torch.randint(0, 4, (2, 3)))
    (out.y_fusion.sum() + out.y_global.sum()).backward()
    assert model.global_network.stem_conv.weight.grad.abs().sum() > 0
    assert model.local_network.stem_conv.weight.grad.abs().sum() > 0
