"""``gmic pacs get`` from Orthanc: one study-level request against one request per instance.

An Orthanc (``.ci/orthanc``, 127.0.0.1, free ports, stopped by its PID) holds one study of N
instances (synthetic mammograms relabelled into one study, uncompressed). Each round retrieves it
twice per protocol (C-GET, WADO-RS), alternating the order: into an empty folder (the whole study in
one request) and into a folder that already holds one instance (the N - 1 others one request each,
the resume path). Figures are medians over the rounds, in instances per second. Usage:

    python -m benchmarks.pacs_get_bench [--instances 40] [--size 1024 832] [--rounds 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from app.node.config import parse_address
from app.node.query import DicomwebSource, DimseSource
from gmic_core import synthetic
from tests.app.node_servers import Orthanc, storescu


def _study(folder: Path, instances: int, size: tuple[int, int]) -> tuple[str, list[Path]]:
    synthetic.write_dataset(
        folder / "exams", exams=-(-instances // 4), seed=3, size=size, transfer_syntax="explicit-little"
    )
    study = generate_uid()
    files = []
    for file in sorted((folder / "exams").rglob("*.dcm"))[:instances]:
        dataset = pydicom.dcmread(file)
        dataset.StudyInstanceUID, dataset.PatientID = study, "BENCH"
        target = folder / "study" / f"{len(files)}.dcm"
        target.parent.mkdir(exist_ok=True)
        dataset.save_as(target, enforce_file_format=True)
        files.append(target)
    return study, files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=40)
    parser.add_argument("--size", type=int, nargs=2, default=(1024, 832))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gmic-get-bench-"))
    orthanc = Orthanc(work / "orthanc")
    try:
        study, files = _study(work, args.instances, tuple(args.size))
        megabytes = sum(file.stat().st_size for file in files) / 1e6
        orthanc.start()
        if storescu("GMIC", "ORTHANC", "127.0.0.1", str(orthanc.dicom_port), files).returncode:
            raise RuntimeError("storescu to Orthanc failed")
        sources = {
            "C-GET": DimseSource(parse_address(orthanc.address), "GMIC"),
            "WADO-RS": DicomwebSource(orthanc.dicomweb),
        }
        rates: dict[tuple[str, str], list[float]] = {}
        for round_ in range(args.rounds):
            modes = ("study", "per instance") if round_ % 2 == 0 else ("per instance", "study")
            for name, source in sources.items():
                for mode in modes:
                    out = work / "out"
                    shutil.rmtree(out, ignore_errors=True)
                    if mode == "per instance":
                        source.get(study, out)
                        for extra in sorted(out.glob("*.dcm"))[1:]:
                            extra.unlink()
                    started = time.perf_counter()
                    retrieved = source.get(study, out)
                    elapsed = time.perf_counter() - started
                    rates.setdefault((name, mode), []).append(retrieved.received / elapsed)
        print(f"{args.instances} instances, {megabytes:.1f} MB, {args.rounds} rounds (medians)")
        for (name, mode), values in rates.items():
            print(f"{name:8} {mode:13} {statistics.median(values):8.1f} instances/s")
    finally:
        orthanc.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
