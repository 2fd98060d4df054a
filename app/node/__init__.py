"""The DICOM node (DESIGN.md: "app/node/"): the listener that receives exams and sends results
(:mod:`app.node.listener`, ``gmic listen``), PACS query and retrieval (:mod:`app.node.query`,
``gmic pacs find`` / ``gmic pacs get``), and the PACS nodes file (:mod:`app.node.config`).

Where the listener keeps its state: in its store folder (:mod:`app.node.spool`), not in the
database. The instances must be on disk before a C-STORE is acknowledged anyway, and each state
change (received, exported, sent) is then an atomic rename beside the data it describes, so disk and
state can never disagree after a crash; a database row would need a second, separate commit that a
SIGKILL could split from the file it describes. The database keeps what the triage pipeline already
keeps: the score (which also guarantees that an exam is never scored twice) and the failures.
"""
