"""Running Alembic migrations from code (the CLI, the test suite, the demo)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def cascade_by_trigger(child: str, foreign_key: str, parent: str, column: str, trigger: str) -> None:
    """In a migration: drop a child table's foreign key to its parent and keep its ``ON DELETE CASCADE`` as a trigger
    on the parent (named ``trigger``; on PostgreSQL its function is named without the ``trg_``), which fires on the
    parent's delete, cascaded ones included, and costs a child's insert nothing.

    SQLite, for later migrations: a batch operation that recreates the parent drops the trigger (create it again);
    one that recreates the child must drop the trigger first (``foreign_key_for_trigger`` does)."""
    from alembic import op

    with op.batch_alter_table(child) as batch_op:
        batch_op.drop_constraint(foreign_key, type_="foreignkey")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION {trigger[4:]}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                DELETE FROM {child} WHERE {column} = OLD.id;
                RETURN NULL;
            END
            $$
            """
        )
        op.execute(f"CREATE TRIGGER {trigger} AFTER DELETE ON {parent} FOR EACH ROW EXECUTE FUNCTION {trigger[4:]}()")
    else:
        op.execute(
            f"""
            CREATE TRIGGER {trigger} AFTER DELETE ON {parent}
            BEGIN
                DELETE FROM {child} WHERE {column} = OLD.id;
            END
            """
        )


def foreign_key_for_trigger(child: str, foreign_key: str, parent: str, column: str, trigger: str) -> None:
    """In a migration: undo ``cascade_by_trigger`` (the trigger goes, the foreign key comes back with its cascade;
    rows written meanwhile that name a parent no longer there are deleted, as the foreign key would refuse them)."""
    from alembic import op

    # The trigger first: SQLite cannot recreate a table (batch mode) that a trigger names.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {parent}")
        op.execute(f"DROP FUNCTION IF EXISTS {trigger[4:]}()")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute(f"DELETE FROM {child} WHERE NOT EXISTS (SELECT 1 FROM {parent} WHERE {parent}.id = {child}.{column})")
    with op.batch_alter_table(child) as batch_op:
        batch_op.create_foreign_key(foreign_key, parent, [column], ["id"], ondelete="CASCADE")
