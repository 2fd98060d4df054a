"""Start the GMIC Reader workstation: ``python main.py [EXAM_OR_FOLDER...] [--weights FILE...]``."""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from app.gui.main import main as run_workstation
    except ModuleNotFoundError as error:
        if error.name != "app.gui.main":
            raise
        print(
            "The reading workstation is not part of this build yet (issue 5/7). "
            "The command-line tools work: run `gmic --help`.",
            file=sys.stderr,
        )
        return 2
    return run_workstation(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
