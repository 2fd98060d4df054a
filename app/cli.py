"""The ``gmic`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from gmic_core import synthetic

Command = Callable[[argparse.Namespace], int]
# gmic_core.imaging.layouts.LayoutKind, spelled out so that building the parser imports nothing heavy
# (tests/core/test_layouts.py checks that the two agree).
LAYOUTS = ("cbis-ddsm", "vindr-mammo", "cmmd", "inbreast")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gmic", description="GMIC Reader: mammography AI workstation tools")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in (
        _register_synth,
        _register_predict,
        _register_bench,
        _register_train,
        _register_evaluate,
        _register_study,
        _register_triage,
        _register_dataset,
    ):
        register(commands)
    return parser


def _register_synth(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("synth", help="write synthetic screening exams (DICOM) and a manifest")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    parser.add_argument("--exams", type=int, default=10, help="how many exams (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed writes the same exams")
    parser.add_argument("--size", type=int, nargs=2, default=synthetic.FULL_SIZE, metavar=("ROWS", "COLUMNS"))
    syntaxes = sorted(synthetic.TRANSFER_SYNTAXES)
    parser.add_argument("--transfer-syntax", choices=syntaxes, default="jpeg2000-lossless")
    parser.add_argument("--photometric", choices=synthetic.PHOTOMETRICS, default="MONOCHROME2")
    parser.add_argument("--bits", type=int, choices=(12, 14), default=12, help="bits stored")
    defaults = synthetic.SynthesisConfig()
    parser.add_argument("--malignant-fraction", type=float, default=defaults.malignant_fraction)
    parser.add_argument("--benign-fraction", type=float, default=defaults.benign_fraction)
    kinds = [kind.value for kind in synthetic.Lesion]
    parser.add_argument(
        "--lesions",
        nargs="+",
        choices=kinds,
        default=kinds,
        metavar="KIND",
        help="draw findings of these kinds only (default all: %(choices)s)",
    )
    parser.add_argument("--workers", type=int, default=1, help="processes writing exams (default 1)")
    parser.set_defaults(run=_synth)


def _synth(args: argparse.Namespace) -> int:
    manifest = synthetic.write_dataset(
        args.out_dir,
        exams=args.exams,
        seed=args.seed,
        size=tuple(args.size),
        transfer_syntax=args.transfer_syntax,
        photometric=args.photometric,
        bits_stored=args.bits,
        malignant_fraction=args.malignant_fraction,
        benign_fraction=args.benign_fraction,
        lesions=frozenset(synthetic.Lesion(kind) for kind in args.lesions),
        workers=args.workers,
    )
    print(manifest)
    return 0


def _register_predict(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "predict", help="run GMIC on exams (DICOM folders or files, exam.json manifests)"
    )
    parser.add_argument(
        "exams", nargs="+", type=Path, metavar="EXAM", help="a folder (scanned), a DICOM file or an exam.json"
    )
    _add_model_options(parser)
    parser.add_argument("--tta", type=int, default=0, help="average over N random windows (paper: 10)")
    parser.add_argument("--out", type=Path, help="results.json or results.csv (default: JSON on stdout)")
    parser.add_argument("--visualize", type=Path, metavar="DIR", help="write one picture per view here")
    parser.add_argument(
        "--db",
        metavar="URL",
        help="the database holding the model's site calibration (gmic calibrate); default: the SQLite "
        "database in the user data folder, where one exists",
    )
    parser.add_argument(
        "--dicom-out",
        type=Path,
        metavar="DIR",
        help="write each exam's CAD SR, TID 1500 report, segmentations and Secondary Capture here",
    )
    _add_layout_option(parser)
    parser.set_defaults(run=_predict)


def _add_layout_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        help="read each PATH as a public dataset's tree and group its exams by the dataset's rules "
        "(docs/validation.md), not by StudyInstanceUID",
    )


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights", nargs="+", type=Path, required=True, metavar="FILE", help="checkpoint(s)"
    )
    parser.add_argument(
        "--top-t", type=float, help="top-t of published checkpoints not named sample_model_N.p"
    )
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps"
    )
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")


def _predict(args: argparse.Namespace) -> int:
    from app.predict import predict_paths, results_json, site_calibration, write_csv
    from gmic_core.errors import GMICError
    from gmic_core.inference import Predictor

    try:
        predictor = Predictor.from_files(
            args.weights, top_t=args.top_t, device=args.device, precision=args.precision, tta=args.tta
        )
        calibration = site_calibration(args.db, predictor.identity.key)
    except (GMICError, ValueError) as error:
        print(f"gmic predict: {error}", file=sys.stderr)
        return 2
    run = predict_paths(predictor, args.exams, args.visualize, args.layout, args.dicom_out)
    if args.out is not None and args.out.suffix.lower() == ".csv":
        write_csv(run, args.out, calibration)
    else:
        document = results_json(run, predictor, calibration)
        if args.out is None:
            print(document)
        else:
            args.out.write_text(document)
    for error in run.errors:  # one line per path, file or exam; most messages name the file already
        message = str(error["error"])
        named = message if str(error["path"]) in message else f"{error['path']}: {message}"
        print(f"gmic predict: {named}", file=sys.stderr)
    return 0 if run.results else 1


def _register_bench(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("bench", help="parameters, GFLOPs, memory and speed of GMIC and baselines")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=("fp32", "bf16", "fp16"),
        default=None,
        help="default: fp32, plus bf16 where the device supports it",
    )
    parser.add_argument("--quick", action="store_true", help="GMIC-ResNet-18 and ResNet-34 in fp32 only")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure, after one warm-up")
    parser.add_argument("--no-backward", action="store_true", help="skip forward+backward timings")
    parser.add_argument("--compile", action="store_true", help="also time the models under torch.compile")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the report here")
    parser.set_defaults(run=_bench)


def _bench(args: argparse.Namespace) -> int:
    import json

    from gmic_core.bench import format_table, run_benchmarks
    from gmic_core.inference import select_device, supported_precisions

    device = select_device(args.device)
    precisions = ["fp32"] if args.quick else (args.precision or supported_precisions(device))
    report = run_benchmarks(
        device,
        precisions,
        quick=args.quick,
        repeats=args.repeats,
        backward=not (args.no_backward or args.quick),
        compile=args.compile,
        log=lambda line: print(line, file=sys.stderr),
    )
    print(format_table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


def _register_train(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="train or fine-tune GMIC (resumes an interrupted run)")
    parser.add_argument("config", type=Path, metavar="CONFIG", help="a TOML file of every hyperparameter")
    parser.add_argument("--max-steps", type=int, help="stop after this many steps (run again to resume)")
    parser.add_argument(
        "--prepare-only", action="store_true", help="only crop the images into the config's cache_dir"
    )
    parser.add_argument("--workers", type=int, help="data worker processes (overrides num_workers)")
    parser.set_defaults(run=_train)


def _train(args: argparse.Namespace) -> int:
    from gmic_core.errors import GMICError
    from gmic_core.training.config import TrainingConfig
    from gmic_core.training.loop import train

    try:
        config = TrainingConfig.from_toml(args.config)
        if args.workers is not None:
            config = dataclasses.replace(config, num_workers=args.workers)
        result = train(config, stop_after_steps=args.max_steps, prepare_only=args.prepare_only)
    except (GMICError, ValueError, OSError) as error:
        print(f"gmic train: {error}", file=sys.stderr)
        return 2
    if not args.prepare_only:
        print(result.best_checkpoint or result.last_checkpoint)
    return 0


def _register_evaluate(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("evaluate", help="AUCs with bootstrap CIs and saliency Dice on a manifest")
    parser.add_argument(
        "paths", nargs="+", type=Path, metavar="WEIGHTS... MANIFEST", help="with --layout: WEIGHTS... ROOT"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR")
    parser.add_argument("--split", help="evaluate only this split (train, val, test); default all")
    parser.add_argument("--tta", type=int, default=0)
    parser.add_argument("--top-t", type=float)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples per interval")
    parser.add_argument(
        "--baselines", action="store_true", help="also score maximum pixel, mean intensity and blob count"
    )
    _add_layout_option(parser)
    parser.set_defaults(run=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from gmic_core.errors import GMICError
    from gmic_core.inference import Predictor
    from gmic_core.training.evaluate import evaluate

    *weights, manifest = args.paths
    if not weights:
        print("gmic evaluate: give at least one checkpoint before the manifest", file=sys.stderr)
        return 2
    try:
        if args.layout is not None:
            manifest = _import_for_evaluation(args.layout, manifest, args.out / "dataset")
        predictor = Predictor.from_files(
            weights, top_t=args.top_t, device=args.device, precision=args.precision, tta=args.tta
        )
        report = evaluate(
            predictor,
            manifest,
            args.out,
            args.split,
            args.bootstrap,
            log=lambda line: print(line, file=sys.stderr),
            baselines=args.baselines,
        )
    except (GMICError, ValueError, OSError) as error:
        print(f"gmic evaluate: {error}", file=sys.stderr)
        return 2
    breast = report["breast"]["malignant"]
    if "auc" in breast:
        low, high = breast["auc_ci"]
        print(f"breast-level malignant AUC {breast['auc']:.3f} (95% CI {low:.3f}-{high:.3f})")
    print(args.out / "evaluation.json")
    return 0


def _import_for_evaluation(layout: str, root: Path, out: Path) -> Path:
    """``gmic evaluate --layout``: the dataset imported into ``out`` (as ``gmic dataset import``)."""
    from gmic_core.imaging.layouts import import_layout, read_layout

    summary = import_layout(read_layout(layout, root), out)
    for line in summary.lines():
        print(line, file=sys.stderr)
    return summary.manifest


def _register_study(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("study", help="reader studies: create one, report on it, analyse ratings")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a reader study from a case list (CSV or folder)")
    create.add_argument("name", metavar="STUDY")
    create.add_argument(
        "cases", type=Path, metavar="CASES", help="a case list CSV, a gmic synth manifest or its folder"
    )
    create.add_argument("--protocol", choices=("blinded", "sequential", "ai_assisted"), default="blinded")
    create.add_argument("--seed", type=int, default=0, help="seeds every reader's randomised order")
    create.add_argument("--model-key", help="the model whose stored results AI-showing protocols display")
    create.add_argument("--lambda", dest="hybrid_weight", type=float, default=0.5, help="hybrid weight shown")
    _add_database_option(create)
    create.set_defaults(run=_study_create)

    report = actions.add_parser("report", help="analyse a study's readings from the database")
    report.add_argument("name", metavar="STUDY")
    _add_database_option(report)
    report.add_argument("--out", type=Path, required=True, metavar="DIR")
    report.add_argument(
        "--sensitivity", type=float, help="operating point (default: readers' mean sensitivity)"
    )
    report.set_defaults(run=_study_report)

    analyze = actions.add_parser(
        "analyze", help="analyse a long-format table reader,case,modality,truth,rating"
    )
    analyze.add_argument("ratings", type=Path, metavar="RATINGS.csv")
    analyze.add_argument("--out", type=Path, required=True, metavar="DIR")
    analyze.add_argument("--model-reader", help="the reader id whose rows are the model's scores (0-1)")
    analyze.add_argument("--rating-scale", type=float, default=100.0, help="ratings / scale lie in [0, 1]")
    analyze.add_argument(
        "--sensitivity", type=float, help="operating point (default: readers' mean sensitivity)"
    )
    analyze.set_defaults(run=_study_analyze)


def _add_database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", metavar="URL", help="SQLAlchemy URL (default: SQLite in the user data folder)"
    )


def _study_create(args: argparse.Namespace) -> int:
    from app.store import open_store
    from app.study.cases import read_case_list
    from app.study.service import StudyService
    from gmic_core.errors import GMICError

    try:
        cases = read_case_list(args.cases)
        store = open_store(args.db)
        StudyService(store).create_study(
            args.name, cases, args.protocol, args.seed, args.model_key, args.hybrid_weight
        )
    except GMICError as error:
        print(f"gmic study create: {error}", file=sys.stderr)
        return 2
    print(f"study {args.name}: {len(cases)} cases, {args.protocol}")
    return 0


def _study_report(args: argparse.Namespace) -> int:
    from app.store import open_store
    from app.study.analysis import analyze, study_ratings
    from gmic_core.errors import GMICError

    try:
        report = analyze(study_ratings(open_store(args.db), args.name), args.out, args.sensitivity)
    except (GMICError, ValueError) as error:
        print(f"gmic study report: {error}", file=sys.stderr)
        return 2
    _print_summary(report)
    print(args.out / "analysis.json")
    return 0


def _study_analyze(args: argparse.Namespace) -> int:
    from app.study.analysis import analyze, read_ratings_csv
    from gmic_core.errors import GMICError

    try:
        table = read_ratings_csv(args.ratings, args.model_reader, args.rating_scale)
        report = analyze(table, args.out, args.sensitivity)
    except (GMICError, ValueError) as error:
        print(f"gmic study analyze: {error}", file=sys.stderr)
        return 2
    _print_summary(report)
    print(args.out / "analysis.json")
    return 0


def _print_summary(report: dict) -> None:
    for modality, auc in report["modalities"].items():
        print(f"modality {modality}: reader-averaged AUC {auc:.4f}")
    if "or" in report:
        result = report["or"]["jackknife"]
        low, high = result["ci"]
        print(
            f"OR (jackknife): F {result['F']:.3f}, ddf {result['ddf']:.2f}, p {result['p']:.4f}, "
            f"difference {result['difference']:.4f} (95% CI {low:.4f} to {high:.4f})"
        )


def _register_triage(commands: argparse._SubParsersAction) -> None:
    from app.triage import DEFAULT_OVERLAP, DEFAULT_WORKERS, FLAGS, OVERLAPS, SORTS

    triage = commands.add_parser("triage", help="score every exam under folders not yet scored by the model")
    triage.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="a folder (scanned), a DICOM file or exam.json"
    )
    _add_model_options(triage)
    _add_database_option(triage)
    _add_overlap_options(triage, OVERLAPS, DEFAULT_OVERLAP, DEFAULT_WORKERS)
    triage.add_argument(
        "--compile", action="store_true", help="torch.compile the model (worth it for long runs)"
    )
    _add_layout_option(triage)
    triage.add_argument(
        "--dicom-out",
        type=Path,
        metavar="DIR",
        help="write each scored exam's CAD SR, TID 1500 report, segmentations and Secondary Capture here",
    )
    triage.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="read and score on the Ray cluster at ADDRESS (HOST:PORT, or auto); every node must read "
        "the PATHs at the same place (docs/scale.md); needs the cluster extra",
    )
    triage.set_defaults(run=_triage)

    calibrate = commands.add_parser(
        "calibrate",
        help="fit and store a model's site calibration and operating points on a labelled calibration set",
    )
    calibrate.add_argument(
        "manifest", type=Path, metavar="MANIFEST", help="a gmic synth manifest.csv or its folder"
    )
    _add_model_options(calibrate)
    _add_database_option(calibrate)
    calibrate.add_argument(
        "--sensitivity", type=float, help="target sensitivity of the likely-normal threshold"
    )
    calibrate.add_argument(
        "--specificity", type=float, help="target specificity of the high-suspicion threshold"
    )
    calibrate.add_argument(
        "--flag-fraction",
        type=float,
        metavar="F",
        help="flag at most this fraction of exams (0.1: the top 10 %%) with the flag-top threshold",
    )
    calibrate.add_argument(
        "--method",
        choices=("auto", "isotonic", "platt"),
        default="auto",
        help="calibration method (auto: the lower held-out log loss on the calibration set)",
    )
    _add_overlap_options(calibrate, OVERLAPS, DEFAULT_OVERLAP, DEFAULT_WORKERS)
    calibrate.set_defaults(run=_calibrate)

    worklist = commands.add_parser(
        "worklist", help="the triaged exams ranked by malignancy score, with flags"
    )
    _add_database_option(worklist)
    worklist.add_argument("--model-key", help="whose scores (default: the model of the latest triage run)")
    worklist.add_argument("--sort", choices=SORTS, default="score")
    worklist.add_argument(
        "--flag", action="append", choices=FLAGS, default=[], help="only exams with this flag"
    )
    worklist.add_argument("--format", choices=("table", "csv", "json"), default="table")
    worklist.set_defaults(run=_worklist)


def _add_overlap_options(
    parser: argparse.ArgumentParser, overlaps: Sequence[str], overlap: str, workers: int
) -> None:
    parser.add_argument(
        "--overlap",
        choices=overlaps,
        default=overlap,
        help=f"how reading runs ahead of the model ({overlap})",
    )
    parser.add_argument(
        "--workers", type=int, default=workers, help=f"threads or processes reading ahead ({workers})"
    )


def _triage(args: argparse.Namespace) -> int:
    from app.store import open_store
    from app.triage import run_triage
    from app.triage.progress import ProgressBar, format_summary
    from gmic_core.errors import GMICError
    from gmic_core.inference import Predictor

    try:
        store = open_store(args.db)
        predictor = Predictor.from_files(
            args.weights, top_t=args.top_t, device=args.device, precision=args.precision, compile=args.compile
        )
        summary = run_triage(
            store,
            predictor,
            args.paths,
            args.overlap,
            args.workers,
            progress=ProgressBar(),
            layout=args.layout,
            dicom_out=args.dicom_out,
            ray_address=args.ray,
        )
    except (GMICError, ValueError) as error:
        print(f"gmic triage: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\ngmic triage: interrupted; the exams scored so far are stored, run again to resume",
            file=sys.stderr,
        )
        return 130
    print(format_summary(summary), file=sys.stderr)
    return 0 if summary.scored or summary.skipped else 1


def _calibrate(args: argparse.Namespace) -> int:
    from app.store import open_store
    from app.triage import calibrate, save_calibration, save_operating_points
    from gmic_core.errors import GMICError
    from gmic_core.inference import Predictor

    try:
        store = open_store(args.db)
        predictor = Predictor.from_files(
            args.weights, top_t=args.top_t, device=args.device, precision=args.precision
        )
        calibration = calibrate(
            predictor,
            args.manifest,
            args.sensitivity,
            args.specificity,
            args.overlap,
            args.workers,
            progress=lambda done, total: print(f"{done}/{total} calibration exams scored", file=sys.stderr),
            flag_fraction=args.flag_fraction,
            method=args.method,
        )
        with store.session() as session:
            save_calibration(session, predictor.identity.key, calibration)
            save_operating_points(session, predictor.identity.key, calibration)
    except (GMICError, ValueError) as error:
        print(f"gmic calibrate: {error}", file=sys.stderr)
        return 2
    positives = int(calibration.labels.sum())
    print(f"{calibration.labels.size} exams, {positives} malignant; model {predictor.identity.key}")
    for level, fit in (("exam", calibration.site.exam), ("breast", calibration.site.breast)):
        losses = ", ".join(f"{name} {loss:.4f}" for name, loss in fit.held_out_log_loss.items())
        print(
            f"{level} calibration: {fit.calibrator.method} (held-out log loss {losses}); held-out ECE "
            f"{fit.held_out_ece_raw:.4f} raw, {fit.held_out_ece_calibrated:.4f} calibrated"
        )
    edges = ", ".join(f"{edge:.4g}" for edge in calibration.site.deciles.edges)
    print(f"decile edges of the raw exam score: {edges}")
    for name, point in calibration.points.items():
        flagged = (calibration.scores >= point.threshold).mean()
        print(
            f"{name}: threshold {point.threshold:.6g} raw (target {calibration.targets[name]}), "
            f"sensitivity {point.sensitivity:.3f}, specificity {point.specificity:.3f}, "
            f"{flagged:.3f} of the exams at or above it"
        )
    if not calibration.points:
        print("no operating point: give --sensitivity, --specificity or --flag-fraction to choose one")
    return 0


def _worklist(args: argparse.Namespace) -> int:
    from app.store import open_store
    from app.triage import latest_model_key, worklist
    from app.triage.worklist import to_csv, to_json, to_table
    from gmic_core.errors import GMICError

    try:
        with open_store(args.db).session() as session:
            model_key = args.model_key or latest_model_key(session)
            if model_key is None:
                raise GMICError(
                    "no triage run in this database yet: run gmic triage first, or give --model-key"
                )
            rows = worklist(session, model_key, args.sort, args.flag)
    except GMICError as error:
        print(f"gmic worklist: {error}", file=sys.stderr)
        return 2
    print({"table": to_table, "csv": to_csv, "json": to_json}[args.format](rows))
    return 0


def _register_dataset(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("dataset", help="public mammography datasets as distributed")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    importing = actions.add_parser(
        "import", help="write a dataset's labels and masks as a manifest.csv for evaluate, calibrate, train"
    )
    importing.add_argument("kind", choices=LAYOUTS, metavar="KIND", help="one of %(choices)s")
    importing.add_argument("root", type=Path, metavar="ROOT", help="the dataset's folder, as downloaded")
    importing.add_argument("--out", type=Path, required=True, metavar="DIR")
    importing.set_defaults(run=_dataset_import)


def _dataset_import(args: argparse.Namespace) -> int:
    from gmic_core.errors import GMICError
    from gmic_core.imaging.layouts import import_layout, read_layout

    try:
        summary = import_layout(read_layout(args.kind, args.root), args.out)
    except (GMICError, OSError) as error:
        print(f"gmic dataset import: {error}", file=sys.stderr)
        return 2
    print("\n".join(summary.lines()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    command: Command = args.run
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
