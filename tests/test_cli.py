"""The ``gmic`` command line as a user meets it: a parser that builds without the heavy libraries,
help on every option, the demo model as the default with its notice, one message per problem and the
documented exit statuses."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import EXIT_DONE, EXIT_NOTHING_DONE, EXIT_REFUSED, EXIT_SOME_FAILED, build_parser, main
from app.defaults import DEMO_MODEL_NOTICE
from gmic_core.synthetic import write_dataset

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "numpy", "scipy", "sqlalchemy", "highdicom", "pydicom", "PIL", "skimage", "ray", "PySide6")


def test_building_the_parser_imports_nothing_heavy():
    script = (
        "import sys, contextlib, io\n"
        "from app.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "for command in ('synth', 'predict', 'evaluate', 'triage', 'calibrate', 'study', 'dataset'):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        main([command, '--help'])\n"
        f"print(sorted({{name.split('.')[0] for name in sys.modules}} & set({HEAVY!r})))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    assert completed.stdout.strip() == "[]", completed.stdout


def _parsers(parser: argparse.ArgumentParser, name: str = "gmic"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, child in action.choices.items():
                yield from _parsers(child, f"{name} {command}")


def test_every_option_and_argument_has_help():
    missing = [
        f"{name} {action.option_strings[0] if action.option_strings else action.metavar or action.dest}"
        for name, parser in _parsers(build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert missing == []


@pytest.fixture(scope="module")
def exam_folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exams")
    write_dataset(out, exams=1, seed=5, size=(512, 416), transfer_syntax="explicit-little")
    return out / "exam_0000"


def test_predict_exit_statuses_with_the_demo_model(exam_folder, tmp_path, capsys):
    missing = tmp_path / "absent"
    out = tmp_path / "results.json"
    assert main(["predict", str(exam_folder), "--device", "cpu", "--out", str(out)]) == EXIT_DONE
    assert capsys.readouterr().err.count(DEMO_MODEL_NOTICE) == 1
    assert json.loads(out.read_text())["model"]["names"] == ["GMIC-ResNet-18 synthetic demo"]

    assert main(["predict", str(exam_folder), str(missing), "--device", "cpu", "--out", str(out)]) == (
        EXIT_SOME_FAILED
    )
    err = capsys.readouterr().err.splitlines()
    assert f"gmic predict: {missing}: does not exist" in err
    assert sum(str(missing) in line for line in err) == 1  # the path is printed once, in one message

    assert main(["predict", str(missing), "--device", "cpu", "--out", str(out)]) == EXIT_NOTHING_DONE


def test_triage_exit_statuses(exam_folder, tmp_path, capsys):
    db = ["--db", f"sqlite:///{tmp_path / 'triage.sqlite'}", "--device", "cpu", "--overlap", "none"]
    missing = str(tmp_path / "absent")
    assert main(["triage", str(exam_folder), missing, *db]) == EXIT_SOME_FAILED
    assert DEMO_MODEL_NOTICE in capsys.readouterr().err
    assert main(["triage", missing, *db]) == EXIT_NOTHING_DONE
    assert main(["triage", str(exam_folder), *db]) == EXIT_DONE  # already scored: nothing left to do


def test_a_bad_checkpoint_is_one_message_and_refuses_the_command(exam_folder, tmp_path, capsys):
    weights = tmp_path / "absent.pt"
    assert main(["predict", str(exam_folder), "--weights", str(weights)]) == EXIT_REFUSED
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("gmic predict: ")
    assert err[0].count(str(weights)) == 1


def test_every_entry_point_runs_its_default_precision_under_one_model_key(tmp_path, capsys):
    """A site calibration is stored under the model key and looked up by it: ``gmic calibrate``,
    ``predict``, ``triage``, ``evaluate`` and the workstation, left at their defaults, must build the same
    key, from the precision "auto" resolved for the device (bf16 on a CPU with native bf16)."""
    from app.cli import _predictor
    from app.defaults import DEMO_MODEL
    from app.gui.main import build_parser as workstation_parser
    from app.gui.settings import Settings
    from app.gui.tasks import build_predictor
    from gmic_core.inference import resolve_precision, select_device

    keys = {}
    for command in (
        ["predict", "x"],
        ["triage", "x"],
        ["calibrate", "x"],
        ["evaluate", "x", "y", "--out", "z"],
    ):
        args = build_parser().parse_args(command)
        keys[command[0]] = _predictor(args, [DEMO_MODEL]).identity.key
    settings = Settings(tmp_path, weights=[DEMO_MODEL])
    assert workstation_parser().parse_args([]).precision == settings.precision
    context = argparse.Namespace(progress=lambda *progress: None)
    keys["workstation"] = build_predictor(
        context, settings.weights, settings.device, settings.precision
    ).identity.key
    resolved = resolve_precision(select_device("auto"), "auto")
    assert set(keys.values()) == {keys["predict"]}
    assert keys["predict"].endswith(f"|{resolved}|tta0")
