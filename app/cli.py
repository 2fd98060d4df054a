"""The ``gmic`` command line.

Building the parser imports only standard-library modules and the constants modules
(:mod:`app.defaults`, :mod:`gmic_core.choices`, :mod:`gmic_core.synthetic_config`); each command
imports what it needs when it runs (tests/test_cli.py holds the parser to that). A GMICError or an
OSError ends any command with one message on stderr and exit status 2, from :func:`main`."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from app.defaults import (
    DEFAULT_OVERLAP,
    DEFAULT_WORKERS,
    DEMO_MODEL,
    DEMO_MODEL_NOTICE,
    FLAGS,
    FORMATS,
    OVERLAPS,
    SORTS,
)
from gmic_core.choices import DEFAULT_PRECISION, LAYOUTS, PRECISION_CHOICES, PRECISIONS
from gmic_core.errors import GMICError, UsageError
from gmic_core.synthetic_config import (
    BITS_STORED,
    FULL_SIZE,
    PHOTOMETRICS,
    TRANSFER_SYNTAX_NAMES,
    Lesion,
    SynthesisConfig,
)

Command = Callable[[argparse.Namespace], int]

# Exit statuses of every command (documented in the parser's epilog).
EXIT_DONE = 0  # everything asked for was done
EXIT_NOTHING_DONE = 1  # nothing was done: every input failed, or there was nothing to do
EXIT_REFUSED = 2  # the command line or a file it names cannot be used; nothing was started
EXIT_SOME_FAILED = 3  # some inputs failed or were left out (each named on stderr), the others were done
EXIT_INTERRUPTED = 130  # Ctrl-C; what was finished is kept
EXIT_STATUSES = f"""exit status: {EXIT_DONE} all done, {EXIT_NOTHING_DONE} nothing done (every input failed), \
{EXIT_REFUSED} a bad option or file stopped the command before it began, {EXIT_SOME_FAILED} some inputs failed \
or were left out (predict, triage: each is named on stderr, the others were done), {EXIT_INTERRUPTED} interrupted"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gmic", description="GMIC Reader: mammography AI workstation tools", epilog=EXIT_STATUSES
    )
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
        _register_listen,
        _register_pacs,
        _register_db,
    ):
        register(commands)
    return parser


def _register_synth(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("synth", help="write synthetic screening exams (DICOM) and a manifest")
    parser.add_argument(
        "out_dir", type=Path, metavar="OUT_DIR", help="folder for the exams, their masks and manifest.csv"
    )
    parser.add_argument("--exams", type=int, default=10, help="how many exams (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed writes the same exams")
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=FULL_SIZE,
        metavar=("ROWS", "COLUMNS"),
        help="image size in pixels (default %(default)s, a full-field detector; smaller is coarser)",
    )
    parser.add_argument(
        "--transfer-syntax",
        choices=TRANSFER_SYNTAX_NAMES,
        default="jpeg2000-lossless",
        help="pixel encoding (default %(default)s)",
    )
    parser.add_argument(
        "--photometric",
        choices=PHOTOMETRICS,
        default="MONOCHROME2",
        help="photometric interpretation (MONOCHROME1: inverted values; default %(default)s)",
    )
    parser.add_argument("--bits", type=int, choices=BITS_STORED, default=12, help="bits stored (default 12)")
    defaults = SynthesisConfig()
    parser.add_argument(
        "--malignant-fraction",
        type=float,
        default=defaults.malignant_fraction,
        help="probability that a breast has a malignant finding (default %(default)s)",
    )
    parser.add_argument(
        "--benign-fraction",
        type=float,
        default=defaults.benign_fraction,
        help="probability that a breast has a benign finding (default %(default)s)",
    )
    kinds = [kind.value for kind in Lesion]
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
    from gmic_core import synthetic

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
        lesions=frozenset(Lesion(kind) for kind in args.lesions),
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
    _add_tta_option(parser)
    _add_reduced_levels_option(parser)
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
        "--weights",
        nargs="+",
        type=Path,
        metavar="FILE",
        help=f"checkpoint(s); several make an ensemble (default: the {DEMO_MODEL_NOTICE}, {DEMO_MODEL.name})",
    )
    _add_inference_options(parser)


def _add_inference_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--top-t",
        type=float,
        help="top-t fraction of published checkpoints not named sample_model_N.p (this project's "
        "checkpoints carry their own)",
    )
    _add_device_option(parser)
    parser.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default=DEFAULT_PRECISION,
        help="arithmetic of the networks: bf16, fp16 (mixed precision where the device has it), fp32, or "
        f"auto: bf16 on a CPU or GPU with native bf16, else fp32 ({DEFAULT_PRECISION}); part of the model key, "
        "so calibrate, predict and triage in the same precision",
    )


def _add_reduced_levels_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reduced-levels",
        action="store_true",
        help="a model of input scale 1/2^k (the demo model: 0.5) reads JPEG 2000 at resolution level k: "
        "decoding about 4 times faster, scores differ (docs/scale.md); part of the model key",
    )


def _add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA, then MPS, then CPU; default), cpu, cuda, cuda:1, mps"
    )


def _add_tta_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tta",
        type=int,
        default=0,
        metavar="N",
        help="test-time augmentation: average over N random windows (paper: 10; default 0, none)",
    )


def _weights(given: Sequence[Path] | None) -> list[Path]:
    """The checkpoints given, or the demo model with its notice on stderr."""
    if given:
        return list(given)
    print(f"gmic: {DEMO_MODEL.name}: {DEMO_MODEL_NOTICE}", file=sys.stderr)
    return [DEMO_MODEL]


def _predictor(args: argparse.Namespace, weights: Sequence[Path] | None = None, **options):
    """The Predictor of the command's model options (the demo model when no weights are given)."""
    from gmic_core.inference import Predictor

    return Predictor.from_files(
        _weights(weights if weights is not None else args.weights),
        top_t=args.top_t,
        device=args.device,
        precision=args.precision,
        **options,
    )


def _outcome(done: int, failed: int) -> int:
    if not failed:
        return EXIT_DONE if done else EXIT_NOTHING_DONE
    return EXIT_SOME_FAILED if done else EXIT_NOTHING_DONE


def _predict(args: argparse.Namespace) -> int:
    from app.predict import predict_paths, results_json, stored_site_settings, write_csv

    predictor = _predictor(args, tta=args.tta, reduced_levels=args.reduced_levels)
    settings = stored_site_settings(args.db, predictor.identity.key)
    calibration = settings.calibration
    run = predict_paths(predictor, args.exams, args.visualize, args.layout, args.dicom_out, settings)
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
    return _outcome(len(run.results), run.failed)


def _register_bench(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("bench", help="parameters, GFLOPs, memory and speed of GMIC and baselines")
    _add_device_option(parser)
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=PRECISIONS,
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
    from gmic_core.training.config import TrainingConfig
    from gmic_core.training.loop import train

    config = TrainingConfig.from_toml(args.config)
    if args.workers is not None:
        config = dataclasses.replace(config, num_workers=args.workers)
    result = train(config, stop_after_steps=args.max_steps, prepare_only=args.prepare_only)
    if not args.prepare_only:
        print(result.best_checkpoint or result.last_checkpoint)
    return 0


def _register_evaluate(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("evaluate", help="AUCs with bootstrap CIs and saliency Dice on a manifest")
    parser.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="[WEIGHTS...] MANIFEST",
        help=f"checkpoint(s), then a manifest.csv or its folder (with --layout: the dataset's root); "
        f"with the manifest alone, the {DEMO_MODEL_NOTICE} ({DEMO_MODEL.name})",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="folder for evaluation.json and the curves"
    )
    parser.add_argument("--split", help="evaluate only this split (train, val, test); default all")
    _add_tta_option(parser)
    _add_inference_options(parser)
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples per interval")
    parser.add_argument(
        "--baselines", action="store_true", help="also score maximum pixel, mean intensity and blob count"
    )
    _add_layout_option(parser)
    parser.set_defaults(run=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from gmic_core.training.evaluate import evaluate

    *weights, manifest = args.paths
    if args.layout is not None:
        manifest = _import_for_evaluation(args.layout, manifest, args.out / "dataset")
    report = evaluate(
        _predictor(args, weights, tta=args.tta),
        manifest,
        args.out,
        args.split,
        args.bootstrap,
        log=lambda line: print(line, file=sys.stderr),
        baselines=args.baselines,
    )
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
    create.add_argument("name", metavar="STUDY", help="the new study's name")
    create.add_argument(
        "cases", type=Path, metavar="CASES", help="a case list CSV, a gmic synth manifest or its folder"
    )
    create.add_argument(
        "--protocol",
        choices=("blinded", "sequential", "ai_assisted", "crossover"),
        default="blinded",
        help="what readers see: blinded (no AI), sequential (AI after a first reading), ai_assisted, "
        "crossover (an unaided and an aided session, --washout-days apart) (default %(default)s)",
    )
    create.add_argument("--seed", type=int, default=0, help="seeds the study's balanced reading orders")
    create.add_argument(
        "--model-key",
        help="the model (key printed by gmic triage and gmic worklist) whose stored results the study shows; "
        "in a blinded study, the model read as a stand-alone reader in the report",
    )
    create.add_argument(
        "--washout-days", type=float, help="crossover: days between a reader's first and second session"
    )
    create.add_argument(
        "--probability-only",
        action="store_true",
        help="do not require BI-RADS and recall with each probability (they are required by default)",
    )
    create.add_argument(
        "--no-submit-confirmation", action="store_true", help="the panel submits without asking first"
    )
    create.add_argument("--lambda", dest="hybrid_weight", type=float, default=0.5, help="hybrid weight shown")
    _add_database_option(create)
    create.set_defaults(run=_study_create)

    report = actions.add_parser("report", help="analyse a study's readings from the database")
    report.add_argument("name", metavar="STUDY", help="the study's name")
    _add_database_option(report)
    _add_analysis_options(report)
    report.add_argument(
        "--sensitivity", type=float, help="operating point (default: readers' mean sensitivity)"
    )
    report.add_argument(
        "--interim", action="store_true", help="an interim report over the readers who have finished"
    )
    report.set_defaults(run=_study_report)

    listing = actions.add_parser("list", help="the studies in the database")
    _add_database_option(listing)
    listing.set_defaults(run=_study_list)

    show = actions.add_parser("show", help="a study's design, seed, model key and each reader's progress")
    show.add_argument("name", metavar="STUDY", help="the study's name")
    _add_database_option(show)
    show.set_defaults(run=_study_show)

    readers = actions.add_parser("readers", help="the study's roster: enrol or exclude a reader")
    readers.add_argument("name", metavar="STUDY", help="the study's name")
    roster = readers.add_mutually_exclusive_group(required=True)
    roster.add_argument("--add", metavar="ID", help="enrol this reader id")
    roster.add_argument(
        "--exclude", metavar="ID", help="leave this reader out of the analysis (needs --reason)"
    )
    roster.add_argument(
        "--exclude-reading", type=int, metavar="N", help="leave reading N (the export's reading_id) out"
    )
    readers.add_argument("--reason", help="why the reader or reading is excluded (recorded)")
    _add_database_option(readers)
    readers.set_defaults(run=_study_readers)

    export = actions.add_parser("export", help="every reading of a study, revisions included, as CSV")
    export.add_argument("name", metavar="STUDY", help="the study's name")
    export.add_argument("--out", type=Path, required=True, metavar="FILE.csv", help="the CSV to write")
    _add_database_option(export)
    export.set_defaults(run=_study_export)

    analyze = actions.add_parser(
        "analyze", help="analyse a long-format table reader,case,modality,truth,rating"
    )
    analyze.add_argument(
        "ratings", type=Path, metavar="RATINGS.csv", help="columns reader, case, modality, truth, rating"
    )
    _add_analysis_options(analyze)
    analyze.add_argument("--model-reader", help="the reader id whose rows are the model's scores (0-1)")
    analyze.add_argument(
        "--rating-scale",
        type=float,
        choices=(1.0, 100.0),
        help="with --model-reader: the readers' probability scale, 1 (0-1) or 100 (0-100 %%)",
    )
    analyze.add_argument(
        "--sensitivity", type=float, help="operating point (default: readers' mean sensitivity)"
    )
    analyze.set_defaults(run=_study_analyze)


def _add_analysis_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="folder for analysis.json and the curves"
    )
    parser.add_argument(
        "--independent-breasts",
        action="store_true",
        help="treat a woman's two breasts as independent cases (the report says so and warns); by default "
        "the AUC intervals and the MRMC analyses cluster them by exam (Obuchowski 1997)",
    )


def _add_database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", metavar="URL", help="SQLAlchemy URL (default: SQLite in the user data folder)"
    )


def _study_create(args: argparse.Namespace) -> int:
    from app.store import open_store
    from app.study.cases import read_case_list
    from app.study.service import StudyService

    cases = read_case_list(args.cases)
    StudyService(open_store(args.db)).create_study(
        args.name,
        cases,
        args.protocol,
        args.seed,
        args.model_key,
        args.hybrid_weight,
        args.washout_days,
        require_assessment=not args.probability_only,
        confirm_submit=not args.no_submit_confirmation,
    )
    print(f"study {args.name}: {len(cases)} cases, {args.protocol}, seed {args.seed}")
    print(f"enrol its readers: gmic study readers {args.name} --add ID")
    return 0


def _study_list(args: argparse.Namespace) -> int:
    from app.store import open_store
    from app.study.oversight import list_studies

    studies = list_studies(open_store(args.db))
    for study in studies:
        print(
            f"{study.name}\t{study.protocol}\t{study.cases} cases\t{study.readers} readers\t{study.created_at:%Y-%m-%d}"
        )
    return EXIT_DONE if studies else EXIT_NOTHING_DONE


def _study_show(args: argparse.Namespace) -> int:
    from app.store import open_store
    from app.study.oversight import overview

    study = overview(open_store(args.db), args.name)
    print(f"study {study.name}: {study.protocol}, {study.cases} cases, seed {study.seed}")
    print(f"model key: {study.model_key or '(none: no stand-alone model in the report)'}")
    if study.washout_days is not None:
        print(f"washout: {study.washout_days:g} days")
    print(
        f"form: {'probability, BI-RADS and recall required' if study.require_assessment else 'probability only'}"
        f"; {'Submit asks first' if study.confirm_submit else 'Submit without asking'}"
    )
    for reader in study.readers:
        time = "-" if reader.median_duration_s is None else f"{reader.median_duration_s:.1f} s"
        arm = " aided first" if reader.aided_first else ""
        excluded = f" EXCLUDED ({reader.excluded})" if reader.excluded else ""
        print(
            f"reader {reader.reader}{arm}: {reader.done} / {reader.total}, median reading time {time}{excluded}"
        )
        print(f"  order: {' '.join(reader.order)}")
        if reader.second_order:
            print(f"  second session: {' '.join(reader.second_order)}")
    if not study.readers:
        print(f"no readers enrolled: gmic study readers {study.name} --add ID")
    return EXIT_DONE


def _study_readers(args: argparse.Namespace) -> int:
    from app.store import open_store
    from app.study.service import StudyService

    service = StudyService(open_store(args.db))
    excluding = args.exclude is not None or args.exclude_reading is not None
    if excluding != (args.reason is not None):
        raise UsageError("--reason goes with --exclude or --exclude-reading, and they need it")
    if args.add is not None:
        enrolment = service.enrol(args.name, args.add)
        print(f"reader {enrolment.reader} enrolled in {args.name}, design row {enrolment.position}")
    elif args.exclude is not None:
        service.exclude_reader(args.name, args.exclude, args.reason)
        print(f"reader {args.exclude} excluded from the analysis of {args.name}: {args.reason}")
    else:
        service.exclude_reading(args.name, args.exclude_reading, args.reason)
        print(f"reading {args.exclude_reading} excluded from the analysis of {args.name}: {args.reason}")
    return EXIT_DONE


def _study_export(args: argparse.Namespace) -> int:
    from app.store import open_store
    from app.study.oversight import export_readings

    count = export_readings(open_store(args.db), args.name, args.out)
    print(f"{count} readings written to {args.out}")
    return EXIT_DONE


def _study_report(args: argparse.Namespace) -> int:
    from app.store import open_store
    from app.study.analysis import analyze, study_ratings

    table = study_ratings(open_store(args.db), args.name, interim=args.interim)
    report = analyze(table, args.out, args.sensitivity, args.independent_breasts)
    _print_summary(report)
    print(args.out / "analysis.json")
    return 0


def _study_analyze(args: argparse.Namespace) -> int:
    from app.study.analysis import analyze, read_ratings_csv

    table = read_ratings_csv(args.ratings, args.model_reader, args.rating_scale)
    report = analyze(table, args.out, args.sensitivity, args.independent_breasts)
    _print_summary(report)
    print(args.out / "analysis.json")
    return 0


def _print_summary(report: dict) -> None:
    for warning in report["warnings"]:
        print(f"warning: {warning}")
    print(report["clustering"]["description"])
    for modality, auc in report["modalities"].items():
        print(f"modality {modality}: reader-averaged AUC {auc:.4f}")
    for reader, modalities in report["operating_points"].items():
        for modality, decisions in modalities.items():
            shown = [
                f"{name} sensitivity {_share(point['sensitivity'])} ({point['tp']}/{point['tp'] + point['fn']}), "
                f"specificity {_share(point['specificity'])} ({point['tn']}/{point['tn'] + point['fp']})"
                for name, point in decisions.items()
                if isinstance(point, dict)
            ]
            if shown:
                print(f"reader {reader}, {modality}: " + "; ".join(shown))
    for modality, times in report["reading_time"].items():
        pooled = times["pooled"]
        if pooled["median_s"] is not None:
            low, high = pooled["iqr_s"]
            print(f"reading time {modality}: median {pooled['median_s']:.1f} s (IQR {low:.1f} to {high:.1f})")
    if "or" in report:
        result = report["or"]["jackknife"]
        low, high = result["ci"]
        print(
            f"OR (jackknife): F {result['F']:.3f}, ddf {result['ddf']:.2f}, p {result['p']:.4f}, "
            f"difference {result['difference']:.4f} (95% CI {low:.4f} to {high:.4f})"
        )


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _register_triage(commands: argparse._SubParsersAction) -> None:
    triage = commands.add_parser("triage", help="score every exam under folders not yet scored by the model")
    triage.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="a folder (scanned), a DICOM file or exam.json"
    )
    _add_model_options(triage)
    _add_reduced_levels_option(triage)
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
    _add_reduced_levels_option(calibrate)
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
    worklist.add_argument(
        "--sort", choices=SORTS, default="score", help="highest score first, or by exam (default score)"
    )
    worklist.add_argument(
        "--flag", action="append", choices=FLAGS, default=[], help="only exams with this flag (repeatable)"
    )
    worklist.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")
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

    store = open_store(args.db)
    predictor = _predictor(args, compile=args.compile, reduced_levels=args.reduced_levels)
    try:
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
    except KeyboardInterrupt:
        print(
            "\ngmic triage: interrupted; the exams scored so far are stored, run again to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(format_summary(summary), file=sys.stderr)
    print(f"model key: {predictor.identity.key}", file=sys.stderr)
    return _outcome(summary.scored + summary.skipped, len(summary.failed))


def _calibrate(args: argparse.Namespace) -> int:
    from app.store import open_store
    from app.triage import calibrate, save_calibration, save_operating_points

    store = open_store(args.db)
    predictor = _predictor(args, reduced_levels=args.reduced_levels)
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

    with open_store(args.db).session() as session:
        model_key = args.model_key or latest_model_key(session)
        if model_key is None:
            raise GMICError("no triage run in this database yet: run gmic triage first, or give --model-key")
        rows = worklist(session, model_key, args.sort, args.flag)
    print(f"model key: {model_key}", file=sys.stderr)
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
    importing.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="folder for manifest.csv and the masks"
    )
    importing.set_defaults(run=_dataset_import)


def _dataset_import(args: argparse.Namespace) -> int:
    from gmic_core.imaging.layouts import import_layout, read_layout

    summary = import_layout(read_layout(args.kind, args.root), args.out)
    print("\n".join(summary.lines()))
    return 0


def _register_listen(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "listen", help="a DICOM node: receive exams (C-STORE), score each complete study, send the results"
    )
    parser.add_argument("--ae-title", default="GMIC", help="this node's AE title (default GMIC)")
    parser.add_argument("--host", default="127.0.0.1", help="the address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=11112, help="the DICOM port to listen on (default 11112)")
    parser.add_argument(
        "--store", type=Path, required=True, metavar="DIR", help="received instances and the queue"
    )
    _add_database_option(parser)
    _add_model_options(parser)
    destination = parser.add_mutually_exclusive_group()
    destination.add_argument(
        "--send-to", metavar="PACS", help="C-STORE the results to AE@HOST:PORT or a node of the nodes file"
    )
    destination.add_argument("--stow", metavar="URL", help="STOW-RS the results to this DICOMweb service")
    parser.add_argument(
        "--quiet-seconds",
        type=float,
        default=30.0,
        help="a study is complete after this long without an instance",
    )
    parser.add_argument(
        "--allow", nargs="+", default=[], metavar="AE", help="the calling AE titles that may send"
    )
    parser.add_argument(
        "--retry-max-seconds", type=float, default=60.0, help="the longest wait between tries to send (60)"
    )
    parser.add_argument("--tls-cert", type=Path, help="serve over TLS with this certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM)")
    parser.add_argument("--tls-ca", type=Path, help="require client certificates signed by this CA")
    _add_nodes_option(parser)
    parser.set_defaults(run=_listen)


def _add_nodes_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nodes",
        type=Path,
        metavar="FILE",
        help="the PACS nodes file (default: pacs.toml in the user data folder)",
    )


def _listen(args: argparse.Namespace) -> int:
    import signal
    import threading

    from app.node.config import Tls, check_ae_title, read_nodes, resolve_node
    from app.node.listener import Listener, ListenerOptions
    from app.node.sender import StoreDestination, StowDestination
    from app.node.spool import Spool
    from app.store import open_store

    config = read_nodes(args.nodes)
    options = ListenerOptions(
        check_ae_title(args.ae_title),
        args.host,
        args.port,
        args.quiet_seconds,
        tuple(check_ae_title(title) for title in args.allow),
        args.retry_max_seconds,
        None if args.tls_cert is None else Tls(args.tls_ca, args.tls_cert, args.tls_key),
    )
    destination = None
    if args.send_to:
        destination = StoreDestination(resolve_node(args.send_to, config), options.ae_title)
    elif args.stow:
        destination = StowDestination(args.stow)
    spool = Spool(args.store)
    store = open_store(args.db)
    predictor = _predictor(args)
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # one line per PDU otherwise
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        Listener(spool, store, predictor, destination, options).serve(stop)
    except OSError as error:  # the port is taken, the address cannot be bound
        raise GMICError(f"cannot listen on {args.host}:{args.port} ({error.strerror})") from error
    return EXIT_DONE


def _register_pacs(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("pacs", help="query and retrieve studies from a PACS")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    find = actions.add_parser("find", help="a study-level query (C-FIND or QIDO-RS)")
    get = actions.add_parser("get", help="retrieve one study (C-GET, C-MOVE or WADO-RS); resumable")
    get.add_argument("study", metavar="STUDY_UID", help="the Study Instance UID to retrieve")
    for action in (find, get):
        where = action.add_mutually_exclusive_group(required=True)
        where.add_argument("--pacs", help="AE@HOST:PORT or the name of a node of the nodes file")
        where.add_argument("--dicomweb", metavar="URL", help="a DICOMweb service (QIDO-RS / WADO-RS)")
        action.add_argument(
            "--calling-ae", help="this node's AE title (default: the nodes file's, else GMIC)"
        )
        _add_nodes_option(action)
    find.add_argument("--patient-id", metavar="ID", help="only this patient's studies")
    find.add_argument(
        "--date", metavar="FROM-TO", help="study dates, YYYYMMDD-YYYYMMDD (either side may be open)"
    )
    find.add_argument("--modality", default="MG", help="modality in study (default MG; '' for any)")
    find.add_argument(
        "--format", choices=("table", "json"), default="table", help="the output (default table)"
    )
    find.set_defaults(run=_pacs_find)
    get.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="where the study's instances are written"
    )
    get.add_argument(
        "--move-port",
        type=int,
        metavar="PORT",
        help="use C-MOVE to this node (the calling AE title), receiving on PORT, for a PACS without C-GET",
    )
    get.set_defaults(run=_pacs_get)


def _pacs_source(args: argparse.Namespace):
    """The PACS the find or get command names: DIMSE (node and calling AE title) or DICOMweb."""
    from app.node.config import check_ae_title, read_nodes, resolve_node
    from app.node.query import DicomwebSource, DimseSource

    if args.dicomweb:
        return DicomwebSource(args.dicomweb)
    config = read_nodes(args.nodes)
    node = resolve_node(args.pacs, config)
    return DimseSource(node, check_ae_title(args.calling_ae or config.calling_ae))


def _pacs_find(args: argparse.Namespace) -> int:
    from app.node.query import StudyQuery, studies_json, studies_table

    studies = _pacs_source(args).find(StudyQuery.of(args.patient_id, args.date, args.modality))
    print(studies_json(studies) if args.format == "json" else studies_table(studies))
    return EXIT_DONE


def _pacs_get(args: argparse.Namespace) -> int:
    from app.node.query import DimseSource

    def progress(done: int, total: int | None) -> None:
        print(
            f"\r{done}/{total if total is not None else '?'} instances", end="", file=sys.stderr, flush=True
        )

    source = _pacs_source(args)
    if args.move_port is not None and isinstance(source, DimseSource):
        source = dataclasses.replace(source, move_port=args.move_port)
    try:
        summary = source.get(args.study, args.out, progress)
    finally:
        print(file=sys.stderr)  # ends the progress line
    print(f"{summary.received} instances received, {summary.skipped} already present", file=sys.stderr)
    print(summary.folder)
    return EXIT_DONE


def _register_db(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("db", help="database roles for a reader study on PostgreSQL")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, run, who in (
        ("grant-reader", _db_grant_reader, "a reader: their cases, their own readings, the model as shown"),
        ("grant-coordinator", _db_grant_coordinator, "the study coordinator: creates studies, analyses"),
    ):
        grant = actions.add_parser(action, help=f"create or update the login role of {who}")
        grant.add_argument("name", metavar="NAME", help="the role's name (a reader's: the reader's name)")
        grant.add_argument(
            "--password-file", type=Path, required=True, metavar="F", help="a file holding the password"
        )
        grant.add_argument("--db", metavar="URL", required=True, help="the PostgreSQL URL of its owner")
        grant.set_defaults(run=run)


def _db_grant_reader(args: argparse.Namespace) -> int:
    from app.store.roles import grant_reader

    return _db_grant(args, grant_reader, "reader")


def _db_grant_coordinator(args: argparse.Namespace) -> int:
    from app.store.roles import grant_coordinator

    return _db_grant(args, grant_coordinator, "coordinator")


def _db_grant(args: argparse.Namespace, grant: Callable[[str, str, str], None], kind: str) -> int:
    password = args.password_file.read_text(encoding="utf-8").rstrip("\r\n")
    grant(args.db, args.name, password)
    print(f"role {args.name}: {kind}")
    return EXIT_DONE


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    command: Command = args.run
    try:
        return command(args)
    except GMICError as error:
        print(f"{_name(args)}: {error}", file=sys.stderr)
    except OSError as error:
        print(
            f"{_name(args)}: {error.filename}: {error.strerror}" if error.filename else error, file=sys.stderr
        )
    return EXIT_REFUSED


def _name(args: argparse.Namespace) -> str:
    """``gmic COMMAND [ACTION]``, as the user typed it."""
    return " ".join(["gmic", args.command, *([args.action] if getattr(args, "action", None) else [])])


if __name__ == "__main__":
    sys.exit(main())
