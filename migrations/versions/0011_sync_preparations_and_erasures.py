"""sync preparations and erasures

Revision ID: 0011
Revises: 0007
Create Date: 2026-12-04 21:00:00.000000

``sync_preparations``: what each sync last prepared at its destination (plan fingerprint, the destination's schema
version, the multi-select options it made sure of and those retired since), so preparation is skipped across
processes while nothing changed. ``erasures``: the audit record of an erased person or account, without personal
data.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import connector.models.base

revision: str = "0011"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "sync_preparations",
        sa.Column("sync_id", BIG_ID, nullable=False),
        sa.Column("destination_id", BIG_ID, nullable=False),
        sa.Column("plan_hash", sa.String(length=64), nullable=False),
        sa.Column("schema_version", sa.String(length=200), nullable=False),
        sa.Column("options", _json(), nullable=False),
        sa.Column("retired", _json(), nullable=False),
        sa.Column("prepared_at", connector.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["destination_id"],
            ["destinations.id"],
            name=op.f("fk_sync_preparations_destination_id_destinations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sync_id"], ["syncs.id"], name=op.f("fk_sync_preparations_sync_id_syncs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("sync_id", name=op.f("pk_sync_preparations")),
    )
    with op.batch_alter_table("sync_preparations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sync_preparations_destination_id"), ["destination_id"], unique=False)

    op.create_table(
        "erasures",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("workspace_id", BIG_ID, nullable=False),
        sa.Column(
            "subject_type",
            sa.Enum("user", "account", name="subjecttype", native_enum=False, length=10),
            nullable=False,
        ),
        sa.Column("subject_id", BIG_ID, nullable=False),
        sa.Column("requested_by", BIG_ID, nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("counts", _json(), nullable=False),
        sa.Column("erased_at", connector.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["requested_by"], ["members.id"], name=op.f("fk_erasures_requested_by_members"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_erasures_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
    )
    with op.batch_alter_table("erasures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_erasures_workspace_id"), ["workspace_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("erasures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_erasures_workspace_id"))
    op.drop_table("erasures")
    with op.batch_alter_table("sync_preparations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_preparations_destination_id"))
    op.drop_table("sync_preparations")
