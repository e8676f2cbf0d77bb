"""window results per segment and window kind, with the full scores

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 07:00:00

A window is now keyed by its segment ('' for all events) and its kind ('time' for a
tumbling time window, 'count' for a block of N predictions) as well as its bounds, and
keeps everything scored beyond drift (accuracy metrics, data quality, prediction and
label drift, correlation and multivariate drift) in one JSON column. The old table is
copied into the new one, since SQLite cannot change a unique constraint in place.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_COPIED = (
    "model, model_version, window_start, window_end, definition, predictions, labelled, "
    "accuracy, latency_p50_seconds, latency_p95_seconds, latency_p99_seconds, "
    "reference_revision, drift, scored_at, drift_share, dataset_drifted"
)


def upgrade() -> None:
    op.create_table(
        "window_results_new",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("segment", sa.String(length=256), nullable=False, server_default=""),
        sa.Column("window_kind", sa.String(length=8), nullable=False, server_default="time"),
        sa.Column("window_start", sa.Float(), nullable=False),
        sa.Column("window_end", sa.Float(), nullable=False),
        sa.Column("definition", sa.String(length=64), nullable=False),
        sa.Column("predictions", sa.Integer(), nullable=False),
        sa.Column("labelled", sa.Integer(), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("latency_p50_seconds", sa.Float(), nullable=True),
        sa.Column("latency_p95_seconds", sa.Float(), nullable=True),
        sa.Column("latency_p99_seconds", sa.Float(), nullable=True),
        sa.Column("reference_revision", sa.Integer(), nullable=True),
        sa.Column("drift", _JSON, nullable=False),
        sa.Column("scored_at", sa.Float(), nullable=False),
        sa.Column("drift_share", sa.Float(), nullable=True),
        sa.Column("dataset_drifted", sa.Boolean(), nullable=True),
        sa.Column("scores", _JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_window_results"),
        sa.UniqueConstraint(
            "model",
            "model_version",
            "segment",
            "window_kind",
            "window_start",
            "window_end",
            name="uq_window_results_window",
        ),
    )
    op.execute(f"INSERT INTO window_results_new ({_COPIED}) SELECT {_COPIED} FROM window_results")
    op.drop_table("window_results")
    op.rename_table("window_results_new", "window_results")


def downgrade() -> None:
    op.create_table(
        "window_results_old",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.Float(), nullable=False),
        sa.Column("window_end", sa.Float(), nullable=False),
        sa.Column("definition", sa.String(length=64), nullable=False),
        sa.Column("predictions", sa.Integer(), nullable=False),
        sa.Column("labelled", sa.Integer(), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("latency_p50_seconds", sa.Float(), nullable=True),
        sa.Column("latency_p95_seconds", sa.Float(), nullable=True),
        sa.Column("latency_p99_seconds", sa.Float(), nullable=True),
        sa.Column("reference_revision", sa.Integer(), nullable=True),
        sa.Column("drift", _JSON, nullable=False),
        sa.Column("scored_at", sa.Float(), nullable=False),
        sa.Column("drift_share", sa.Float(), nullable=True),
        sa.Column("dataset_drifted", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model", "model_version", "window_start", "window_end"),
    )
    op.execute(
        f"INSERT INTO window_results_old ({_COPIED}) SELECT {_COPIED} FROM window_results "
        "WHERE segment = '' AND window_kind = 'time'"
    )
    op.drop_table("window_results")
    op.rename_table("window_results_old", "window_results")
