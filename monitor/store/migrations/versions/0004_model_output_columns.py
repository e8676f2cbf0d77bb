"""reference columns of a model's outputs and labels; longer metric definitions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 09:00:00

A model names the columns of its reference that hold the served class or value, the
served score and the label, so that prediction and label drift can be scored against
them (existing models get the defaults). A window result's definition names every part
scored since (accuracy, quality, output drift, correlation, multivariate), which no
longer fits in 64 characters.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COLUMNS = {"prediction_column": "prediction", "score_column": "score", "target_column": "target"}


def upgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        for name, default in _COLUMNS.items():
            batch_op.add_column(
                sa.Column(name, sa.String(length=128), nullable=False, server_default=default)
            )
    with op.batch_alter_table("window_results", schema=None) as batch_op:
        batch_op.alter_column(
            "definition",
            existing_type=sa.String(length=64),
            type_=sa.String(length=256),
            existing_nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("window_results", schema=None) as batch_op:
        batch_op.alter_column(
            "definition",
            existing_type=sa.String(length=256),
            type_=sa.String(length=64),
            existing_nullable=False,
        )
    with op.batch_alter_table("models", schema=None) as batch_op:
        for name in reversed(_COLUMNS):
            batch_op.drop_column(name)
