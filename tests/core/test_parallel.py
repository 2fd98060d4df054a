"""The project's process pools leave nothing behind when the interpreter ends: no traceback from
multiprocessing's exit handlers (the fork server, the resource tracker, the temporary folder) and no
leaked semaphore, as a user would see after a command or a test run ends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POOLS = """
from app.gui.decoding import decoding_pool
from app.triage.pipeline import _executor
from gmic_core.parallel import process_map

assert process_map(abs, [-1, -2, -3], workers=2) == [1, 2, 3]  # the fork server's pool
with _executor("processes", 2) as executor:  # triage reading ahead, from the same fork server
    assert list(executor.map(abs, [-4, -5])) == [4, 5]
pool = decoding_pool()  # the workstation's, spawned; closing the window shuts it down so
assert pool.submit(abs, -6).result(timeout=60) == 6
pool.shutdown(wait=True, cancel_futures=True)
print("pools done")
"""


def test_the_process_pools_end_without_a_trace_on_stderr():
    completed = subprocess.run(
        [sys.executable, "-c", POOLS], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "pools done"
    assert completed.stderr == ""
