"""source rows cascade by trigger; users lose an index that other indexes cover

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-08 01:30:00.000000

A source run's first read of a table of a million rows writes a million ``source_rows`` (one hash per row) and up to
a million ``users``. Measured on PostgreSQL 15, 10,000 source rows a statement: 106-131 ms with the foreign key to
``source_models``, 45 ms without it, i.e. the referential check was more than half of the insert. As for the derived
tables (0005) and the automation rows (0019), the foreign key goes and its ``ON DELETE CASCADE`` stays as a trigger:
deleting a model (or its source, or its workspace: the cascades reach it) deletes its rows
(``trg_source_models_delete_rows``). What the check guarded, a source run does once per chunk: it locks its model's
row ``FOR KEY SHARE`` (PostgreSQL) before writing, so a concurrent delete of the model waits for the chunk and its
trigger then deletes what the chunk wrote, and a chunk after the delete finds no model and fails the run.

``ix_users_workspace_id`` goes: both unique constraints and both other indexes of ``users`` lead with
``workspace_id``, so a query by workspace alone uses one of them, and every insert into ``users`` paid for one index
more than it needed.
"""

from collections.abc import Sequence

from alembic import op

from connector.migrate import cascade_by_trigger, foreign_key_for_trigger

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (child table, its foreign key, parent table, column, trigger) — as migration 0010 created the foreign key.
CASCADE = (
    "source_rows",
    "fk_source_rows_model_id_source_models",
    "source_models",
    "model_id",
    "trg_source_models_delete_rows",
)


def upgrade() -> None:
    cascade_by_trigger(*CASCADE)
    op.drop_index("ix_users_workspace_id", table_name="users")


def downgrade() -> None:
    op.create_index("ix_users_workspace_id", "users", ["workspace_id"])
    foreign_key_for_trigger(*CASCADE)
