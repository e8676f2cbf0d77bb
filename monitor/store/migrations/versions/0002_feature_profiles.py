"""feature profiles per window, dataset drift verdict

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feature_profiles",
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("window_seconds", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.Float(), nullable=False),
        sa.Column("segment", sa.String(length=256), nullable=False),
        sa.Column("feature", sa.String(length=128), nullable=False),
        sa.Column("bins_revision", sa.Integer(), nullable=False),
        sa.Column("profile", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "model", "model_version", "window_seconds", "window_start", "segment", "feature"
        ),
    )
    with op.batch_alter_table("window_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("drift_share", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("dataset_drifted", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("window_results", schema=None) as batch_op:
        batch_op.drop_column("dataset_drifted")
        batch_op.drop_column("drift_share")
    op.drop_table("feature_profiles")
