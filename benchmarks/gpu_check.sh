#!/usr/bin/env bash
# The GPU path measured in one run, one table (benchmarks/gpu_check.py says what each row is).
#   benchmarks/gpu_check.sh            on the CUDA GPU: full-size model, 40 full-size JPEG 2000 exams
#   benchmarks/gpu_check.sh --cpu ...  the CPU mode (tests/test_gpu_check.py), any option of gpu_check.py
# GMIC_REFERENCE_DIR names the reference material (default ../shared/reference); PYTHON the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
# Bounded: the check must finish well inside 8 minutes on one GPU.
exec timeout --signal=TERM --kill-after=10 "${GMIC_GPU_CHECK_TIMEOUT_S:-450}" \
    "${PYTHON:-python}" -m benchmarks.gpu_check "$@"
