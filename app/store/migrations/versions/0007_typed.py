"""Typed vocabularies, unanswered recalls, and the crossover's aided-first arm.

* CHECK constraints on the closed vocabularies (``app.store.models.vocabulary``): ``images.view``
  and ``view_predictions.view`` (R-CC, L-CC, R-MLO, L-MLO; an extra image has none),
  ``breast_predictions.laterality`` (L, R), ``studies.protocol``, ``study_cases.breasts`` (LR, L, R),
  ``readings.phase``, ``triage_runs.status`` and ``triage_failures.stage``. ``readings.laterality``
  and ``ground_truth.laterality`` had theirs from 0001. Existing rows satisfy them already: every value was written from these enums by the
  application, so the constraints are added without rewriting data (an out-of-vocabulary value
  written by hand makes the upgrade fail, naming the constraint).
* ``readings.recall`` may be NULL: a recall the reader did not give is unknown, not "no recall".
  Readings stored before keep what they say (they cannot be told apart).
* On PostgreSQL, a crossover study's aided-first arm no longer sees the model in its unaided session:
  the model is shown for a case until the reader has read it aided (0006 kept showing it). The
  unaided-first arm is unchanged: shown once the reader has read the case unaided.

On SQLite the tables are rebuilt (batch mode); the immutability triggers of ``readings`` go with the
old table and are created again exactly as 0001 made them. A downgrade fails while any reading has
no recall.

Revision ID: 0007_typed
Revises: 0006_studies
Create Date: 2026-12-06
"""

import importlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_typed"
down_revision: str | None = "0006_studies"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_0001 = importlib.import_module("app.store.migrations.versions.0001_initial")
_0006 = importlib.import_module("app.store.migrations.versions.0006_studies")

VIEWS = "('R-CC', 'L-CC', 'R-MLO', 'L-MLO')"
# (table, constraint name, condition) as app.store.models declares them.
CHECKS = (
    ("images", "ck_images_view", f"view IN {VIEWS}"),
    ("view_predictions", "ck_view_predictions_view", f"view IN {VIEWS}"),
    ("breast_predictions", "ck_breast_predictions_laterality", "laterality IN ('R', 'L')"),
    (
        "studies",
        "ck_studies_protocol",
        "protocol IN ('blinded', 'sequential', 'ai_assisted', 'crossover')",
    ),
    ("study_cases", "ck_study_cases_breasts", "breasts IN ('LR', 'L', 'R')"),
    ("readings", "ck_readings_phase", "phase IN ('unaided', 'aided')"),
    ("triage_runs", "ck_triage_runs_status", "status IN ('running', 'finished', 'cancelled', 'interrupted')"),
    (
        "triage_failures",
        "ck_triage_failures_stage",
        "stage IN ('scan', 'load', 'preprocess', 'inference', 'export')",
    ),
)
CROSSOVER_SHOWN = f"""
    EXISTS (
        SELECT 1 FROM study_cases c JOIN studies s ON s.id = c.study_id
        JOIN study_readers e ON e.study_id = s.id AND e.reader_id = {_0006.OWN_READER}
        WHERE c.exam_id = model_runs.exam_id AND s.model_key = model_runs.model_key
          AND s.protocol = 'crossover'
          AND CASE WHEN e.aided_first
            THEN NOT EXISTS (SELECT 1 FROM readings r
                             WHERE r.study_case_id = c.id AND r.reader_id = e.reader_id AND r.phase = 'aided')
            ELSE EXISTS (SELECT 1 FROM readings r
                         WHERE r.study_case_id = c.id AND r.reader_id = e.reader_id AND r.phase = 'unaided')
          END
    )"""
MODEL_VISIBLE = f"(({_0006.SHOWN})) OR {CROSSOVER_SHOWN}) AND NOT EXISTS ({_0006.HIDDEN}"


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER readings_no_{action}")
    for table, name, condition in CHECKS:
        with op.batch_alter_table(table) as batch:
            batch.create_check_constraint(op.f(name), condition)
            if table == "readings":
                batch.alter_column("recall", existing_type=sa.Boolean(), nullable=True)
    if sqlite:
        for statement in _0001.SQLITE_GUARDS:
            op.execute(statement)
    else:
        _0006._model_policy(MODEL_VISIBLE)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER readings_no_{action}")
    else:
        _0006._model_policy(_0006.MODEL_VISIBLE)
    for table, name, _condition in CHECKS:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(name), type_="check")
            if table == "readings":
                batch.alter_column("recall", existing_type=sa.Boolean(), nullable=False)
    if sqlite:
        for statement in _0001.SQLITE_GUARDS:
            op.execute(statement)
