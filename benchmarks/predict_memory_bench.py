"""Memory of exam-level inference on the CPU: the peak for one four-view exam, and whether the
resident set grows over many consecutive exams.

Runs the Predictor (seeded reference weights, fp32) on the reference sample exam N times.
Usage: python -m benchmarks.predict_memory_bench [--exams 50]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import reference_dir
from gmic_core.bench import peak_memory, proc_status_kb
from gmic_core.imaging import load_exam
from gmic_core.inference import Predictor, ViewImage, load_standard_views
from gmic_core.model import LoadedCheckpoint, ModelCard
from tests.core.reference import seeded_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exams", type=int, default=50)
    args = parser.parse_args()
    card = ModelCard("seed 2", "0", "none", "benchmark")
    model = seeded_model(reference_dir(), seed=2, top_t=0.03)
    predictor = Predictor([LoadedCheckpoint(model, card, "0" * 64, Path("seed2"), True)], device="cpu")
    exam = load_exam(reference_dir() / "sample_exam")
    images = {
        view: ViewImage(m.pixels, exam.horizontal_flip) for view, m in load_standard_views(exam).items()
    }
    status = Path("/proc/self/status")
    resident = []
    with peak_memory(predictor.device) as peak:
        for _ in range(args.exams):
            predictor.predict(exam.exam_id, images)
            resident.append(proc_status_kb(status, "VmRSS") / 1024)
    print(f"{args.exams} consecutive four-view exams on the CPU (fp32)")
    print(f"  peak memory above the loaded model: {peak():.0f} MB")
    for index in sorted({0, 4, args.exams // 2 - 1, args.exams - 1}):
        print(f"  resident set after exam {index + 1}: {resident[index]:.0f} MB")
    print(f"  growth from exam 5 to exam {args.exams}: {resident[-1] - resident[4]:+.0f} MB")


if __name__ == "__main__":
    main()
