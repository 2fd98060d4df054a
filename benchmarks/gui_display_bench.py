"""Display speed of the reading workstation on four 4096 x 3328 16-bit views (issue 5/7): time to
show an uncompressed and a JPEG 2000 exam, window/level frames per second, overlay toggle time and
the longest GUI-thread stall. Targets: under 1 s, 20 frames/s or more, under 100 ms, under 50 ms.

Usage: QT_QPA_PLATFORM=offscreen python -m benchmarks.gui_display_bench [--runs N] [--frames N]
(the measuring code lives in app.gui.display_bench: Qt stays in app/gui)
"""

from __future__ import annotations

import argparse

from app.gui.display_bench import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="exam openings and overlay toggles timed")
    parser.add_argument("--frames", type=int, default=60, help="window/level frames timed")
    args = parser.parse_args()
    run(runs=args.runs, frames=args.frames)


if __name__ == "__main__":
    main()
