"""HQ origin of playbooks and views: ``hq_workspace_id``, ``hq_item_id``, ``edited_in_child``

Revision ID: 0016
Revises: 0012
Create Date: 2026-12-04 22:30:00.000000

As for segments and groups (migration 0009): an HQ sync pushes playbooks and views to child workspaces and matches
the copies by origin. Columns are added with ``ALTER TABLE … ADD COLUMN`` (no table rebuild on SQLite).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLES = ("playbooks", "views")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("hq_workspace_id", ID, nullable=True))
        op.add_column(table, sa.Column("hq_item_id", ID, nullable=True))
        op.add_column(table, sa.Column("edited_in_child", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, recreate="never") as batch_op:
            batch_op.drop_column("edited_in_child")
            batch_op.drop_column("hq_item_id")
            batch_op.drop_column("hq_workspace_id")
