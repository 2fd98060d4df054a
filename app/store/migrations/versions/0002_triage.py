"""Triage: batch runs, the exams and files they could not score, and operating points per model.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "operating_points",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_key", sa.String(length=2000), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Double(), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=False),
        sa.Column("sensitivity", sa.Double(), nullable=False),
        sa.Column("specificity", sa.Double(), nullable=False),
        sa.Column("calibration_set", sa.String(length=2000), nullable=False),
        sa.Column("exams", sa.Integer(), nullable=False),
        sa.Column("positives", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "metric IN ('sensitivity', 'specificity')", name=op.f("ck_operating_points_metric")
        ),
        sa.CheckConstraint("target > 0 AND target <= 1", name=op.f("ck_operating_points_target")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operating_points")),
        sa.UniqueConstraint("model_key", "name", name="uq_operating_points_name"),
    )
    op.create_index(op.f("ix_operating_points_model_key"), "operating_points", ["model_key"])
    op.create_table(
        "triage_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_key", sa.String(length=2000), nullable=False),
        sa.Column("model_names", sa.JSON(), nullable=False),
        sa.Column("device", sa.String(length=200), nullable=False),
        sa.Column("paths", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scored", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triage_runs")),
    )
    op.create_index(op.f("ix_triage_runs_model_key"), "triage_runs", ["model_key"])
    op.create_table(
        "triage_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exam_id", sa.Integer(), nullable=True),
        sa.Column("path", sa.String(length=2000), nullable=True),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=4000), nullable=False),
        sa.Column("triage_run_id", sa.Integer(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("(exam_id IS NULL) <> (path IS NULL)", name=op.f("ck_triage_failures_subject")),
        sa.ForeignKeyConstraint(
            ["exam_id"], ["exams.id"], name=op.f("fk_triage_failures_exam_id_exams"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["triage_run_id"],
            ["triage_runs.id"],
            name=op.f("fk_triage_failures_triage_run_id_triage_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triage_failures")),
        sa.UniqueConstraint("exam_id", name=op.f("uq_triage_failures_exam_id")),
        sa.UniqueConstraint("path", name=op.f("uq_triage_failures_path")),
    )


def downgrade() -> None:
    op.drop_table("triage_failures")
    op.drop_table("triage_runs")
    op.drop_table("operating_points")
