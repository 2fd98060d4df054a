"""A half-size model's two input paths on synthetic JPEG 2000 exams: the full-size decode resampled by
area average, and the reduced resolution level (docs/scale.md, "Half-size models"). Prints, per exam,
the wall time of decoding the four views both ways (median of ``--runs``) and the largest difference
of the fusion probabilities (benign and malignant, every view and breast), then the medians and the
largest difference over all exams, beside the tolerance tests/core/test_decoders.py holds.

Usage: python -m benchmarks.reduced_decode_bench [--exams N] [--size ROWS COLUMNS] [--weights FILE]
(default: the demo model, whose input scale is 0.5, on 4 full-size exams)
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np

from app.defaults import DEMO_MODEL
from benchmarks.common import median_seconds
from gmic_core import synthetic
from gmic_core.imaging import find_exams
from gmic_core.imaging.decoders import FULL_SIZE_CPU
from gmic_core.inference import ExamResult, Predictor, ViewImage, load_standard_views

TOLERANCE = 0.2  # held by tests/core/test_decoders.py; docs/scale.md gives the measurements behind it


def largest_difference(one: ExamResult, other: ExamResult) -> float:
    pairs = [(one.views[view].y_fusion, other.views[view].y_fusion) for view in one.views]
    pairs += [
        ((breast.benign, breast.malignant), (other.breasts[side].benign, other.breasts[side].malignant))
        for side, breast in one.breasts.items()
    ]
    return max(float(np.abs(np.subtract(a, b)).max()) for a, b in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--exams", type=int, default=4)
    parser.add_argument("--size", type=int, nargs=2, default=synthetic.FULL_SIZE, metavar=("ROWS", "COLUMNS"))
    parser.add_argument("--runs", type=int, default=3, help="timed decodes of each exam, each way")
    parser.add_argument("--weights", type=Path, default=DEMO_MODEL)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "gmic-reduced-decode")
    args = parser.parse_args()
    data = args.cache / f"exams-{args.exams}-{args.size[0]}x{args.size[1]}"
    if not (data / synthetic.MANIFEST_NAME).is_file():
        synthetic.write_dataset(
            data, exams=args.exams, seed=0, size=tuple(args.size), workers=os.cpu_count() or 1
        )
    predictor = Predictor.from_files([args.weights], device="cpu", reduced_levels=True)
    if not predictor.decoding.level:
        raise SystemExit(f"{args.weights}: input scale {predictor.config.input_scale} is not 1/2^k")
    print(f"model key ...{predictor.identity.key[-40:]}, input scale {predictor.config.input_scale}")
    full_times, reduced_times, differences = [], [], []
    for exam in find_exams([data]).exams:
        full_s, _ = median_seconds(lambda exam=exam: load_standard_views(exam), args.runs)
        reduced_s, _ = median_seconds(
            lambda exam=exam: load_standard_views(exam, predictor.decoding), args.runs
        )
        results = [
            predictor.predict(
                exam.exam_id,
                {
                    view: ViewImage.of(m, exam.horizontal_flip)
                    for view, m in load_standard_views(exam, way).items()
                },
                keep_patches=False,
            )
            for way in (predictor.decoding, FULL_SIZE_CPU)
        ]
        difference = largest_difference(*results)
        full_times.append(full_s)
        reduced_times.append(reduced_s)
        differences.append(difference)
        print(
            f"exam {exam.exam_id[-12:]}: decode full {full_s:.2f} s, level {predictor.decoding.level} "
            f"{reduced_s:.2f} s; largest probability difference {difference:.4f}"
        )
    print(
        f"\nmedian decode of four views: full size {statistics.median(full_times):.2f} s, reduced level "
        f"{statistics.median(reduced_times):.2f} s; probability difference median "
        f"{statistics.median(differences):.4f}, largest {max(differences):.4f} (tolerance {TOLERANCE}); "
        f"load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
