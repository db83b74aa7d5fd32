"""across workspaces: HQ origin of segments and groups, group descriptions, shares, mappings, HQ sync reports

Revision ID: 0009
Revises: 0011
Create Date: 2026-12-04 21:15:00.000000

Columns are added with ``ALTER TABLE … ADD COLUMN`` (no table rebuild on SQLite, so the triggers of migration 0005
on ``segments`` stay).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def _origin_columns(table: str) -> None:
    op.add_column(table, sa.Column("hq_workspace_id", ID, nullable=True))
    op.add_column(table, sa.Column("hq_item_id", ID, nullable=True))
    op.add_column(table, sa.Column("edited_in_child", sa.Boolean(), server_default=sa.false(), nullable=False))


def upgrade() -> None:
    op.add_column("segment_groups", sa.Column("description", sa.Text(), server_default="", nullable=False))
    _origin_columns("segment_groups")
    _origin_columns("segments")
    op.create_table(
        "segment_shares",
        sa.Column("id", ID, nullable=False),
        sa.Column("source_segment_id", ID, nullable=False),
        sa.Column("source_workspace_id", ID, nullable=False),
        sa.Column("target_workspace_id", ID, nullable=False),
        sa.Column("proxy_segment_id", ID, nullable=False),
        sa.Column("created_by_id", ID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_segment_id"],
            ["segments.id"],
            name=op.f("fk_segment_shares_source_segment_id_segments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_segment_shares_source_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target_workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_segment_shares_target_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["proxy_segment_id"],
            ["segments.id"],
            name=op.f("fk_segment_shares_proxy_segment_id_segments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["members.id"], name=op.f("fk_segment_shares_created_by_id_members"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_shares")),
        sa.UniqueConstraint(
            "source_segment_id",
            "target_workspace_id",
            name=op.f("uq_segment_shares_source_segment_id_target_workspace_id"),
        ),
        sa.UniqueConstraint("proxy_segment_id", name=op.f("uq_segment_shares_proxy_segment_id")),
    )
    op.create_index(op.f("ix_segment_shares_source_workspace_id"), "segment_shares", ["source_workspace_id"])
    op.create_index(op.f("ix_segment_shares_target_workspace_id"), "segment_shares", ["target_workspace_id"])
    op.create_table(
        "segment_mappings",
        sa.Column("id", ID, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("hq_workspace_id", ID, nullable=False),
        sa.Column("hq_segment_id", ID, nullable=False),
        sa.Column("segment_id", ID, nullable=False),
        sa.Column("updated_by_id", ID, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_segment_mappings_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["hq_workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_segment_mappings_hq_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segments.id"], name=op.f("fk_segment_mappings_segment_id_segments"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["members.id"],
            name=op.f("fk_segment_mappings_updated_by_id_members"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_mappings")),
        sa.UniqueConstraint(
            "workspace_id", "hq_segment_id", name=op.f("uq_segment_mappings_workspace_id_hq_segment_id")
        ),
    )
    op.create_index(op.f("ix_segment_mappings_hq_workspace_id"), "segment_mappings", ["hq_workspace_id"])
    op.create_index(op.f("ix_segment_mappings_segment_id"), "segment_mappings", ["segment_id"])
    op.create_table(
        "hq_sync_reports",
        sa.Column("id", ID, nullable=False),
        sa.Column("hq_workspace_id", ID, nullable=False),
        sa.Column("member_id", ID, nullable=True),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("request", JSON, nullable=False),
        sa.Column("report", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["hq_workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_hq_sync_reports_hq_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_hq_sync_reports_member_id_members"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hq_sync_reports")),
    )
    op.create_index(op.f("ix_hq_sync_reports_hq_workspace_id"), "hq_sync_reports", ["hq_workspace_id"])


def downgrade() -> None:
    op.drop_table("hq_sync_reports")
    op.drop_table("segment_mappings")
    op.drop_table("segment_shares")
    for table in ("segments", "segment_groups"):
        with op.batch_alter_table(table, recreate="never") as batch_op:
            batch_op.drop_column("edited_in_child")
            batch_op.drop_column("hq_item_id")
            batch_op.drop_column("hq_workspace_id")
    with op.batch_alter_table("segment_groups", recreate="never") as batch_op:
        batch_op.drop_column("description")
