"""automation rows checked once

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 10:00:00.000000

``enrolments`` and ``playbook_firings`` are written in bulk when many people enter a segment at once (100,000
firings and enrolments in a few seconds). Each row paid a referential check of ``workspace_id`` besides the one of
its sequence or playbook, which already belongs to that workspace and cascades from it (a workspace's deletion
deletes its sequences and playbooks, and their enrolments and firings with them). The workspace foreign keys go; the
column stays (written from the sequence's or playbook's workspace).

``playbook_firings`` also loses two indexes nothing reads: the one on ``workspace_id`` (firings are read by
playbook) and ``(status, id)``, which listed every firing ever recorded to find the pending ones; a partial index on
the pending firings alone replaces it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEYS = [
    ("enrolments", "fk_enrolments_workspace_id_workspaces"),
    ("playbook_firings", "fk_playbook_firings_workspace_id_workspaces"),
]
PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    for table, name in FOREIGN_KEYS:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(name, type_="foreignkey")
    op.drop_index("ix_playbook_firings_workspace_id", table_name="playbook_firings")
    op.drop_index("ix_playbook_firings_status", table_name="playbook_firings")
    op.create_index(
        "ix_playbook_firings_pending", "playbook_firings", ["id"], postgresql_where=PENDING, sqlite_where=PENDING
    )


def downgrade() -> None:
    op.drop_index("ix_playbook_firings_pending", table_name="playbook_firings")
    op.create_index("ix_playbook_firings_status", "playbook_firings", ["status", "id"])
    op.create_index("ix_playbook_firings_workspace_id", "playbook_firings", ["workspace_id"])
    for table, name in FOREIGN_KEYS:
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_foreign_key(name, "workspaces", ["workspace_id"], ["id"], ondelete="CASCADE")
