"""One stored run per exam and model: a retried cluster task or a concurrent run can never score an
exam twice. Earlier duplicates (the same model stored twice on an exam) keep their latest run.

Revision ID: 0005_ray
Revises: 0004_reading
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_ray"
down_revision: str | None = "0004_reading"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM model_runs WHERE EXISTS (SELECT 1 FROM model_runs AS later "
        "WHERE later.exam_id = model_runs.exam_id AND later.model_key = model_runs.model_key "
        "AND later.id > model_runs.id)"
    )
    with op.batch_alter_table("model_runs") as batch:
        batch.create_unique_constraint("uq_model_runs_model", ["exam_id", "model_key"])


def downgrade() -> None:
    with op.batch_alter_table("model_runs") as batch:
        batch.drop_constraint("uq_model_runs_model", type_="unique")
