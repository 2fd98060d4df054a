"""Receive throughput of ``gmic listen`` against Orthanc, from the same storescu in one run, and the
time from the last instance of an exam to its results being in the PACS.

Both servers are started here (Orthanc by ``.ci/orthanc``), on 127.0.0.1 and free ports, and stopped
by their PIDs. Each round sends the same files (small synthetic four-view exams, uncompressed) once to
each server, alternating which goes first, each into a fresh store; figures are medians over the
rounds. Then one new exam goes to a listener with ``--quiet-seconds Q`` sending to the Orthanc: the
latency printed is from storescu's return to the results listed by Orthanc's REST API, and includes
the Q seconds of quiet, the scoring (a tiny untrained model on the CPU) and the sending. Usage:

    python -m benchmarks.listen_bench [--exams 25] [--size 1024 832] [--rounds 3] [--quiet 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pydicom
import torch

from gmic_core import synthetic
from gmic_core.config import GMICConfig
from gmic_core.model import GMIC, ModelCard, save_checkpoint
from tests.app.node_servers import ListenProcess, Orthanc, storescu, wait_for


def _send(calling: str, called: str, port: int, files: list[Path]) -> float:
    started = time.perf_counter()
    sent = storescu(calling, called, "127.0.0.1", str(port), files)
    elapsed = time.perf_counter() - started
    if sent.returncode != 0:
        raise RuntimeError(f"storescu to {called} failed: {sent.stderr[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exams", type=int, default=25)
    parser.add_argument("--size", type=int, nargs=2, default=(1024, 832))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quiet", type=float, default=2.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gmic-listen-bench-"))
    try:
        data = work / "exams"
        synthetic.write_dataset(
            data, exams=args.exams + 1, seed=5, size=tuple(args.size), transfer_syntax="explicit-little"
        )
        exams = [sorted(folder.glob("*.dcm")) for folder in sorted(data.glob("exam_*"))]
        files = [file for exam in exams[:-1] for file in exam]
        megabytes = sum(file.stat().st_size for file in files) / 1e6
        torch.manual_seed(0)
        weights = save_checkpoint(
            work / "tiny.pt", GMIC(GMICConfig.at_scale(0.125)), ModelCard("tiny seeded", "0", "none", "bench")
        )
        times: dict[str, list[float]] = {"gmic listen": [], "orthanc": []}
        for round_ in range(args.rounds):
            orthanc = Orthanc(work / f"orthanc{round_}")
            listener = ListenProcess(
                work / f"store{round_}",
                f"sqlite:///{work}/db{round_}.sqlite3",
                weights,
                ["--quiet-seconds", "3600"],
            )
            orthanc.start()
            listener.start()
            try:
                order = [("gmic listen", "GMIC", listener.port), ("orthanc", "ORTHANC", orthanc.dicom_port)]
                for name, called, port in order if round_ % 2 == 0 else order[::-1]:
                    times[name].append(_send("MODALITY", called, port, files))
            finally:
                listener.stop()
                orthanc.stop()
        print(f"{len(files)} instances, {megabytes:.1f} MB, {args.rounds} rounds (median):")
        for name, seconds in times.items():
            median = statistics.median(seconds)
            print(
                f"  {name:<12} {megabytes / median:7.1f} MB/s  {len(files) / median:7.1f} instances/s  ({median:.2f} s)"
            )
        ratio = statistics.median(times["orthanc"]) / statistics.median(times["gmic listen"])
        print(f"  gmic listen receives at {ratio:.2f} x Orthanc's rate (target: at least 0.5)")

        orthanc = Orthanc(work / "orthanc-latency")
        orthanc.start()
        listener = ListenProcess(
            work / "store-latency",
            f"sqlite:///{work}/latency.sqlite3",
            weights,
            ["--quiet-seconds", str(args.quiet), "--send-to", orthanc.address],
        )
        listener.start()
        try:
            exam = exams[-1]
            study = str(pydicom.dcmread(exam[0], stop_before_pixels=True).StudyInstanceUID)
            _send("MODALITY", "GMIC", listener.port, exam)
            last = time.perf_counter()
            wait_for(lambda: len(orthanc.study_instances(study)) >= 7, 600, "the results in Orthanc", 0.1)
            latency = time.perf_counter() - last
        finally:
            listener.stop()
            orthanc.stop()
        print(
            f"last instance to results in Orthanc: {latency:.1f} s "
            f"(of which {args.quiet:.1f} s quiet; {args.size[0]}x{args.size[1]} exam, tiny model on the CPU)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
