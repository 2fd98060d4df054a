"""Render the Secondary Capture of a demo exam (the workstation's first demo exam by default) to
docs/secondary-capture.png, downscaled: the exam is written as DICOM, run through the demo model and
exported by gmic_core.reporting exactly as ``gmic predict --dicom-out`` does, and the exported SC's
pixels are read back.

Usage: python -m benchmarks.render_secondary_capture [--index I] [--width PX] [--out FILE]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pydicom
from PIL import Image

from app.gui.demo import DEMO_SEED, DEMO_SYNTHESIS
from app.gui.settings import DEMO_MODEL
from benchmarks.common import REPO_ROOT
from gmic_core.imaging import load_exam
from gmic_core.inference import Predictor, ViewImage, load_standard_views
from gmic_core.reporting.export import export_exam
from gmic_core.reporting.identity import Algorithm
from gmic_core.synthetic import generate_exam, write_image

PALETTE_COLOURS = 256  # a palette keeps the picture small enough for the README


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", type=int, default=0, help="which demo exam")
    parser.add_argument("--width", type=int, default=800, help="width of the picture in pixels")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "secondary-capture.png")
    args = parser.parse_args()
    exam = generate_exam(DEMO_SEED, args.index, DEMO_SYNTHESIS)
    predictor = Predictor.from_files([DEMO_MODEL], device="cpu")
    with tempfile.TemporaryDirectory() as folder:
        for view in exam.views:
            write_image(Path(folder) / f"{view.value}.dcm", exam, view)
        loaded = load_exam(folder)
        mammograms = load_standard_views(loaded)
        images = {view: ViewImage(m.pixels, loaded.horizontal_flip) for view, m in mammograms.items()}
        result = predictor.predict(loaded.exam_id, images, keep_patches=False)
        paths = export_exam(result, mammograms, Algorithm.of(predictor.checkpoints), Path(folder) / "out")
        (capture,) = [path for path in paths if path.name.startswith("sc_")]
        pixels = pydicom.dcmread(capture).pixel_array
    picture = Image.fromarray(pixels)
    height = round(picture.height * args.width / picture.width)
    small = picture.resize((args.width, height), Image.LANCZOS).quantize(PALETTE_COLOURS)
    small.save(args.out, optimize=True)
    print(f"{args.out}: demo exam {args.index}, {args.out.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
