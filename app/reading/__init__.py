"""The reading session, Qt-free (DESIGN.md, ``app.reading``): the exam open, its views on screen, the
model's result and analysis, the study case in hand, one answer to "what of the model may this reader
see now" (:mod:`app.reading.session`), and one owner of a reader's estimates and the rows that record
them (:mod:`app.reading.readings`). The workstation draws and forwards input; this package decides."""
