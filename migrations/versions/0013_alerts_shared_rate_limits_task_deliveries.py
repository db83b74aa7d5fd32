"""alerts, shared rate limits, task deliveries

Revision ID: 0013
Revises: 0008
Create Date: 2026-12-04 21:10:00.000000

``alerts`` (overdue and failing syncs; one open alert of a kind per sync), ``rate_limit_keys`` and
``rate_limit_slots`` (the request log of a destination's budget, shared by every worker process), and
``task_deliveries`` (which task messages a worker started, to tell a redelivery from a first delivery).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import connector.models.base

revision: str = "0013"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sync_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "kind", sa.Enum("overdue", "failing", name="alertkind", native_enum=False, length=20), nullable=False
        ),
        sa.Column(
            "status", sa.Enum("open", "resolved", name="alertstatus", native_enum=False, length=10), nullable=False
        ),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("after_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("opened_at", connector.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", connector.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["sync_id"], ["syncs.id"], name=op.f("fk_alerts_sync_id_syncs"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_alerts_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index(op.f("ix_alerts_sync_id"), "alerts", ["sync_id"], unique=False)
    op.create_index(op.f("ix_alerts_workspace_id"), "alerts", ["workspace_id", "opened_at"], unique=False)
    op.create_index(
        "uq_alerts_open",
        "alerts",
        ["sync_id", "kind"],
        unique=True,
        sqlite_where=sa.text("status = 'open'"),
        postgresql_where=sa.text("status = 'open'"),
    )

    op.create_table(
        "rate_limit_keys",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limit_keys")),
    )
    op.create_table(
        "rate_limit_slots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("taken_at", sa.Float(precision=53), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_limit_slots")),
    )
    op.create_index(op.f("ix_rate_limit_slots_key"), "rate_limit_slots", ["key", "taken_at"], unique=False)

    op.create_table(
        "task_deliveries",
        sa.Column("delivery", sa.String(length=200), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=False),
        sa.Column("started_at", connector.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("delivery", name=op.f("pk_task_deliveries")),
    )
    op.create_index(op.f("ix_task_deliveries_started_at"), "task_deliveries", ["started_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_task_deliveries_started_at"), table_name="task_deliveries")
    op.drop_table("task_deliveries")
    op.drop_index(op.f("ix_rate_limit_slots_key"), table_name="rate_limit_slots")
    op.drop_table("rate_limit_slots")
    op.drop_table("rate_limit_keys")
    op.drop_index("uq_alerts_open", table_name="alerts")
    op.drop_index(op.f("ix_alerts_workspace_id"), table_name="alerts")
    op.drop_index(op.f("ix_alerts_sync_id"), table_name="alerts")
    op.drop_table("alerts")
