"""Deterministic GMIC-ResNet-18 weights in the published checkpoint format, for tests.

Every entry of ``tests/fixtures/gmic_resnet18_state_dict_keys.json`` (the published names, shapes and
dtypes, in the published order) is drawn in that order from one ``numpy.random.RandomState(seed)``,
whose stream numpy keeps frozen across versions, so that any implementation gets the same tensors and
the reference outputs (``expected_seed*``) apply:

* ``num_batches_tracked``: 0 (int64), no draw;
* ``running_mean``: 0.1 x standard normal; ``running_var``: 0.5 + uniform [0, 1);
* a batch-norm scale (a 1-D ``weight``): 1 + 0.1 x standard normal; every ``bias``: 0.1 x standard normal;
* every other weight (convolutions, linear layers): He normal, standard normal x sqrt(2 / fan-in), with
  the three output layers damped (``OUTPUT_DAMPING``) so that saliency and probabilities stay where the
  sigmoid responds and an implementation error cannot hide in saturation.

Run as ``python -m tests.core.published_weights SEED OUT.pt`` to write a file the published runner reads.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

KEYS = Path(__file__).resolve().parents[1] / "fixtures" / "gmic_resnet18_state_dict_keys.json"
OUTPUT_DAMPING = {
    "left_postprocess_net.gn_conv_last.weight": 0.02,  # the saliency head's 1 x 1 convolution
    "classifier_linear.weight": 0.01,  # the local network's classifier
    "fusion_dnn.weight": 0.01,  # the fusion layer
}


def _draw(random: np.random.RandomState, name: str, shape: list[int]) -> np.ndarray:
    leaf = name.rsplit(".", 1)[1]
    if leaf == "running_mean":
        return 0.1 * random.standard_normal(shape)
    if leaf == "running_var":
        return 0.5 + random.random_sample(shape)
    if leaf == "bias":
        return 0.1 * random.standard_normal(shape)
    if len(shape) == 1:  # the scale of a batch norm
        return 1.0 + 0.1 * random.standard_normal(shape)
    fan_in = math.prod(shape[1:])
    return random.standard_normal(shape) * math.sqrt(2.0 / fan_in) * OUTPUT_DAMPING.get(name, 1.0)


def published_state_dict(seed: int) -> dict[str, torch.Tensor]:
    """The checkpoint of ``seed``, with the published parameter names (see the module docstring)."""
    random = np.random.RandomState(seed)
    state = {}
    for name, shape, _dtype in json.loads(KEYS.read_text()):
        if name.endswith(".num_batches_tracked"):
            state[name] = torch.tensor(0, dtype=torch.int64)
        else:
            values = np.asarray(_draw(random, name, shape), dtype=np.float32).reshape(shape)
            state[name] = torch.from_numpy(values)
    return state


if __name__ == "__main__":
    torch.save(published_state_dict(int(sys.argv[1])), sys.argv[2])
