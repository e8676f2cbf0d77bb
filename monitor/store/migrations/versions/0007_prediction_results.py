"""prediction results: what a window part keeps per prediction, in one indexed table

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 20:00:00

Anomaly flags and their reasons, explanations: a part's result about one prediction is
a row of ``prediction_results`` keyed like the prediction (``event_id``, ``model``) and
by the part's name, with its document as JSON. Reads go by event id (the key's lead),
by one part's results of a version over a span of event time
(``ix_prediction_results_window``, which also orders a page), and retention deletes by
event time (``ix_prediction_results_ts``). A new table: SQLite and PostgreSQL create
it alike, and the downgrade drops it with what it holds.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_results",
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("part", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("payload", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "model", "part", name="pk_prediction_results"),
    )
    op.create_index(
        "ix_prediction_results_window",
        "prediction_results",
        ["model", "model_version", "part", "ts", "event_id"],
        unique=False,
    )
    op.create_index("ix_prediction_results_ts", "prediction_results", ["ts"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_prediction_results_ts", table_name="prediction_results")
    op.drop_index("ix_prediction_results_window", table_name="prediction_results")
    op.drop_table("prediction_results")
