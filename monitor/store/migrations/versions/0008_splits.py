"""splits: the pipeline stage of a prediction, sensitive groups' numbers

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 22:00:00

A window can be scored per segment value, variant, pipeline stage and sensitive group.
Predictions gain their ``stage`` (nullable, not indexed, like ``variant``: a split
window is selected within its base window's rows, which ``ix_predictions_window``
bounds). A model says whether its sensitive groups' values may be metric labels
(``group_labels_allowed``, false for existing models); where not, ``split_groups``
keeps each group's number, given once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stage", sa.String(length=64), nullable=True))
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "group_labels_allowed",
                sa.Boolean(),
                nullable=False,
                server_default=sa.text("false"),
            )
        )
    op.create_table(
        "split_groups",
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("attribute", sa.String(length=128), nullable=False),
        sa.Column("value", sa.String(length=1024), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("model", "attribute", "value"),
        sa.UniqueConstraint("model", "attribute", "number", name="uq_split_groups_number"),
    )


def downgrade() -> None:
    op.drop_table("split_groups")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_column("group_labels_allowed")
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_column("stage")
