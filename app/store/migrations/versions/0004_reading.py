"""Reading integrity and database roles: one revision per workstation reading, assignments written
once (the reading clock moves to the session), and on PostgreSQL the reader and coordinator roles
with their grants and row-level security policies.

Two group roles (cluster-wide, created once, never dropped here: other databases may use them):

* ``gmic_reader``: reads the studies, their case lists and exams, its own reader row, assignments
  and readings; inserts its own assignments and readings; reads a model result only where a study's
  protocol shows it to this reader (ai_assisted, or sequential once the reader has read the case
  unaided) and no blinded or sequential case of the same exam is still to be read unaided. No
  ground truth, no triage tables, no other reader's rows; no UPDATE, DELETE or TRUNCATE anywhere.
* ``gmic_coordinator``: reads and writes every table (readings stay immutable by the triggers of
  0001), so it creates studies, stores model results and runs analyses; no TRUNCATE.

Login roles join one of them with ``gmic db grant-reader`` / ``grant-coordinator``
(:mod:`app.store.roles`); a reader's login role is linked to the reader whose name it carries.

Revision ID: 0004_reading
Revises: 0003
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_reading"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READER = "gmic_reader"
COORDINATOR = "gmic_coordinator"
# The tables a reader reads whole: the study's case list and what is needed to open its exams.
READER_READS = ("alembic_version", "studies", "study_cases", "exams", "images")
OWN_READER = "(SELECT readers.id FROM readers WHERE readers.name = current_user)"
# Per table with row-level security: (privileges of the reader role, rows the reader role sees).
MODEL_SHOWN = """
    EXISTS (
        SELECT 1 FROM study_cases c JOIN studies s ON s.id = c.study_id
        WHERE c.exam_id = model_runs.exam_id AND s.model_key = model_runs.model_key
          AND (s.protocol = 'ai_assisted' OR (s.protocol = 'sequential' AND EXISTS (
                SELECT 1 FROM readings r WHERE r.study_case_id = c.id AND r.phase = 'unaided')))
    ) AND NOT EXISTS (
        SELECT 1 FROM study_cases c JOIN studies s ON s.id = c.study_id
        JOIN assignments a ON a.study_case_id = c.id
        WHERE c.exam_id = model_runs.exam_id AND s.protocol IN ('blinded', 'sequential')
          AND NOT EXISTS (SELECT 1 FROM readings r WHERE r.study_case_id = c.id AND r.phase = 'unaided')
    )"""
ROW_SECURITY = {
    "readers": ("SELECT", "name = current_user"),
    "assignments": ("SELECT, INSERT", f"reader_id = {OWN_READER}"),
    "readings": ("SELECT, INSERT", f"reader_id = {OWN_READER}"),
    "model_runs": ("SELECT", MODEL_SHOWN),
    "view_predictions": ("SELECT", "model_run_id IN (SELECT id FROM model_runs)"),
    "breast_predictions": ("SELECT", "model_run_id IN (SELECT id FROM model_runs)"),
    "saliency_maps": ("SELECT", "view_prediction_id IN (SELECT id FROM view_predictions)"),
    # Rows the reader role never sees: its policy is the coordinator's only.
    "ground_truth": ("", "false"),
}
READER_SEQUENCES = ("assignments_id_seq", "readings_id_seq")


def upgrade() -> None:
    # The reading clock lives in the reading session: a reader's role never updates its assignments.
    with op.batch_alter_table("assignments") as batch:
        batch.drop_column("opened_phase")
        batch.drop_column("opened_at")
    op.create_index(
        "uq_readings_workstation_revision",
        "readings",
        ["reader_id", "exam_id", "laterality", "revision"],
        unique=True,
        sqlite_where=sa.text("study_id IS NULL"),
        postgresql_where=sa.text("study_id IS NULL"),
    )
    if op.get_bind().dialect.name == "postgresql":
        _create_roles()


def _create_roles() -> None:
    for role in (READER, COORDINATOR):
        op.execute(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
            f"THEN CREATE ROLE {role} NOLOGIN; END IF; END $$"
        )
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {READER}, {COORDINATOR}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {COORDINATOR}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {COORDINATOR}")
    # Tables of later migrations are the coordinator's too; a reader gets only what is granted here.
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES "
        f"TO {COORDINATOR}"
    )
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {COORDINATOR}")
    op.execute(f"GRANT SELECT ON {', '.join(READER_READS)} TO {READER}")
    op.execute(f"GRANT USAGE ON SEQUENCE {', '.join(READER_SEQUENCES)} TO {READER}")
    for table, (privileges, visible) in ROW_SECURITY.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY coordinator_all ON {table} TO {COORDINATOR} USING (true) WITH CHECK (true)"
        )
        if not privileges:
            continue
        op.execute(f"GRANT {privileges} ON {table} TO {READER}")
        op.execute(f"CREATE POLICY reader_select ON {table} FOR SELECT TO {READER} USING ({visible})")
        if "INSERT" in privileges:
            op.execute(
                f"CREATE POLICY reader_insert ON {table} FOR INSERT TO {READER} WITH CHECK ({visible})"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ROW_SECURITY:
            for policy in ("coordinator_all", "reader_select", "reader_insert"):
                op.execute(f"DROP POLICY IF EXISTS {policy} ON {table}")
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        for role in (READER, COORDINATOR):
            op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {role}")
            op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {role}")
            op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
            op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role}")
    op.drop_index("uq_readings_workstation_revision", table_name="readings")
    with op.batch_alter_table("assignments") as batch:
        batch.add_column(sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("opened_phase", sa.String(length=8), nullable=True))
