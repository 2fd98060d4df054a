#!/usr/bin/env bash
# The recipe of the embedded demo model (resources/models/), as run on one GPU machine with 16 cores:
# synthetic training exams, the crop cache, then configs/demo.toml and configs/demo-lr3e-4.toml side by
# side for what remains of BUDGET seconds; the best checkpoint of each (by validation malignant AUC), in half precision,
# with metrics and logs, ends up in PACK_DIR as demo-run.tar split into 15 MB parts.
set -euo pipefail
cd "$(dirname "$0")/.."

EXAMS=${EXAMS:-480}
SIZE=${SIZE:-"4096 3328"}
WORKERS=${WORKERS:-16}
BUDGET=${BUDGET:-550}  # seconds for the whole script; training gets what data preparation leaves
PACK_DIR=${PACK_DIR:-runs/pack}
GMIC=${GMIC:-"python3 -m app.cli"}
CONFIGS=(configs/demo.toml configs/demo-lr3e-4.toml)

started=$SECONDS
if [ ! -f data/demo-train/manifest.csv ]; then
    # shellcheck disable=SC2086
    $GMIC synth data/demo-train --exams "$EXAMS" --seed 1 --size $SIZE --transfer-syntax explicit-little --workers "$WORKERS"
    echo "synth: $((SECONDS - started)) s"
fi
$GMIC train "${CONFIGS[0]}" --prepare-only --workers "$WORKERS"
echo "crop cache: $((SECONDS - started)) s"

TRAIN_SECONDS=$((BUDGET - (SECONDS - started) - 40))
mkdir -p runs
(sleep 120 && nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv 2>/dev/null || true) &
for config in "${CONFIGS[@]}"; do
    name=$(basename "$config" .toml)
    rm -rf "runs/$name"
    timeout "$TRAIN_SECONDS" $GMIC train "$config" > "runs/$name.log" 2> "runs/$name.err" &
done
wait || true
echo "training: $((SECONDS - started)) s"

mkdir -p "$PACK_DIR/files"
for config in "${CONFIGS[@]}"; do
    name=$(basename "$config" .toml)
    run=runs/$name
    cp "$run/metrics.csv" "$PACK_DIR/files/$name-metrics.csv" || true
    cp "runs/$name.log" "$PACK_DIR/files/$name.log"
    tr '\r' '\n' < "runs/$name.err" | tail -n 40 > "$PACK_DIR/files/$name.err"
    if [ -f "$run/best.pt" ]; then
        python3 - "$run/best.pt" "$PACK_DIR/files/$name-best-fp16.pt" <<'PY'
import sys

from gmic_core.model import load_checkpoint, save_checkpoint

loaded = load_checkpoint(sys.argv[1])
save_checkpoint(sys.argv[2], loaded.model, loaded.card, training=loaded.training, half_precision=True)
PY
    fi
done
tar -cf "$PACK_DIR/demo-run.tar" -C "$PACK_DIR/files" .
split -b 15M -d "$PACK_DIR/demo-run.tar" "$PACK_DIR/demo-run.tar.part"
rm "$PACK_DIR/demo-run.tar"
echo "packed: $((SECONDS - started)) s"
