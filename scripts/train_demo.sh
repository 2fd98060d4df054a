#!/usr/bin/env bash
# The GPU stages of the embedded demo model (resources/models/), as run on one GPU machine with 16 cores:
# synthetic training exams (DATA, seed DATA_SEED, SYNTH_ARGS added to gmic synth's), the crop cache,
# then the CONFIG files given (stage 1: configs/demo/demo.toml; several run side by side) for
# what remains of BUDGET seconds. Each run's best checkpoint (by validation malignant AUC) and its last,
# in half precision, with metrics and logs, end up in PACK_DIR as demo-run.tar split into 15 MB parts.
# RESUME=1 continues the runs (on the same machine) instead of starting them afresh.
set -euo pipefail
cd "$(dirname "$0")/.."

EXAMS=${EXAMS:-480}
SIZE=${SIZE:-"4096 3328"}
WORKERS=${WORKERS:-16}
BUDGET=${BUDGET:-550}  # seconds for the whole script; training gets what data preparation leaves
PACK_DIR=${PACK_DIR:-runs/pack}
GMIC=${GMIC:-"python3 -m app.cli"}
DATA=${DATA:-data/demo-train}
DATA_SEED=${DATA_SEED:-1}
SYNTH_ARGS=${SYNTH_ARGS:-}
RESUME=${RESUME:-0}
CONFIGS=("$@")
[ ${#CONFIGS[@]} -gt 0 ] || CONFIGS=(configs/demo/demo.toml)

started=$SECONDS
if [ ! -f "$DATA/manifest.csv" ]; then
    # shellcheck disable=SC2086
    $GMIC synth "$DATA" --exams "$EXAMS" --seed "$DATA_SEED" --size $SIZE --transfer-syntax explicit-little --workers "$WORKERS" \
        $SYNTH_ARGS
    echo "synth: $((SECONDS - started)) s"
fi
$GMIC train "${CONFIGS[0]}" --prepare-only --workers "$WORKERS"
echo "crop cache: $((SECONDS - started)) s"

TRAIN_SECONDS=$((BUDGET - (SECONDS - started) - 40))
mkdir -p runs
(sleep 120 && nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv 2>/dev/null || true) &
for config in "${CONFIGS[@]}"; do
    name=$(basename "$config" .toml)
    [ "$RESUME" = 1 ] || rm -rf "runs/$name"
    timeout "$TRAIN_SECONDS" $GMIC train "$config" > "runs/$name.log" 2> "runs/$name.err" &
done
wait || true
echo "training: $((SECONDS - started)) s"

rm -rf "$PACK_DIR"
mkdir -p "$PACK_DIR/files"
for config in "${CONFIGS[@]}"; do
    name=$(basename "$config" .toml)
    run=runs/$name
    cp "$run/metrics.csv" "$PACK_DIR/files/$name-metrics.csv" || true
    cp "runs/$name.log" "$PACK_DIR/files/$name.log"
    tr '\r' '\n' < "runs/$name.err" | tail -n 40 > "$PACK_DIR/files/$name.err"
    for kind in best last; do
        [ -f "$run/$kind.pt" ] || continue
        python3 - "$run/$kind.pt" "$PACK_DIR/files/$name-$kind-fp16.pt" <<'PY'
import sys

from gmic_core.model import load_checkpoint, save_release

save_release(sys.argv[2], load_checkpoint(sys.argv[1]))
PY
    done
done
tar -cf "$PACK_DIR/demo-run.tar" -C "$PACK_DIR/files" .
split -b 15M -d "$PACK_DIR/demo-run.tar" "$PACK_DIR/demo-run.tar.part"
rm "$PACK_DIR/demo-run.tar"
echo "packed: $((SECONDS - started)) s"
