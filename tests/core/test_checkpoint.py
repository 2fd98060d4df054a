"""Published checkpoints load strictly; anything else fails with a CheckpointError naming the problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gmic_core.config import GMICConfig
from gmic_core.errors import CheckpointError
from gmic_core.model import GMIC, ModelCard, load_checkpoint, save_checkpoint, save_release
from tests.core.published_weights import published_state_dict

ROOT = Path(__file__).resolve().parents[2]

CARD = ModelCard(name="test", version="0", training_data="none", intended_use="tests only")


@pytest.fixture(scope="module")
def published_file(tmp_path_factory):
    """A checkpoint written as the published runner's files are: a bare state dict saved by torch.save."""
    path = tmp_path_factory.mktemp("weights") / "seed2.pt"
    subprocess.run(
        [sys.executable, "-m", "tests.core.published_weights", "2", str(path)], check=True, cwd=ROOT
    )
    return path


def test_published_file_loads_strictly(published_file):
    loaded = load_checkpoint(published_file, top_t=0.03)
    assert loaded.published
    assert loaded.config.top_t == 0.03
    assert len(loaded.sha256) == 64
    expected = published_state_dict(2)
    torch.testing.assert_close(loaded.model.fusion_head.linear.weight, expected["fusion_dnn.weight"])
    torch.testing.assert_close(
        loaded.model.local_network.stages[3][0].projection.norm.running_var,
        expected["dn_resnet.layer4.0.downsample.1.running_var"],
    )
    assert not loaded.model.training


def test_published_sample_model_names_carry_their_top_t(published_file, tmp_path):
    target = tmp_path / "sample_model_5.p"
    target.write_bytes(published_file.read_bytes())
    assert load_checkpoint(target).config.top_t == 0.10


def test_published_file_without_top_t_is_refused(published_file):
    with pytest.raises(CheckpointError, match="top-t"):
        load_checkpoint(published_file)


def test_missing_key_is_named(tmp_path):
    state = published_state_dict(2)
    del state["mil_attn_w.weight"]
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"missing 1 parameter\(s\): attention\.score\.weight"):
        load_checkpoint(tmp_path / "w.pt", top_t=0.03)


def test_unexpected_key_is_named(tmp_path):
    state = published_state_dict(2)
    state["extra_head.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"unexpected 1 parameter.*extra_head\.weight"):
        load_checkpoint(tmp_path / "w.pt", top_t=0.03)


def test_reshaped_tensor_is_named(tmp_path):
    state = published_state_dict(2)
    state["fusion_dnn.weight"] = state["fusion_dnn.weight"].reshape(4, 384)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"fusion_head\.linear\.weight has shape \[4, 384\]"):
        load_checkpoint(tmp_path / "w.pt", top_t=0.03)


def test_truncated_and_foreign_files(published_file, tmp_path):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(published_file.read_bytes()[:100_000])
    garbage = tmp_path / "garbage.p"
    garbage.write_bytes(b"not a checkpoint at all" * 100)
    for path in (truncated, garbage, tmp_path / "absent.pt"):
        with pytest.raises(CheckpointError, match=path.name):
            load_checkpoint(path, top_t=0.03)


def test_arbitrary_objects_are_never_unpickled(tmp_path):
    torch.save({"weights": ModelCard("x", "1", "x", "x")}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused for safety"):
        load_checkpoint(tmp_path / "evil.pt", top_t=0.03)


def test_project_format_round_trip(tmp_path):
    config = GMICConfig(top_t=0.05, local_backbone="resnet34")
    model = GMIC(config)
    path = save_checkpoint(tmp_path / "model.pt", model, CARD, training={"epoch": 3})
    loaded = load_checkpoint(path)
    assert loaded.config == config
    assert loaded.card == CARD
    assert loaded.training == {"epoch": 3}
    assert not loaded.published
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[name], tensor)
    assert load_checkpoint(path, top_t=0.1).config.top_t == 0.1


def test_half_precision_checkpoint_loads_as_float32(tmp_path):
    model = GMIC()
    path = save_checkpoint(tmp_path / "half.pt", model, CARD, half_precision=True)
    loaded = load_checkpoint(path)
    weight = loaded.model.global_network.stem_conv.weight
    assert weight.dtype == torch.float32
    torch.testing.assert_close(weight, model.global_network.stem_conv.weight.half().float())
    assert path.stat().st_size < 30 * 2**20


def test_a_release_copy_is_half_precision_without_the_optimiser_state(tmp_path):
    model = GMIC()
    optimiser = torch.optim.Adam(model.parameters())
    training = {"epoch": 4, "optimiser": optimiser.state_dict()}
    source = load_checkpoint(save_checkpoint(tmp_path / "last.pt", model, CARD, training=training))
    released = load_checkpoint(save_release(tmp_path / "release.pt", source))
    assert released.training == {"epoch": 4}
    assert released.card == CARD
    weight = released.model.global_network.stem_conv.weight
    torch.testing.assert_close(weight, model.global_network.stem_conv.weight.half().float())
    other = ModelCard(name="released", version="1", training_data="none", intended_use="tests only")
    assert load_checkpoint(save_release(tmp_path / "carded.pt", source, other)).card == other


def test_project_checkpoint_with_wrong_backbone_fails(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", GMIC(), CARD)
    payload = torch.load(path, weights_only=True)
    payload["config"]["local_backbone"] = "resnet50"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="resnet50"):
        load_checkpoint(path)
