"""Start the GMIC Reader workstation: ``python main.py [EXAM_OR_FOLDER...] [--weights FILE...] [--db URL]``.

With no arguments it opens the embedded demo; ``python main.py --help`` lists the options."""

from __future__ import annotations

import sys

from app.gui.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
