"""source rows and sync records cascade by trigger; users lose an index that other indexes cover

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-08 01:30:00.000000

A source run's first read of a table of a million rows writes a million ``source_rows`` (one hash per row) and up to
a million ``users``; a sync's first run writes a ``sync_records`` row per record acknowledged. Measured on
PostgreSQL 15, 10,000 rows a statement: source rows 106-131 ms with the foreign key to ``source_models``, 45 ms
without it; sync records (upserts) 107-112 ms with the foreign key to ``syncs``, 77-80 ms without it. As for the
derived tables (0005) and the automation rows (0019), the foreign keys go and their ``ON DELETE CASCADE`` stays as a
trigger: deleting a model (or its source, or its workspace: the cascades reach it) deletes its rows
(``trg_source_models_delete_rows``), deleting a sync its records (``trg_syncs_delete_records``). What the check
guarded, the writers do once per statement: a source run locks its model's row ``FOR KEY SHARE`` (PostgreSQL) before
each chunk, and the writing of acknowledged records locks the sync's row, so a concurrent delete waits for them and its
trigger then deletes what they wrote; a chunk after the delete finds no model and fails the run, and records
acknowledged after a sync's delete are not written.

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

# (child table, its foreign key, parent table, column, trigger) — as migrations 0010 and 0001 created the keys.
CASCADES = [
    (
        "source_rows",
        "fk_source_rows_model_id_source_models",
        "source_models",
        "model_id",
        "trg_source_models_delete_rows",
    ),
    ("sync_records", "fk_sync_records_sync_id_syncs", "syncs", "sync_id", "trg_syncs_delete_records"),
]


def upgrade() -> None:
    for cascade in CASCADES:
        cascade_by_trigger(*cascade)
    op.drop_index("ix_users_workspace_id", table_name="users")


def downgrade() -> None:
    op.create_index("ix_users_workspace_id", "users", ["workspace_id"])
    for cascade in CASCADES:
        foreign_key_for_trigger(*cascade)
