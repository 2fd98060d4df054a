"""Time the whole published preprocessing of full-size mammograms (reading excluded).

The images are the reference sample exam's views resampled to 4096 x 3328, the size of a modern
full-field digital mammogram. Usage: python -m benchmarks.preprocess_bench [--runs N]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from PIL import Image
from skimage.transform import resize

from benchmarks.common import median_seconds, reference_dir
from gmic_core.preprocess import preprocess

FULL_SIZE = (4096, 3328)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    sample = reference_dir() / "sample_exam"
    views = json.loads((sample / "exam.json").read_text())["views"]
    print(f"preprocessing of one {FULL_SIZE[0]} x {FULL_SIZE[1]} image, median of {args.runs} runs")
    for view in ("R-CC", "L-MLO"):
        stored = np.asarray(Image.open(sample / views[view]))
        image = (resize(stored, FULL_SIZE, order=1, preserve_range=True, anti_aliasing=False)).astype(
            np.uint16
        )
        median, timings = median_seconds(
            lambda image=image, view=view: preprocess(image, view[0], "MLO" in view), args.runs
        )
        print(f"  {view}: median {median:.3f} s (min {min(timings):.3f}, max {max(timings):.3f})")


if __name__ == "__main__":
    main()
