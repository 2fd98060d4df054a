"""A reading workstation in a separate process, for the durability tests:

    python -m tests.app.study_worker URL STUDY READER

reads every remaining case of STUDY as READER, submitting one reading per breast, and prints
``submitted <case> <reading ids>`` after each submission returns (that is, after it committed). A case
that another process submitted first is skipped (``raced <case>``)."""

from __future__ import annotations

import sys

from app.reading.readings import Estimate
from app.store import open_store
from app.study.service import AlreadySubmittedError, StaleCaseError, StudyService


def main(url: str, study: str, reader: str) -> None:
    session = StudyService(open_store(url)).open_session(study, reader)
    count = 0
    while (task := session.current()) is not None:
        count += 1
        estimates = {side: Estimate((count % 101) / 100, count % 7, count % 2 == 0) for side in task.breasts}
        try:
            readings = session.submit(task, estimates, model_shown=True, confirmed=True)
        except (AlreadySubmittedError, StaleCaseError):
            print(f"raced {task.case_key}", flush=True)
            continue
        print(f"submitted {task.case_key} {' '.join(str(r.id) for r in readings)}", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
