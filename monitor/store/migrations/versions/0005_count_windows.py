"""count windows: each prediction's place in ingest order; blocks keyed by number

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 11:00:00

Count windows are runs of N predictions in their version's ingest order. The scoring
loop writes each prediction's place once into ``ingest_order`` (a table of its own, so
ingest writes nothing more), and a block's result is keyed by its number as well as
its event-time span: two blocks of events stamped alike span the same times.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_OLD_KEY = ["model", "model_version", "segment", "window_kind", "window_start", "window_end"]


def upgrade() -> None:
    op.create_table(
        "ingest_order",
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("model", "model_version", "position"),
        sa.UniqueConstraint("event_id", name="uq_ingest_order_event"),
    )
    # SQLite cannot change a unique constraint in place: batch mode copies the table.
    with op.batch_alter_table("window_results", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("block", sa.BigInteger(), nullable=False, server_default="-1")
        )
        batch_op.drop_constraint("uq_window_results_window", type_="unique")
        batch_op.create_unique_constraint("uq_window_results_window", [*_OLD_KEY, "block"])


def downgrade() -> None:
    op.execute("DELETE FROM window_results WHERE window_kind = 'count'")
    with op.batch_alter_table("window_results", schema=None) as batch_op:
        batch_op.drop_constraint("uq_window_results_window", type_="unique")
        batch_op.create_unique_constraint("uq_window_results_window", _OLD_KEY)
        batch_op.drop_column("block")
    op.drop_table("ingest_order")
