"""Site calibration: a model's score calibrations, and operating points by the fraction of exams flagged.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "score_calibrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_key", sa.String(length=2000), nullable=False),
        sa.Column("calibration", sa.JSON(), nullable=False),
        sa.Column("calibration_set", sa.String(length=2000), nullable=False),
        sa.Column("exams", sa.Integer(), nullable=False),
        sa.Column("positives", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_score_calibrations")),
        sa.UniqueConstraint("model_key", name=op.f("uq_score_calibrations_model_key")),
    )
    with op.batch_alter_table("operating_points") as batch:
        batch.add_column(sa.Column("flagged_fraction", sa.Double(), nullable=True))
        batch.drop_constraint(op.f("ck_operating_points_metric"), type_="check")
        batch.create_check_constraint(
            op.f("ck_operating_points_metric"), "metric IN ('sensitivity', 'specificity', 'flag_fraction')"
        )


def downgrade() -> None:
    op.execute("DELETE FROM operating_points WHERE metric = 'flag_fraction'")
    with op.batch_alter_table("operating_points") as batch:
        batch.drop_constraint(op.f("ck_operating_points_metric"), type_="check")
        batch.create_check_constraint(
            op.f("ck_operating_points_metric"), "metric IN ('sensitivity', 'specificity')"
        )
        batch.drop_column("flagged_fraction")
    op.drop_table("score_calibrations")
