"""``model_runs.decoding``: the JPEG 2000 resolution level the model read its images at
(``Decoding.key``, e.g. ``j2k-level1`` for a half-size model; empty for the full-size decode), part
of the model key, so that a stored result rebuilds the key it was stored under.

Revision ID: 0008_decode
Revises: 0007_typed
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_decode"
down_revision: str | None = "0007_typed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("model_runs") as batch:
        batch.add_column(sa.Column("decoding", sa.String(40), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("model_runs") as batch:
        batch.drop_column("decoding")
