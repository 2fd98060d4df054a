"""Reader studies a coordinator runs: the roster, exclusions, crossover designs and the reader's form.

* ``study_readers``: the readers the coordinator enrolled in a study, in order (the row of the
  study's balanced design each reads) and, in a crossover study, whether the reader reads aided first.
  Readers already reading a study are enrolled in the order they started.
* ``study_exclusions``: a reader or one reading left out of the analysis, with its reason and time.
* ``studies``: ``washout_days`` (crossover), ``require_assessment`` (BI-RADS and recall required) and
  ``confirm_submit`` (the panel asks before Submit).
* ``readings``: ``paused_s`` (time paused within the reading) and ``confirmed`` (the contradictions
  the reader confirmed).

On PostgreSQL a reader's role reads its own roster and exclusion rows, and a crossover study shows
the model to a reader in the aided session only: once the reader has read the case unaided, or from
the start in the aided-first arm. The coordinator's role reads and writes both new tables.

Revision ID: 0006_studies
Revises: 0005_ray
Create Date: 2026-12-06
"""

import importlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_studies"
down_revision: str | None = "0005_ray"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_0004 = importlib.import_module("app.store.migrations.versions.0004_reading")
READER, COORDINATOR, OWN_READER = _0004.READER, _0004.COORDINATOR, _0004.OWN_READER
NEW_TABLES = ("study_readers", "study_exclusions")
# 0004's rule is "shown by some study's protocol AND NOT hidden by a case still to read unaided";
# a crossover study's aided session is one more way to be shown, under the same exception.
SHOWN, HIDDEN = _0004.MODEL_SHOWN.split(") AND NOT EXISTS (")
CROSSOVER_SHOWN = f"""
    EXISTS (
        SELECT 1 FROM study_cases c JOIN studies s ON s.id = c.study_id
        JOIN study_readers e ON e.study_id = s.id AND e.reader_id = {OWN_READER}
        WHERE c.exam_id = model_runs.exam_id AND s.model_key = model_runs.model_key
          AND s.protocol = 'crossover'
          AND (e.aided_first OR EXISTS (
                SELECT 1 FROM readings r WHERE r.study_case_id = c.id AND r.phase = 'unaided'))
    )"""
MODEL_VISIBLE = f"(({SHOWN})) OR {CROSSOVER_SHOWN}) AND NOT EXISTS ({HIDDEN}"


def upgrade() -> None:
    op.create_table(
        "study_readers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("reader_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("aided_first", sa.Boolean(), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_study_readers_study_id_studies"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["reader_id"], ["readers.id"], name=op.f("fk_study_readers_reader_id_readers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study_readers")),
        sa.UniqueConstraint("study_id", "reader_id", name="uq_study_readers_reader"),
        sa.UniqueConstraint("study_id", "position", name="uq_study_readers_position"),
    )
    op.create_index(op.f("ix_study_readers_study_id"), "study_readers", ["study_id"])
    op.create_index(op.f("ix_study_readers_reader_id"), "study_readers", ["reader_id"])
    op.create_table(
        "study_exclusions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("reader_id", sa.Integer(), nullable=True),
        sa.Column("reading_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=2000), nullable=False),
        sa.Column("excluded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "reader_id IS NOT NULL OR reading_id IS NOT NULL", name=op.f("ck_study_exclusions_what")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            name=op.f("fk_study_exclusions_study_id_studies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reader_id"], ["readers.id"], name=op.f("fk_study_exclusions_reader_id_readers")
        ),
        sa.ForeignKeyConstraint(
            ["reading_id"], ["readings.id"], name=op.f("fk_study_exclusions_reading_id_readings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study_exclusions")),
    )
    op.create_index(op.f("ix_study_exclusions_study_id"), "study_exclusions", ["study_id"])
    op.add_column("studies", sa.Column("washout_days", sa.Double(), nullable=True))
    op.add_column(
        "studies", sa.Column("require_assessment", sa.Boolean(), nullable=False, server_default=sa.true())
    )
    op.add_column(
        "studies", sa.Column("confirm_submit", sa.Boolean(), nullable=False, server_default=sa.true())
    )
    op.add_column("readings", sa.Column("paused_s", sa.Double(), nullable=True))
    op.add_column("readings", sa.Column("confirmed", sa.String(length=2000), nullable=True))
    # Readers already reading a study are its roster, in the order they started.
    op.execute(
        "INSERT INTO study_readers (study_id, reader_id, position, aided_first, enrolled_at) "
        "SELECT study_id, reader_id, ROW_NUMBER() OVER (PARTITION BY study_id ORDER BY MIN(id)) - 1, "
        "false, CURRENT_TIMESTAMP FROM assignments GROUP BY study_id, reader_id"
    )
    if op.get_bind().dialect.name == "postgresql":
        _grant()


def _grant() -> None:
    op.execute(f"GRANT SELECT ON {', '.join(NEW_TABLES)} TO {READER}")
    for table in NEW_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY coordinator_all ON {table} TO {COORDINATOR} USING (true) WITH CHECK (true)"
        )
        op.execute(
            f"CREATE POLICY reader_select ON {table} FOR SELECT TO {READER} USING (reader_id = {OWN_READER})"
        )
    _model_policy(MODEL_VISIBLE)


def _model_policy(visible: str) -> None:
    op.execute("DROP POLICY reader_select ON model_runs")
    op.execute(f"CREATE POLICY reader_select ON model_runs FOR SELECT TO {READER} USING ({visible})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _model_policy(_0004.MODEL_SHOWN)
    op.drop_column("readings", "confirmed")
    op.drop_column("readings", "paused_s")
    op.drop_column("studies", "confirm_submit")
    op.drop_column("studies", "require_assessment")
    op.drop_column("studies", "washout_days")
    op.drop_table("study_exclusions")
    op.drop_table("study_readers")
