"""Initial schema: exams, model results, reader studies.

Submitted readings are immutable: on SQLite and PostgreSQL a trigger refuses UPDATE and DELETE on
``readings`` (the ORM refuses too, on every backend).

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exams",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exam_key", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=2000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exams")),
        sa.UniqueConstraint("exam_key", name=op.f("uq_exams_exam_key")),
    )
    op.create_table(
        "readers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_readers")),
        sa.UniqueConstraint("name", name=op.f("uq_readers_name")),
    )
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("protocol", sa.String(length=16), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("model_key", sa.String(length=2000), nullable=True),
        sa.Column("hybrid_weight", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "hybrid_weight >= 0 AND hybrid_weight <= 1", name=op.f("ck_studies_hybrid_weight")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studies")),
        sa.UniqueConstraint("name", name=op.f("uq_studies_name")),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exam_id", sa.Integer(), nullable=False),
        sa.Column("view", sa.String(length=8), nullable=True),
        sa.Column("path", sa.String(length=2000), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("columns", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["exam_id"], ["exams.id"], name=op.f("fk_images_exam_id_exams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint("exam_id", "path", name="uq_images_path"),
    )
    op.create_index(op.f("ix_images_exam_id"), "images", ["exam_id"])
    op.create_table(
        "model_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exam_id", sa.Integer(), nullable=False),
        sa.Column("model_key", sa.String(length=2000), nullable=False),
        sa.Column("model_names", sa.JSON(), nullable=False),
        sa.Column("checkpoint_sha256", sa.JSON(), nullable=False),
        sa.Column("top_t", sa.JSON(), nullable=False),
        sa.Column("device", sa.String(length=200), nullable=False),
        sa.Column("precision", sa.String(length=8), nullable=False),
        sa.Column("tta", sa.Integer(), nullable=False),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("result_exam_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["exam_id"], ["exams.id"], name=op.f("fk_model_runs_exam_id_exams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_runs")),
    )
    op.create_index(op.f("ix_model_runs_exam_id"), "model_runs", ["exam_id"])
    op.create_index(op.f("ix_model_runs_model_key"), "model_runs", ["model_key"])
    op.create_table(
        "study_cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("exam_id", sa.Integer(), nullable=False),
        sa.Column("case_key", sa.String(length=200), nullable=False),
        sa.Column("breasts", sa.String(length=2), nullable=False),
        sa.ForeignKeyConstraint(["exam_id"], ["exams.id"], name=op.f("fk_study_cases_exam_id_exams")),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_study_cases_study_id_studies"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study_cases")),
        sa.UniqueConstraint("study_id", "case_key", name="uq_study_cases_case_key"),
    )
    op.create_index(op.f("ix_study_cases_exam_id"), "study_cases", ["exam_id"])
    op.create_index(op.f("ix_study_cases_study_id"), "study_cases", ["study_id"])
    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("reader_id", sa.Integer(), nullable=False),
        sa.Column("study_case_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_phase", sa.String(length=8), nullable=True),
        sa.ForeignKeyConstraint(["reader_id"], ["readers.id"], name=op.f("fk_assignments_reader_id_readers")),
        sa.ForeignKeyConstraint(
            ["study_case_id"],
            ["study_cases.id"],
            name=op.f("fk_assignments_study_case_id_study_cases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_assignments_study_id_studies"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
        sa.UniqueConstraint("study_id", "reader_id", "position", name="uq_assignments_position"),
        sa.UniqueConstraint("study_id", "reader_id", "study_case_id", name="uq_assignments_case"),
    )
    op.create_index(op.f("ix_assignments_reader_id"), "assignments", ["reader_id"])
    op.create_index(op.f("ix_assignments_study_id"), "assignments", ["study_id"])
    op.create_table(
        "breast_predictions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_run_id", sa.Integer(), nullable=False),
        sa.Column("laterality", sa.String(length=1), nullable=False),
        sa.Column("benign", sa.Double(), nullable=False),
        sa.Column("malignant", sa.Double(), nullable=False),
        sa.Column("views", sa.JSON(), nullable=False),
        sa.Column("missing_views", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_run_id"],
            ["model_runs.id"],
            name=op.f("fk_breast_predictions_model_run_id_model_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_breast_predictions")),
        sa.UniqueConstraint("model_run_id", "laterality", name="uq_breast_predictions_laterality"),
    )
    op.create_index(op.f("ix_breast_predictions_model_run_id"), "breast_predictions", ["model_run_id"])
    op.create_table(
        "ground_truth",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_case_id", sa.Integer(), nullable=False),
        sa.Column("laterality", sa.String(length=1), nullable=False),
        sa.Column("malignant", sa.Boolean(), nullable=False),
        sa.CheckConstraint("laterality IN ('L', 'R')", name=op.f("ck_ground_truth_laterality")),
        sa.ForeignKeyConstraint(
            ["study_case_id"],
            ["study_cases.id"],
            name=op.f("fk_ground_truth_study_case_id_study_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ground_truth")),
        sa.UniqueConstraint("study_case_id", "laterality", name="uq_ground_truth_laterality"),
    )
    op.create_index(op.f("ix_ground_truth_study_case_id"), "ground_truth", ["study_case_id"])
    op.create_table(
        "readings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_key", sa.String(length=64), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=True),
        sa.Column("reader_id", sa.Integer(), nullable=False),
        sa.Column("exam_id", sa.Integer(), nullable=False),
        sa.Column("study_case_id", sa.Integer(), nullable=True),
        sa.Column("laterality", sa.String(length=1), nullable=False),
        sa.Column("phase", sa.String(length=8), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("supersedes_id", sa.Integer(), nullable=True),
        sa.Column("probability", sa.Double(), nullable=False),
        sa.Column("birads", sa.Integer(), nullable=True),
        sa.Column("recall", sa.Boolean(), nullable=False),
        sa.Column("ai_shown", sa.Boolean(), nullable=False),
        sa.Column("model_score", sa.Double(), nullable=True),
        sa.Column("hybrid_weight", sa.Double(), nullable=True),
        sa.Column("hybrid", sa.Double(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_s", sa.Double(), nullable=False),
        sa.CheckConstraint("laterality IN ('L', 'R')", name=op.f("ck_readings_laterality")),
        sa.CheckConstraint(
            "birads IS NULL OR (birads >= 0 AND birads <= 6)", name=op.f("ck_readings_birads")
        ),
        sa.CheckConstraint("probability >= 0 AND probability <= 100", name=op.f("ck_readings_probability")),
        sa.CheckConstraint("submitted_at >= started_at", name=op.f("ck_readings_times")),
        sa.ForeignKeyConstraint(["exam_id"], ["exams.id"], name=op.f("fk_readings_exam_id_exams")),
        sa.ForeignKeyConstraint(["reader_id"], ["readers.id"], name=op.f("fk_readings_reader_id_readers")),
        sa.ForeignKeyConstraint(
            ["study_case_id"], ["study_cases.id"], name=op.f("fk_readings_study_case_id_study_cases")
        ),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], name=op.f("fk_readings_study_id_studies")),
        sa.ForeignKeyConstraint(
            ["supersedes_id"], ["readings.id"], name=op.f("fk_readings_supersedes_id_readings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_readings")),
        sa.UniqueConstraint(
            "study_id",
            "reader_id",
            "study_case_id",
            "laterality",
            "phase",
            "revision",
            name="uq_readings_revision",
        ),
        sa.UniqueConstraint("submission_key", "laterality", name="uq_readings_submission"),
    )
    op.create_index(op.f("ix_readings_exam_id"), "readings", ["exam_id"])
    op.create_index(op.f("ix_readings_reader_id"), "readings", ["reader_id"])
    op.create_index(op.f("ix_readings_study_id"), "readings", ["study_id"])
    op.create_table(
        "view_predictions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_run_id", sa.Integer(), nullable=False),
        sa.Column("view", sa.String(length=8), nullable=False),
        sa.Column("benign", sa.Double(), nullable=False),
        sa.Column("malignant", sa.Double(), nullable=False),
        sa.Column("y_global", sa.JSON(), nullable=False),
        sa.Column("y_local", sa.JSON(), nullable=False),
        sa.Column("y_fusion", sa.JSON(), nullable=False),
        sa.Column("attention", sa.JSON(), nullable=False),
        sa.Column("patch_locations", sa.JSON(), nullable=False),
        sa.Column("roi_boxes", sa.JSON(), nullable=False),
        sa.Column("roi_member", sa.JSON(), nullable=False),
        sa.Column("geometry", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_run_id"],
            ["model_runs.id"],
            name=op.f("fk_view_predictions_model_run_id_model_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_view_predictions")),
        sa.UniqueConstraint("model_run_id", "view", name="uq_view_predictions_view"),
    )
    op.create_index(op.f("ix_view_predictions_model_run_id"), "view_predictions", ["model_run_id"])
    op.create_table(
        "saliency_maps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("view_prediction_id", sa.Integer(), nullable=False),
        sa.Column("shape", sa.JSON(), nullable=False),
        sa.Column("dtype", sa.String(length=16), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["view_prediction_id"],
            ["view_predictions.id"],
            name=op.f("fk_saliency_maps_view_prediction_id_view_predictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saliency_maps")),
        sa.UniqueConstraint("view_prediction_id", name=op.f("uq_saliency_maps_view_prediction_id")),
    )
    _guard_readings()


# SQLite drops a table's triggers with it: a migration that rebuilds ``readings`` creates these again.
SQLITE_GUARDS = tuple(
    f"CREATE TRIGGER readings_no_{action.lower()} BEFORE {action} ON readings "
    "BEGIN SELECT RAISE(ABORT, 'submitted readings are immutable'); END"
    for action in ("UPDATE", "DELETE")
)


def _guard_readings() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in SQLITE_GUARDS:
            op.execute(statement)
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION readings_immutable() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'submitted readings are immutable'; END $$"
        )
        op.execute(
            "CREATE TRIGGER readings_immutable BEFORE UPDATE OR DELETE ON readings "
            "FOR EACH ROW EXECUTE FUNCTION readings_immutable()"
        )


def downgrade() -> None:
    op.drop_table("saliency_maps")
    op.drop_table("view_predictions")
    op.drop_table("readings")
    op.drop_table("ground_truth")
    op.drop_table("breast_predictions")
    op.drop_table("assignments")
    op.drop_table("study_cases")
    op.drop_table("model_runs")
    op.drop_table("images")
    op.drop_table("studies")
    op.drop_table("readers")
    op.drop_table("exams")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION readings_immutable()")
