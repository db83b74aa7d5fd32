"""derived tables cascade by trigger

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-24 09:00:00.000000

``segment_memberships``, ``segment_membership_history`` and ``computed_values`` hold derived data that the segment
engine writes in bulk (a full refresh writes millions of rows). Their foreign keys cost one referential check per
inserted row: on PostgreSQL 15, of 5.6 s to insert 800,000 memberships, 3.3 s were the FK trigger (history: 3.2 s of
6.7 s). The foreign keys go; their ``ON DELETE CASCADE`` stays, as triggers that fire on the parent's delete (rare)
and never on a child's insert:

- deleting a segment deletes its memberships and history (``trg_segments_delete_derived``);
- deleting a workspace deletes its computed values (``trg_workspaces_delete_computed``); its segments still go by
  their own foreign key, whose cascade fires ``trg_segments_delete_derived`` on both backends.

Nothing checks a child's parent any more: a row naming a segment or workspace that does not exist is accepted. The
segment engine (``connector.segments``, ``connector.computed``) is the only writer of these tables.

SQLite, for later migrations: a batch operation that recreates ``segments`` or ``workspaces`` drops their triggers
(create them again); one that recreates a child table fails while a trigger names it ("error in trigger ...: no
such table") — drop the triggers first, as ``downgrade`` does.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (child table, its foreign key, parent table, column) — as migration 0001 created them.
FOREIGN_KEYS = [
    ("segment_memberships", "fk_segment_memberships_segment_id_segments", "segments", "segment_id"),
    ("segment_membership_history", "fk_segment_membership_history_segment_id_segments", "segments", "segment_id"),
    ("computed_values", "fk_computed_values_workspace_id_workspaces", "workspaces", "workspace_id"),
]

POSTGRESQL_UP = [
    """
    CREATE FUNCTION segments_delete_derived() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM segment_memberships WHERE segment_id = OLD.id;
        DELETE FROM segment_membership_history WHERE segment_id = OLD.id;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER trg_segments_delete_derived AFTER DELETE ON segments
    FOR EACH ROW EXECUTE FUNCTION segments_delete_derived()
    """,
    """
    CREATE FUNCTION workspaces_delete_computed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM computed_values WHERE workspace_id = OLD.id;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER trg_workspaces_delete_computed AFTER DELETE ON workspaces
    FOR EACH ROW EXECUTE FUNCTION workspaces_delete_computed()
    """,
]

POSTGRESQL_DOWN = [
    "DROP TRIGGER IF EXISTS trg_workspaces_delete_computed ON workspaces",
    "DROP FUNCTION IF EXISTS workspaces_delete_computed()",
    "DROP TRIGGER IF EXISTS trg_segments_delete_derived ON segments",
    "DROP FUNCTION IF EXISTS segments_delete_derived()",
]

SQLITE_UP = [
    """
    CREATE TRIGGER trg_segments_delete_derived AFTER DELETE ON segments
    BEGIN
        DELETE FROM segment_memberships WHERE segment_id = OLD.id;
        DELETE FROM segment_membership_history WHERE segment_id = OLD.id;
    END
    """,
    """
    CREATE TRIGGER trg_workspaces_delete_computed AFTER DELETE ON workspaces
    BEGIN
        DELETE FROM computed_values WHERE workspace_id = OLD.id;
    END
    """,
]

SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS trg_workspaces_delete_computed",
    "DROP TRIGGER IF EXISTS trg_segments_delete_derived",
]


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    for table, name, _parent, _column in FOREIGN_KEYS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(name, type_="foreignkey")
    for statement in POSTGRESQL_UP if _postgresql() else SQLITE_UP:
        op.execute(statement)


def downgrade() -> None:
    # Triggers first: SQLite cannot recreate a table (batch mode) that a trigger names.
    for statement in POSTGRESQL_DOWN if _postgresql() else SQLITE_DOWN:
        op.execute(statement)
    for table, name, parent, column in FOREIGN_KEYS:
        # Rows written without a check may name a parent that is gone; the foreign key would refuse them.
        op.execute(
            f"DELETE FROM {table} WHERE NOT EXISTS (SELECT 1 FROM {parent} WHERE {parent}.id = {table}.{column})"
        )
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(name, parent, [column], ["id"], ondelete="CASCADE")
