"""Render one synthetic exam as a radiologist's hanging protocol (R-CC | L-CC over R-MLO | L-MLO),
each view through its default VOI window, to docs/synthetic_exam.png.

The exam goes through the real path: written as DICOM, found by load_exam, decoded by load_image.
Usage: python -m benchmarks.render_synthetic_exam [--seed S] [--index I] [--width PX] [--out FILE]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from benchmarks.common import REPO_ROOT
from gmic_core.imaging import View, load_exam, load_image
from gmic_core.synthetic import FULL_SIZE, SynthesisConfig, generate_exam, write_image

HANGING_PROTOCOL = ((View.R_CC, View.L_CC), (View.R_MLO, View.L_MLO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--index", type=int, default=5)
    parser.add_argument("--width", type=int, default=1600, help="width of the picture in pixels")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "synthetic_exam.png")
    args = parser.parse_args()
    exam = generate_exam(args.seed, args.index, SynthesisConfig(size=FULL_SIZE))
    with tempfile.TemporaryDirectory() as folder:
        for view in View:
            write_image(Path(folder) / f"{view.value}.dcm", exam, view)
        loaded = load_exam(folder)
        tile_width = args.width // 2
        rows = [
            np.concatenate(
                [_tile(load_image(loaded.images[view]).display(), tile_width) for view in pair], axis=1
            )
            for pair in HANGING_PROTOCOL
        ]
    picture = np.concatenate(rows, axis=0)
    Image.fromarray(np.rint(picture * 255).astype(np.uint8)).save(args.out, optimize=True)
    lesions = {
        side.value: [lesion.kind.value for lesion in breast.lesions] for side, breast in exam.breasts.items()
    }
    print(f"{args.out}: exam {args.seed}/{args.index}, density {exam.density}, lesions {lesions}")


def _tile(display: np.ndarray, width: int) -> np.ndarray:
    """Area-average the display image down to ``width`` columns."""
    height = round(display.shape[0] * width / display.shape[1])
    tensor = torch.from_numpy(np.ascontiguousarray(display, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=(height, width), mode="area")[0, 0].numpy()


if __name__ == "__main__":
    main()
