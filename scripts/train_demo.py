"""The embedded demo model's whole chain, from an empty folder: every stage's synthetic exams, each
stage's training from the checkpoint the previous stage kept, the evaluation on 200 fresh exams, and
the final checkpoint packaged as the demo model into WORK/model (never over resources/models).

    python scripts/train_demo.py WORK [--device auto] [--workers N] [--quick]

The stages are the configs of configs/demo/, run for the epochs they ran (stages 1 to 3 stopped at
the end of their GPU time, stage 2 was stopped by hand, so their configs ask for more) and each
followed by the checkpoint that was kept (docs/demo-model/HISTORY.md). Their data, runs and caches
go under WORK/data and WORK/runs instead of the repository's. A stage already finished is skipped
and an interrupted one resumes, so the script may be run again after a stop. ``--quick`` runs the
same chain tiny (6 small exams a set, an eighth of the resolution, no crop cache, one step of one
image a stage, each stage starting from the last's interrupted run): a check that the chain runs,
whose model is worthless.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

from package_demo_model import package

from gmic_core.inference import Predictor
from gmic_core.synthetic import Lesion, write_dataset
from gmic_core.training.config import TrainingConfig
from gmic_core.training.evaluate import evaluate
from gmic_core.training.loop import train

REPOSITORY = Path(__file__).resolve().parent.parent
CONFIGS = REPOSITORY / "configs" / "demo"
MASSES = frozenset({Lesion("mass:irregular"), Lesion("mass:round"), Lesion("mass:oval")})
CALCIFICATIONS = frozenset(
    {
        Lesion("calcifications:coarse"),
        Lesion("calcifications:fine-pleomorphic"),
        Lesion("calcifications:fine-linear-branching"),
    }
)
QUICK_EXAMS = 6
QUICK_SIZE = (1024, 832)
QUICK_SCALE = 0.125
EVALUATION_SET = "demo-eval-2028"  # used by no training run, nor for any choice (HISTORY.md)


@dataclass(frozen=True)
class ExamSet:
    """``gmic synth DATA/NAME --exams EXAMS --seed SEED`` with these options (all written
    ``--transfer-syntax explicit-little``: the pixels of the default JPEG 2000, faster to read)."""

    exams: int
    seed: int
    malignant_fraction: float = 0.2
    benign_fraction: float = 0.2
    lesions: frozenset[Lesion] = frozenset(Lesion)


@dataclass(frozen=True)
class Stage:
    config: str  # in configs/demo/
    epochs: int  # as run
    keep: str  # "best" or "last": the checkpoint the next stage starts from


# The exam sets by the folder name the configs' manifests give (their comments give the commands).
EXAM_SETS = {
    "demo-train": ExamSet(480, 1),
    "demo-stage2": ExamSet(150, 100),
    "demo-stage3": ExamSet(480, 3),
    "demo-stage4": ExamSet(240, 7, 0.3, 0.3),
    "demo-stage6": ExamSet(120, 9, 0.4, 0.4, MASSES),
    "demo-stage7": ExamSet(120, 11, 0.3, 0.3),
    "demo-stage9": ExamSet(120, 12, 0.3, 0.3),
    "demo-masses19": ExamSet(60, 19, 0.4, 0.4, MASSES),
    "demo-calcs21": ExamSet(60, 21, 0.4, 0.4, CALCIFICATIONS),
    EVALUATION_SET: ExamSet(200, 2028),
}
STAGES = (
    Stage("demo.toml", 13, "best"),
    Stage("demo-stage2.toml", 6, "best"),
    Stage("demo-stage3-beta1e-3.toml", 18, "best"),  # packed with last; the history names neither
    Stage("demo-stage4.toml", 16, "last"),
    Stage("demo-stage6.toml", 8, "best"),  # stage 5 was a probe at full resolution, not shipped
    Stage("demo-stage7.toml", 8, "best"),
    Stage("demo-stage8.toml", 6, "last"),
    Stage("demo-stage9.toml", 6, "last"),
    Stage("demo-stage10.toml", 6, "last"),
    Stage("demo-stage11.toml", 6, "last"),
    Stage("demo-stage12.toml", 5, "last"),
)


def exam_set(work: Path, name: str, quick: bool, workers: int = 1) -> Path:
    """The manifest of exam set ``name`` under WORK/data, written (in ``workers`` processes) unless
    it is there."""
    manifest = work / "data" / name / "manifest.csv"
    if not manifest.is_file():
        spec = EXAM_SETS[name]
        print(f"synth {name}", file=sys.stderr, flush=True)
        write_dataset(
            manifest.parent,
            QUICK_EXAMS if quick else spec.exams,
            spec.seed,
            **({"size": QUICK_SIZE} if quick else {}),
            transfer_syntax="explicit-little",
            malignant_fraction=spec.malignant_fraction,
            benign_fraction=spec.benign_fraction,
            lesions=spec.lesions,
            workers=workers,
        )
    return manifest


def stage_config(
    stage: Stage, work: Path, start: Path | None, device: str, quick: bool, workers: int = 1
) -> TrainingConfig:
    """The stage's config with its data and run under WORK, started from ``start``."""
    config = TrainingConfig.from_toml(CONFIGS / stage.config)
    model = dataclasses.replace(config.model, init_from=str(start) if start else "")
    optimisation = dataclasses.replace(config.optimisation, epochs=stage.epochs)
    if quick:
        model = dataclasses.replace(model, input_scale=QUICK_SCALE)
        optimisation = dataclasses.replace(optimisation, batch_size=1)
    return dataclasses.replace(
        config,
        manifest=tuple(exam_set(work, path.parent.name, quick, workers) for path in config.manifest),
        output_dir=work / "runs" / config.output_dir.name,
        cache_dir=None if quick or config.cache_dir is None else work / "data" / config.cache_dir.name,
        device=device,
        num_workers=0 if quick else config.num_workers,
        model=model,
        optimisation=optimisation,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, metavar="WORK", help="the folder for data, runs and the model")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument(
        "--workers", type=int, default=1, help="processes writing the exams (the same files; default 1)"
    )
    parser.add_argument("--quick", action="store_true", help="the whole chain, tiny: a check that it runs")
    args = parser.parse_args()
    work = args.work.resolve()
    start = None
    for stage in STAGES:
        config = stage_config(stage, work, start, args.device, args.quick, args.workers)
        print(f"train {stage.config}", file=sys.stderr, flush=True)
        result = train(
            config, log=lambda line: print(line, file=sys.stderr), stop_after_steps=1 if args.quick else None
        )
        start = result.last_checkpoint if args.quick or stage.keep == "last" else result.best_checkpoint
    assert start is not None  # every finished run has a best.pt (the last epoch when nothing ranks)
    out = work / "evaluation"
    predictor = Predictor.from_files([start], device=args.device)
    evaluate(
        predictor,
        exam_set(work, EVALUATION_SET, args.quick, args.workers),
        out,
        resamples=50 if args.quick else 1000,
        log=lambda line: print(line, file=sys.stderr),
        baselines=True,
    )
    recipe = "`python scripts/train_demo.py WORK" + (" --quick`" if args.quick else "`")
    version = "quick check of the chain, not a model" if args.quick else None
    print(package(start, out / "evaluation.json", work / "model", recipe=recipe, version=version))


if __name__ == "__main__":
    main()
