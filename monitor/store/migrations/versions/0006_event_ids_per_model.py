"""event ids are unique per model: predictions, labels and ingest order keyed by both

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 19:00:00

An event id was unique across all models, so one tenant's id made another's event of
the same id a "duplicate", and a replay under a renamed model stored nothing. The
primary keys of ``predictions`` and ``labels`` become ``(model, event_id)``, the unique
place of an event in ``ingest_order`` becomes ``(model, event_id)``, and labels are
looked up by ``(model, prediction_id)``. The keys lead with the event id: ingest
looks up a list of ids of one model, and PostgreSQL then searches the index by id
(led by the model, it read every row of the model as a filter: 14,000 -> 900 rows/s).
Stored rows keep their values: ids unique across models are unique within each.

PostgreSQL alters the constraints in place; SQLite cannot change a primary key, so
batch mode copies each table.
"""

from __future__ import annotations

import warnings

from alembic import op
from sqlalchemy.exc import SAWarning

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _primary_key(table: str, columns: list[str], name: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Names as created by 0001 (PostgreSQL's default) or by this migration.
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {table}_pkey")
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS pk_{table}")
        op.create_primary_key(name, table, columns)
        return
    with warnings.catch_warnings():
        # The copy's reflected column still carries the old key's flag; SQLAlchemy says
        # so, then keys the copy on exactly the columns named here, as intended.
        warnings.filterwarnings("ignore", "Table '_alembic_tmp_", SAWarning)
        with op.batch_alter_table(table, recreate="always") as batch_op:
            batch_op.create_primary_key(name, columns)


def upgrade() -> None:
    _primary_key("predictions", ["event_id", "model"], "pk_predictions")
    _primary_key("labels", ["event_id", "model"], "pk_labels")
    with op.batch_alter_table("labels") as batch_op:
        batch_op.drop_index("ix_labels_prediction")
        batch_op.create_index("ix_labels_prediction", ["model", "prediction_id"], unique=False)
    with op.batch_alter_table("ingest_order") as batch_op:
        batch_op.drop_constraint("uq_ingest_order_event", type_="unique")
        batch_op.create_unique_constraint("uq_ingest_order_event", ["event_id", "model"])


def downgrade() -> None:
    """Back to ids unique across models: fails if two models now share an id."""
    with op.batch_alter_table("ingest_order") as batch_op:
        batch_op.drop_constraint("uq_ingest_order_event", type_="unique")
        batch_op.create_unique_constraint("uq_ingest_order_event", ["event_id"])
    with op.batch_alter_table("labels") as batch_op:
        batch_op.drop_index("ix_labels_prediction")
        batch_op.create_index("ix_labels_prediction", ["prediction_id"], unique=False)
    _primary_key("labels", ["event_id"], "pk_labels")
    _primary_key("predictions", ["event_id"], "pk_predictions")
