"""change sequence for syncs

Revision ID: 0012
Revises: 0013
Create Date: 2026-12-04 21:10:00.000000

A sync run reads only the subjects that changed since the state its destination last acknowledged
(``connector.syncs.changes``). What a sync renders comes from the subject's row (``users`` / ``accounts``) and its
computed values (``Segments``, which every membership change rewrites), so those rows carry ``change_seq``, the
position of their last write in one database-wide change order, maintained by triggers whatever writes them:

- PostgreSQL: the writing transaction's id (``txid_current()``, 64 bits): a column default on insert, a ``BEFORE
  UPDATE`` trigger on update. A run compares it with the transaction snapshot taken when it started (``xmax`` and
  the transactions in progress), so a write committed after the run looked is never missed;
- SQLite (one writer at a time): a counter in ``change_counter``, bumped by ``AFTER INSERT`` / ``AFTER UPDATE``
  triggers (recursive triggers are off, so setting the column does not fire them again).

Deleting a subject or a computed value leaves no row to carry the change: ``change_tombstones`` gets one row per
deleted row (PostgreSQL: one statement-level trigger per table, set-based; SQLite: per row).

``segments.evaluation`` says whether a saved definition is evaluated yet (``pending``, ``running``, ``done``,
``failed`` with ``evaluation_error``): creating or redefining a segment answers at once and evaluates it on an
executor (``connector.segments.evaluation``).

Exact time windows (``connector.segments.edges``) follow window edges by index ranges: page views by workspace
and time (a partial index), ``devices`` by workspace and ``last_seen_at``, ``users`` / ``accounts`` by workspace and
``created_at``; ``segments.edges_checked_at`` is the instant up to which a segment's edges were followed.

``sync_watermarks`` holds, per sync, the change position its last complete run started from, the fingerprint of the
configuration it rendered with, and the subjects it must look at again (invalid ones).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import connector.models.base

revision: str = "0012"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, its primary key condition on NEW for SQLite, subject type expression, subject id expression)
TRACKED = [
    ("users", "id = NEW.id", "'user'", "id"),
    ("accounts", "id = NEW.id", "'account'", "id"),
    (
        "computed_values",
        "subject_type = NEW.subject_type AND subject_id = NEW.subject_id AND name = NEW.name",
        "subject_type",
        "subject_id",
    ),
]
INDEXES = {
    "users": ("ix_users_workspace_change_seq", ["workspace_id", "change_seq"]),
    "accounts": ("ix_accounts_workspace_change_seq", ["workspace_id", "change_seq"]),
    "computed_values": ("ix_computed_values_change_seq", ["workspace_id", "subject_type", "name", "change_seq"]),
}

EDGE_INDEXES = [
    ("ix_devices_workspace_last_seen", "devices", ["workspace_id", "last_seen_at"]),
    ("ix_users_workspace_created_at", "users", ["workspace_id", "created_at"]),
    ("ix_accounts_workspace_created_at", "accounts", ["workspace_id", "created_at"]),
]

PAGES_ONLY = {"postgresql_where": sa.text("kind = 'page'"), "sqlite_where": sa.text("kind = 'page'")}


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_table(
        "change_counter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_counter")),
    )
    op.execute("INSERT INTO change_counter (id, seq) VALUES (1, 0)")
    op.create_table(
        "change_tombstones",
        sa.Column("id", connector.models.base.BigId, autoincrement=True, nullable=False),
        sa.Column("workspace_id", connector.models.base.BigId, nullable=False),
        sa.Column("subject_type", sa.String(length=10), nullable=False),
        sa.Column("subject_id", connector.models.base.BigId, nullable=False),
        sa.Column("change_seq", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_tombstones")),
    )
    op.create_index(
        "ix_change_tombstones_workspace_change_seq",
        "change_tombstones",
        ["workspace_id", "subject_type", "change_seq"],
    )
    op.create_table(
        "sync_watermarks",
        sa.Column("sync_id", connector.models.base.BigId, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("since_seq", sa.BigInteger(), nullable=False),
        sa.Column("in_progress", connector.models.base.JSONType, nullable=False),
        sa.Column("pending", connector.models.base.JSONType, nullable=False),
        sa.Column("updated_at", connector.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["sync_id"], ["syncs.id"], name=op.f("fk_sync_watermarks_sync_id_syncs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("sync_id", name=op.f("pk_sync_watermarks")),
    )
    op.add_column("segments", sa.Column("evaluation", sa.String(length=10), server_default="done", nullable=False))
    op.add_column("segments", sa.Column("evaluation_error", sa.Text(), nullable=True))
    op.add_column(
        "segments", sa.Column("edges_checked_at", connector.models.base.UTCDateTime(timezone=True), nullable=True)
    )
    for name, table, columns in EDGE_INDEXES:
        op.create_index(name, table, columns)
    # Page views only (partial): an index on every event's time by workspace would tempt the planner away from the
    # per-user indexes when ingestion evaluates a few users (seen: 450 loops over the workspace's events).
    op.create_index("ix_events_page_time", "events", ["workspace_id", "occurred_at"], **PAGES_ONLY)
    postgresql = _postgresql()
    for table, _key, _type, _id in TRACKED:
        # Not batch mode: SQLite adds the column in place (recreating computed_values fails while migration
        # 0005's trigger names it).
        op.add_column(table, sa.Column("change_seq", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
        name, columns = INDEXES[table]
        op.create_index(name, table, columns)
    if postgresql:
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()


def _upgrade_postgresql() -> None:
    op.execute("ALTER TABLE change_tombstones ALTER COLUMN change_seq SET DEFAULT txid_current()")
    op.execute(
        """
        CREATE FUNCTION change_seq_touch() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.change_seq := txid_current();
            RETURN NEW;
        END
        $$
        """
    )
    for table, _key, subject_type, subject_id in TRACKED:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN change_seq SET DEFAULT txid_current()")
        op.execute(
            f"CREATE TRIGGER trg_{table}_change_seq BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION change_seq_touch()"
        )
        op.execute(
            f"""
            CREATE FUNCTION {table}_tombstones() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO change_tombstones (workspace_id, subject_type, subject_id)
                SELECT workspace_id, {subject_type}, {subject_id} FROM gone;
                RETURN NULL;
            END
            $$
            """
        )
        op.execute(
            f"CREATE TRIGGER trg_{table}_tombstones AFTER DELETE ON {table} "
            f"REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION {table}_tombstones()"
        )


def _upgrade_sqlite() -> None:
    # The row may be gone (a table emptied by hand): it comes back, counting from 1. (Not INSERT OR IGNORE: an
    # outer statement's conflict clause overrides a trigger's.)
    bump = (
        "INSERT INTO change_counter (id, seq) SELECT 1, 0 WHERE NOT EXISTS (SELECT 1 FROM change_counter);"
        " UPDATE change_counter SET seq = seq + 1 WHERE id = 1;"
    )
    current = "(SELECT seq FROM change_counter WHERE id = 1)"
    for table, key, subject_type, subject_id in TRACKED:
        for event in ("INSERT", "UPDATE"):
            op.execute(
                f"""
                CREATE TRIGGER trg_{table}_change_seq_{event.lower()} AFTER {event} ON {table}
                BEGIN
                    {bump}
                    UPDATE {table} SET change_seq = {current} WHERE {key};
                END
                """
            )
        old_type = subject_type if subject_type.startswith("'") else f"OLD.{subject_type}"
        op.execute(
            f"""
            CREATE TRIGGER trg_{table}_tombstones AFTER DELETE ON {table}
            BEGIN
                {bump}
                INSERT INTO change_tombstones (workspace_id, subject_type, subject_id, change_seq)
                VALUES (OLD.workspace_id, {old_type}, OLD.{subject_id}, {current});
            END
            """
        )


def downgrade() -> None:
    # Triggers first: SQLite cannot recreate a table (batch mode) that a trigger names.
    if _postgresql():
        for table, _key, _type, _id in TRACKED:
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_tombstones ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {table}_tombstones()")
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_change_seq ON {table}")
        op.execute("DROP FUNCTION IF EXISTS change_seq_touch()")
    else:
        for table, _key, _type, _id in TRACKED:
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_tombstones")
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_change_seq_insert")
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_change_seq_update")
    for table, _key, _type, _id in TRACKED:
        name, _columns = INDEXES[table]
        op.drop_index(name, table_name=table)
        op.execute(f"ALTER TABLE {table} DROP COLUMN change_seq")  # in place on SQLite too, as above
    for name, table, _columns in EDGE_INDEXES:
        op.drop_index(name, table_name=table)
    op.drop_index("ix_events_page_time", table_name="events", **PAGES_ONLY)
    op.execute("ALTER TABLE segments DROP COLUMN edges_checked_at")
    op.execute("ALTER TABLE segments DROP COLUMN evaluation_error")
    op.execute("ALTER TABLE segments DROP COLUMN evaluation")
    op.drop_table("sync_watermarks")
    op.drop_index("ix_change_tombstones_workspace_change_seq", table_name="change_tombstones")
    op.drop_table("change_tombstones")
    op.drop_table("change_counter")
