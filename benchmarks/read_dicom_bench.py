"""Time reading one full-size (4096 x 3328) synthetic mammogram stored as JPEG 2000 lossless: parse,
decode, Modality LUT, orientation. Target (issue 2/7): under 1.5 s on the 2-core CI machine.

Usage: python -m benchmarks.read_dicom_bench [--runs N] [--transfer-syntax jpeg2000-lossless|explicit-little]
       [--level K]   (K > 0: JPEG 2000 resolution level K, as a model of input scale 1/2^K reads it)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.common import median_seconds
from gmic_core.imaging import View, read_dicom
from gmic_core.imaging.decoders import Decoding
from gmic_core.synthetic import FULL_SIZE, TRANSFER_SYNTAXES, SynthesisConfig, generate_exam, write_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--transfer-syntax", choices=sorted(TRANSFER_SYNTAXES), default="jpeg2000-lossless")
    parser.add_argument(
        "--level", type=int, default=0, help="JPEG 2000 resolution level (default 0: full size)"
    )
    args = parser.parse_args()
    decoding = Decoding(level=args.level)
    exam = generate_exam(seed=0, index=0, config=SynthesisConfig(size=FULL_SIZE))
    with tempfile.TemporaryDirectory() as folder:
        for view in (View.L_CC, View.R_MLO):
            path = Path(folder) / f"{view.value}.dcm"
            write_image(path, exam, view, args.transfer_syntax)
            size_mb = path.stat().st_size / 2**20
            median, timings = median_seconds(lambda path=path: read_dicom(path, decoding=decoding), args.runs)
            shape = read_dicom(path, decoding=decoding).pixels.shape
            print(
                f"read_dicom {view.value} {FULL_SIZE[0]} x {FULL_SIZE[1]} {args.transfer_syntax} ({size_mb:.1f} MiB) "
                f"as {shape[0]} x {shape[1]}: "
                f"median {median:.3f} s of {args.runs} runs (min {min(timings):.3f}, max {max(timings):.3f})"
            )


if __name__ == "__main__":
    main()
