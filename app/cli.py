"""The ``gmic`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from gmic_core import synthetic

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gmic", description="GMIC Reader: mammography AI workstation tools")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in (_register_synth,):
        register(commands)
    return parser


def _register_synth(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("synth", help="write synthetic screening exams (DICOM) and a manifest")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    parser.add_argument("--exams", type=int, default=10, help="how many exams (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed writes the same exams")
    parser.add_argument("--size", type=int, nargs=2, default=synthetic.FULL_SIZE, metavar=("ROWS", "COLUMNS"))
    syntaxes = sorted(synthetic.TRANSFER_SYNTAXES)
    parser.add_argument("--transfer-syntax", choices=syntaxes, default="jpeg2000-lossless")
    parser.add_argument("--photometric", choices=synthetic.PHOTOMETRICS, default="MONOCHROME2")
    parser.add_argument("--bits", type=int, choices=(12, 14), default=12, help="bits stored")
    defaults = synthetic.SynthesisConfig()
    parser.add_argument("--malignant-fraction", type=float, default=defaults.malignant_fraction)
    parser.add_argument("--benign-fraction", type=float, default=defaults.benign_fraction)
    parser.set_defaults(run=_synth)


def _synth(args: argparse.Namespace) -> int:
    manifest = synthetic.write_dataset(
        args.out_dir,
        exams=args.exams,
        seed=args.seed,
        size=tuple(args.size),
        transfer_syntax=args.transfer_syntax,
        photometric=args.photometric,
        bits_stored=args.bits,
        malignant_fraction=args.malignant_fraction,
        benign_fraction=args.benign_fraction,
    )
    print(manifest)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    command: Command = args.run
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
