"""Package a trained checkpoint as the workstation's embedded demo model.

    python scripts/package_demo_model.py runs/demo-stage3-beta1e-3/best.pt EVAL_DIR/evaluation.json \
        --version "0.2 (interim)" --recipe "..." [--card CONFIG] [--limitations ...] [--test-set ...]

writes ``resources/models/gmic-demo-r18.pt`` (half-precision weights; the model card carries the
measured test performance) and ``resources/models/gmic-demo-r18.md`` (the card and the evaluation
summary that ``gmic evaluate`` wrote beside the JSON), or the same into the folder ``--out``.
``scripts/train_demo.py`` ends with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from gmic_core.model import load_checkpoint, save_release
from gmic_core.training.config import TrainingConfig

MODELS = Path(__file__).resolve().parent.parent / "resources" / "models"
NAME = "gmic-demo-r18"


def package(
    checkpoint: Path,
    evaluation: Path,
    out: Path = MODELS,
    recipe: str = "",
    version: str | None = None,
    limitations: str | None = None,
    card_config: Path | None = None,
    test_set: str = "",
) -> Path:
    """Write ``OUT/gmic-demo-r18.pt`` (half precision, the card carrying the test performance of
    ``evaluation``) and its card ``OUT/gmic-demo-r18.md``; returns the weights' path."""
    report = json.loads(evaluation.read_text())
    loaded = load_checkpoint(checkpoint)
    base = (
        dataclasses.replace(loaded.card, **dataclasses.asdict(TrainingConfig.from_toml(card_config).card))
        if card_config
        else loaded.card
    )
    breast = report["breast"]
    performance = {
        **base.performance,
        "test_exams": report["exams"],
        "test_breast_malignant_auc": breast["malignant"]["auc"],
        "test_breast_malignant_auc_ci_low": breast["malignant"]["auc_ci"][0],
        "test_breast_malignant_auc_ci_high": breast["malignant"]["auc_ci"][1],
        "test_breast_benign_auc": breast["benign"]["auc"],
        "test_malignant_dsc_soft": report["dsc"]["malignant"]["soft"],
        "test_malignant_dsc_at_0_5": report["dsc"]["malignant"]["at_0_5"],
    }
    card = dataclasses.replace(
        base,
        version=version or base.version,
        performance=performance,
        limitations=limitations or base.limitations,
    )
    out.mkdir(parents=True, exist_ok=True)
    weights = save_release(out / f"{NAME}.pt", loaded, card)
    config = loaded.model.config
    lines = [
        f"# {card.name}, version {card.version} ({weights.name})",
        "",
        f"**{card.intended_use}**",
        "",
        f"- Architecture: GMIC with a {config.local_backbone} local network, top-t {config.top_t}, input "
        f"scale {config.input_scale} ({config.input_height} x {config.input_width} window of the resampled "
        "breast); half-precision weights.",
        f"- Training data: {card.training_data}.",
        f"- Limitations: {card.limitations}",
        f"- Licence: {card.license}.",
        f"- Recipe: {recipe}, then this script.",
        f"- Test set: {test_set or Path(report['manifest']).parent.name}, evaluated with "
        "`gmic evaluate resources/models/gmic-demo-r18.pt MANIFEST --baselines --out DIR`.",
        "",
        (evaluation.parent / "evaluation.md").read_text(),
    ]
    (out / f"{NAME}.md").write_text("\n".join(lines))
    return weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("evaluation", type=Path, help="evaluation.json of gmic evaluate --baselines")
    parser.add_argument(
        "--out", type=Path, default=MODELS, help=f"the folder to write into (default {MODELS})"
    )
    parser.add_argument("--version", help="the model card's version (default: the checkpoint's)")
    parser.add_argument("--limitations", help="the model card's limitations (default: the checkpoint's)")
    parser.add_argument(
        "--card", type=Path, help="a training config whose [card] to use (default: the checkpoint's card)"
    )
    parser.add_argument("--test-set", default="", help="how the test set was made (for the card)")
    parser.add_argument(
        "--recipe", required=True, help="the commands and configs that trained it (for the card)"
    )
    args = parser.parse_args()
    weights = package(
        args.checkpoint,
        args.evaluation,
        args.out,
        args.recipe,
        args.version,
        args.limitations,
        args.card,
        args.test_set,
    )
    print(weights)


if __name__ == "__main__":
    main()
