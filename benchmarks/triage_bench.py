"""Triage throughput: exams per hour for synthetic four-view exams at full size (4096 x 3328, JPEG 2000
lossless), with the time per exam in reading, preprocessing and inference, with and without reading
ahead of the model.

The model is the full-size GMIC-ResNet-18 (``GMICConfig()``) with seeded random weights: its speed
does not depend on the weights. The exams and the checkpoint are made once into ``--cache`` (outside
the repository; about 5 s per exam). Each configuration runs the whole set into a fresh SQLite
database, ``--repeats`` times, interleaved so that a change in the machine's load hits every
configuration alike; figures are medians. Usage:

    python -m benchmarks.triage_bench [--exams 8] [--repeats 3] [--cache /tmp/gmic-triage-bench]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from app.store import open_store
from app.triage import run_triage
from gmic_core import synthetic
from gmic_core.config import GMICConfig
from gmic_core.inference import Predictor, device_description
from gmic_core.model import GMIC, ModelCard, save_checkpoint

CONFIGURATIONS = (("none", 1), ("threads", 1), ("threads", 2), ("processes", 1), ("processes", 2))
STAGES = ("read_s", "preprocess_s", "inference_s")


def prepare_cache(cache: Path, exams: int) -> tuple[Path, Path]:
    data, weights = cache / "exams", cache / "gmic_resnet18_seeded.pt"
    manifest = data / synthetic.MANIFEST_NAME
    have = len(list(data.glob("exam_*"))) if manifest.is_file() else 0
    if have != exams:
        print(f"writing {exams} full-size synthetic exams into {data} ...", flush=True)
        synthetic.write_dataset(
            data, exams=exams, seed=0, size=synthetic.FULL_SIZE, workers=os.cpu_count() or 1
        )
    if not weights.is_file():
        torch.manual_seed(0)
        card = ModelCard("GMIC-ResNet-18, seeded random weights", "0", "none", "benchmarks only")
        save_checkpoint(weights, GMIC(GMICConfig()), card)
    return data, weights


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--exams", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "gmic-triage-bench")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every measurement here")
    args = parser.parse_args()

    data, weights = prepare_cache(args.cache, args.exams)
    predictor = Predictor.from_files([weights], device="cpu", precision=args.precision)
    print(
        f"{device_description(predictor.device)}, {os.cpu_count()} cores, {args.precision}, {args.exams} exams"
    )
    with tempfile.TemporaryDirectory() as scratch:
        warm = open_store(f"sqlite:///{Path(scratch) / 'warm-up.sqlite3'}")
        run_triage(warm, predictor, [data / "exam_0000"], overlap="none")  # first-call allocations
        warm.dispose()
        runs: dict[str, list[dict]] = {f"{overlap} x{workers}": [] for overlap, workers in CONFIGURATIONS}
        for repeat in range(args.repeats):
            for overlap, workers in CONFIGURATIONS:
                name = f"{overlap} x{workers}"
                store = open_store(f"sqlite:///{Path(scratch) / f'{repeat}-{overlap}-{workers}.sqlite3'}")
                load_before = os.getloadavg()[0]
                started = time.perf_counter()
                summary = run_triage(store, predictor, [data], overlap=overlap, workers=workers)
                wall = time.perf_counter() - started
                store.dispose()
                if summary.scored != args.exams:
                    raise SystemExit(f"{name}: scored {summary.scored} of {args.exams}: {summary.failed}")
                runs[name].append(
                    {
                        "wall_s": wall,
                        "exams_per_hour": summary.scored / wall * 3600,
                        "load_before": load_before,
                        "load_after": os.getloadavg()[0],
                        "exams": summary.timings,
                    }
                )
                print(
                    f"  repeat {repeat + 1} {name}: {summary.scored / wall * 3600:.0f} exams/h "
                    f"(load {load_before:.2f} -> {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
    print()
    print(
        "| overlap | exams/h (median) | s/exam | read s | preprocess s | inference s | read / preprocess / inference | device waiting s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for name, measured in runs.items():
        exams = [timing for run in measured for timing in run["exams"]]
        medians = {stage: statistics.median(exam[stage] for exam in exams) for stage in (*STAGES, "wait_s")}
        work = sum(medians[stage] for stage in STAGES)
        shares = " / ".join(f"{100 * medians[stage] / work:.0f} %" for stage in STAGES)
        rate = statistics.median(run["exams_per_hour"] for run in measured)
        print(
            f"| {name} | {rate:.0f} | {3600 / rate:.2f} | {medians['read_s']:.2f} | {medians['preprocess_s']:.2f} "
            f"| {medians['inference_s']:.2f} | {shares} | {medians['wait_s']:.2f} |"
        )
    loads = [
        value
        for measured in runs.values()
        for run in measured
        for value in (run["load_before"], run["load_after"])
    ]
    print(
        f"\n1-minute load average during the runs: {min(loads):.2f} to {max(loads):.2f} (median {statistics.median(loads):.2f})"
    )
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
