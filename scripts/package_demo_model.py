"""Package a trained checkpoint as the workstation's embedded demo model.

    python scripts/package_demo_model.py runs/demo-stage3-beta1e-3/best.pt EVAL_DIR/evaluation.json \
        --version "0.2 (interim)" --recipe "..." [--card CONFIG] [--limitations ...] [--test-set ...]

writes ``resources/models/gmic-demo-r18.pt`` (half-precision weights; the model card carries the
measured test performance) and ``resources/models/gmic-demo-r18.md`` (the card and the evaluation
summary that ``gmic evaluate`` wrote beside the JSON).
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("evaluation", type=Path, help="evaluation.json of gmic evaluate --baselines")
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
    report = json.loads(args.evaluation.read_text())
    loaded = load_checkpoint(args.checkpoint)
    base = (
        dataclasses.replace(loaded.card, **dataclasses.asdict(TrainingConfig.from_toml(args.card).card))
        if args.card
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
        version=args.version or base.version,
        performance=performance,
        limitations=args.limitations or base.limitations,
    )
    weights = save_release(MODELS / f"{NAME}.pt", loaded, card)
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
        f"- Recipe: {args.recipe}, then this script.",
        f"- Test set: {args.test_set or Path(report['manifest']).parent.name}, evaluated with "
        "`gmic evaluate resources/models/gmic-demo-r18.pt MANIFEST --baselines --out DIR`.",
        "",
        (args.evaluation.parent / "evaluation.md").read_text(),
    ]
    (MODELS / f"{NAME}.md").write_text("\n".join(lines))
    print(weights)


if __name__ == "__main__":
    main()
