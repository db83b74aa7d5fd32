"""The migrations are the schema: they must build exactly what the models describe, and go down and up again."""

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from connector.migrate import alembic_config
from connector.models import Base


def test_migration_history_is_linear():
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1, f"several heads: {script.get_heads()}"


def test_models_match_migrations(database):
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = [d for d in compare_metadata(context, Base.metadata) if not _ignored(d)]
    assert differences == []


def test_downgrade_to_base_and_upgrade_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'roundtrip.db'}"
    config = alembic_config(url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    command.upgrade(config, "head")


def _ignored(diff) -> bool:
    # Tables owned by a library (APScheduler's job store) are created by a migration but not modelled here.
    obj = diff[1]
    table = getattr(obj, "table", obj)
    return diff[0] in ("remove_table", "remove_index") and table.name.startswith("apscheduler")


def test_a_playbook_keeps_its_place_in_the_history_across_the_lanes_migration(tmp_path):
    url = f"sqlite:///{tmp_path / 'lanes.db'}"
    config = alembic_config(url)
    command.upgrade(config, "0017")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO companies (id, name, created_at) VALUES (1, 'c', '2026-12-01')")
        connection.exec_driver_sql(
            "INSERT INTO workspaces (id, company_id, name, slug, time_zone, created_at)"
            " VALUES (1, 1, 'w', 'w', 'UTC', '2026-12-01')"
        )
        connection.exec_driver_sql(
            "INSERT INTO playbooks (id, workspace_id, name, subject_type, \"trigger\", segment_ids, actions, enabled,"
            " cursor, read_from, created_at, updated_at) VALUES (7, 1, 'p', 'user', '{}', '[]', '[]', 1, 42,"
            " '2026-12-01', '2026-12-01', '2026-12-01')"
        )
        connection.exec_driver_sql(
            "INSERT INTO playbook_firings (workspace_id, playbook_id, subject_id, \"trigger\", trigger_ref,"
            " triggered_at, status, attempts, results, created_at) VALUES (1, 7, 3, 'enters', '40', '2026-12-01',"
            " 'succeeded', 1, '[]', '2026-12-01')"
        )
    command.upgrade(config, "head")
    with engine.connect() as connection:
        lanes = connection.exec_driver_sql("SELECT playbook_id, lane, cursor FROM playbook_lanes ORDER BY lane").all()
        # The playbooks table is altered in place: its firings are still there.
        assert connection.exec_driver_sql("SELECT count(*) FROM playbook_firings").scalar() == 1
    assert [tuple(row) for row in lanes] == [(7, 0, 42), (7, 1, 42)]
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE playbook_lanes SET cursor = 50 WHERE lane = 1")
    command.downgrade(config, "0017")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT cursor FROM playbooks WHERE id = 7").scalar() == 42
    engine.dispose()
