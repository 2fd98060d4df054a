"""Triage throughput: exams per hour for synthetic four-view exams at full size (4096 x 3328, JPEG 2000
lossless), with the time per exam in reading, preprocessing and inference, with and without reading
ahead of the model.

The model is the full-size GMIC-ResNet-18 (``GMICConfig()``) with seeded random weights: its speed
does not depend on the weights. The exams and the checkpoint are made once into ``--cache`` (outside
the repository; about 5 s per exam). Each configuration runs the whole set into a fresh SQLite
database, ``--repeats`` times, interleaved so that a change in the machine's load hits every
configuration alike; figures are medians. Usage:

    python -m benchmarks.triage_bench [--exams 8] [--repeats 3] [--cache /tmp/gmic-triage-bench]

``--stages`` measures instead the CPU work per exam of each stage, one exam at a time: decoding the
four views, preprocessing, and inference in fp32, bf16 and bf16 compiled (process CPU seconds, all
threads counted, and wall seconds), inference in the default precision with two exams per model
call, the bf16 probabilities' largest distance from fp32, and the limit this CPU puts on triage: its
cores divided by the CPU seconds per exam. It then runs the default triage configuration (the
default precision "auto" resolved for this CPU, the default reading ahead) and prints its rate as a
fraction of the limit in that precision, and the share of the cores it got. Usage:

    python -m benchmarks.triage_bench --stages [--exams 4] [--run-exams 16]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from app.store import open_store
from app.triage import DEFAULT_OVERLAP, DEFAULT_WORKERS, find_exams, run_triage
from app.triage.pipeline import exams_per_batch
from gmic_core import synthetic
from gmic_core.choices import DEFAULT_PRECISION
from gmic_core.config import GMICConfig
from gmic_core.inference import (
    Predictor,
    ViewImage,
    device_description,
    load_standard_views,
    prepare_exam,
    resolve_precision,
    supported_precisions,
)
from gmic_core.model import GMIC, ModelCard, save_checkpoint

CONFIGURATIONS = (("none", 1), ("threads", 1), ("threads", 2), ("processes", 1), ("processes", 2))
STAGES = ("read_s", "preprocess_s", "inference_s")
BF16_TOLERANCE = 0.02  # bf16 probabilities against fp32 (tests/core/test_inference.py)


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


def _cpu_and_wall(function: Callable[[], object]) -> tuple[object, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    value = function()
    return value, time.process_time() - cpu, time.perf_counter() - wall


def _tree_cpu_seconds() -> float:
    """CPU seconds of this process and of every process under it, living or reaped by a living one:
    the reading processes start from a fork server, so they are not this process's children and
    ``process_time`` misses them. Reads Linux's /proc."""
    ticks, total, pids = os.sysconf("SC_CLK_TCK"), 0.0, [os.getpid()]
    while pids:
        pid = pids.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            for task in Path(f"/proc/{pid}/task").iterdir():
                pids.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:  # it ended meanwhile
            continue
        total += sum(int(value) for value in fields[11:15]) / ticks  # utime, stime, cutime, cstime
    return total


def stage_costs(data: Path, weights: Path, exams: int, run_exams: int) -> None:
    """The ``--stages`` table: see the module docstring."""
    found = find_exams([data]).exams[:exams]
    cpu_device = torch.device("cpu")
    default = resolve_precision(cpu_device, DEFAULT_PRECISION)
    predictors = {"inference fp32": Predictor.from_files([weights], device="cpu")}
    if "bf16" in supported_precisions(cpu_device):
        predictors["inference bf16"] = Predictor.from_files([weights], device="cpu", precision="bf16")
        predictors["inference bf16 compiled"] = Predictor.from_files(
            [weights], device="cpu", precision="bf16", compile=True
        )
    paired = f"inference {default}, two exams per call"
    prepared = predictors["inference fp32"].prepare(
        "warm-up", {v: ViewImage(m.pixels) for v, m in load_standard_views(found[0]).items()}
    )
    for predictor in predictors.values():  # first-call allocations, and compilation
        predictor.run(prepared, keep_patches=False)
    predictors[f"inference {default}"].run_batch([prepared, prepared], keep_patches=False)
    costs: dict[str, list[tuple[float, float]]] = {name: [] for name in ("decode", "preprocess", *predictors)}
    costs[paired] = []
    worst_bf16 = 0.0
    exams_prepared = []
    for exam in found:
        mammograms, cpu, wall = _cpu_and_wall(lambda exam=exam: load_standard_views(exam))
        costs["decode"].append((cpu, wall))
        images = {view: ViewImage(m.pixels, exam.horizontal_flip) for view, m in mammograms.items()}
        prepared, cpu, wall = _cpu_and_wall(
            lambda images=images: prepare_exam("bench", images, predictors["inference fp32"].config)
        )
        costs["preprocess"].append((cpu, wall))
        exams_prepared.append(prepared)
        results = {}
        for name, predictor in predictors.items():
            results[name], cpu, wall = _cpu_and_wall(
                lambda p=predictor, e=prepared: p.run(e, keep_patches=False)
            )
            costs[name].append((cpu, wall))
        reference = results["inference fp32"]
        for name in set(results) - {"inference fp32"}:
            for view, result in results[name].views.items():
                distance = np.abs(np.subtract(result.y_fusion, reference.views[view].y_fusion)).max()
                worst_bf16 = max(worst_bf16, float(distance))
    for pair in zip(exams_prepared[::2], exams_prepared[1::2], strict=False):
        _, cpu, wall = _cpu_and_wall(
            lambda pair=pair: predictors[f"inference {default}"].run_batch(list(pair), keep_patches=False)
        )
        costs[paired].append((cpu / 2, wall / 2))
    cores = os.cpu_count() or 1
    print(f"\nCPU work per exam, median of {len(found)} exams ({device_description(cpu_device)}):\n")
    print("| stage | CPU s/exam | wall s/exam |")
    print("| --- | ---: | ---: |")
    medians = {
        name: tuple(statistics.median(c[i] for c in measured) for i in (0, 1))
        for name, measured in costs.items()
        if measured
    }
    for name, (cpu, wall) in medians.items():
        print(f"| {name} | {cpu:.2f} | {wall:.2f} |")
    if len(predictors) > 1:
        print(f"\nbf16 fusion probabilities within {worst_bf16:.4f} of fp32 (tolerance {BF16_TOLERANCE})")
    for name in predictors:
        work = medians["decode"][0] + medians["preprocess"][0] + medians[name][0]
        print(
            f"limit with {name}: {cores} cores / {work:.2f} CPU s per exam = {cores / work * 3600:.0f} exams/h"
        )
    load_before = os.getloadavg()[0]
    cpu, wall = _tree_cpu_seconds(), time.perf_counter()
    scored = default_run(data, predictors[f"inference {default}"], run_exams)
    cpu, wall = _tree_cpu_seconds() - cpu, time.perf_counter() - wall
    rate = scored / wall * 3600
    stages = medians["decode"][0] + medians["preprocess"][0] + medians[f"inference {default}"][0]
    limit = cores / stages * 3600
    share = cpu / (wall * cores)
    print(
        f"the default triage run ({default}, the default precision {DEFAULT_PRECISION!r} on this CPU; "
        f"{DEFAULT_OVERLAP} x{DEFAULT_WORKERS}, {exams_per_batch(on_gpu=False)} exam per model call): "
        f"{rate:.0f} exams/h = {100 * rate / limit:.0f} % of the {default} limit ({limit:.0f} exams/h). "
        f"It used {cpu / scored:.2f} CPU s per exam ({100 * cpu / scored / stages:.0f} % of the stages' sum) "
        f"and got {100 * share:.0f} % of the {cores} cores (1-minute load {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after): {100 * rate / (limit * share):.0f} % of the limit of the CPU time it had"
    )


def default_run(data: Path, predictor: Predictor, exams: int) -> tuple[int, float]:
    """``run_triage`` with its defaults on the first ``exams`` exams: how many it scored."""
    paths = sorted(data.glob("exam_*"))[:exams]
    with tempfile.TemporaryDirectory() as scratch:
        store = open_store(f"sqlite:///{Path(scratch) / 'default.sqlite3'}")
        summary = run_triage(store, predictor, paths)
        store.dispose()
    return summary.scored


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--exams", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "gmic-triage-bench")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=DEFAULT_PRECISION)
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every measurement here")
    parser.add_argument("--stages", action="store_true", help="CPU work per stage and this CPU's limit")
    parser.add_argument(
        "--run-exams",
        type=int,
        default=16,
        help="with --stages: the exams of the default triage run, which pays its start (the reading "
        "processes) once, as a run over an archive does",
    )
    args = parser.parse_args()

    data, weights = prepare_cache(args.cache, max(args.exams, args.run_exams) if args.stages else args.exams)
    if args.stages:
        stage_costs(data, weights, args.exams, args.run_exams)
        return
    predictor = Predictor.from_files([weights], device="cpu", precision=args.precision)
    print(
        f"{device_description(predictor.device)}, {os.cpu_count()} cores, {predictor.precision}, {args.exams} exams"
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
