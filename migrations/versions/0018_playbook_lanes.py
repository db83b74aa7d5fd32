"""playbook lanes: a playbook reads the membership history in lanes, each with a cursor of its own

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 15:00:00.000000

A playbook kept one ``cursor`` (the last membership-history id it read), so one transaction at a time fired it: when
100,000 people entered its segment at once, their firings were recorded one batch after the other on one database
connection. ``playbook_lanes`` splits the reading by subject (``subject_id % lanes``): each lane is locked and
advanced by a transaction of its own, so the lanes of one playbook fire in parallel. Existing playbooks get two
lanes, both at their old cursor; ``playbooks.cursor`` goes (the API's ``cursor`` is now the slowest lane's).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LANES = 2


def upgrade() -> None:
    op.create_table(
        "playbook_lanes",
        sa.Column("playbook_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lane", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("cursor", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["playbook_id"], ["playbooks.id"], name=op.f("fk_playbook_lanes_playbook_id_playbooks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("playbook_id", "lane", name=op.f("pk_playbook_lanes")),
    )
    for lane in range(LANES):
        op.execute(
            sa.text(
                "INSERT INTO playbook_lanes (playbook_id, lane, cursor) SELECT id, :lane, cursor FROM playbooks"
            ).bindparams(lane=lane)
        )
    # ALTER TABLE … DROP COLUMN (SQLite 3.35+), never a batch rebuild of ``playbooks``: dropping the old table
    # would cascade to every firing and lane of every playbook (SQLite runs with foreign keys on).
    op.drop_column("playbooks", "cursor")


def downgrade() -> None:
    cursor = sa.Column(
        "cursor", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False, server_default="0"
    )
    op.add_column("playbooks", cursor)
    op.execute(
        "UPDATE playbooks SET cursor = COALESCE("
        "(SELECT MIN(cursor) FROM playbook_lanes WHERE playbook_lanes.playbook_id = playbooks.id), 0)"
    )
    op.drop_table("playbook_lanes")
