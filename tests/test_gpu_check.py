"""benchmarks/gpu_check.sh in its CPU mode: every row runs (at an eighth of the published input size,
on two small exams, without compilation) and the table is printed; on a GPU the same script measures
the CUDA path (docs/benchmarks.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
ROWS = (
    "| sample exam fp32 on cpu vs CPU fp32 |",
    "| sample exam bf16 on cpu vs CPU fp32 |",
    "| exam forward fp32 |",
    "| exam forward bf16 |",
    "| peak memory per exam GMIC-ResNet-18 |",
    "| peak memory per exam ResNet-34 |",
    "| JPEG 2000 decode 512x416 by pydicom |",
    "| triage 2 JPEG 2000 exams 512x416",
    "| workstation analysis, offscreen |",
)


def test_gpu_check_runs_in_cpu_mode(reference_dir, tmp_path):
    arguments = ["--cpu", "--scale", "0.125", "--exams", "2", "--size", "512", "416", "--repeats", "1"]
    completed = subprocess.run(
        [
            "bash",
            str(REPO_ROOT / "benchmarks" / "gpu_check.sh"),
            *arguments,
            "--no-compile",
            "--cache",
            str(tmp_path),
        ],
        env={
            **os.environ,
            "PYTHON": sys.executable,
            "GMIC_REFERENCE_DIR": str(reference_dir),
            "PYTHONPATH": str(REPO_ROOT),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    table = completed.stdout[completed.stdout.index("| check |") :]
    for row in ROWS:
        assert row in table
    assert "FAIL" not in table
    assert table.count("| pass |") == 5  # the two agreements, the decode, the triage run, the workstation
