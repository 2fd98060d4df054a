"""Reader studies: case lists, protocols, randomised reading orders, blinded sessions (headless; the
workstation's panel calls :mod:`app.study.service`) and the paper's analyses (:mod:`app.study.analysis`)."""
