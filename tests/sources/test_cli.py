"""``connector sources …`` on the real database and a real warehouse file."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import select

from connector.cli import main
from connector.models import User
from tests.sources.conftest import make_model, make_source


def test_sources_are_listed_checked_and_run(database_url, settings, database, tenant, warehouse):
    warehouse.run("CREATE TABLE people (id INTEGER, email VARCHAR(200))")
    warehouse.insert("people", [{"id": 1, "email": "ann@example.com"}, {"id": 2, "email": "bob@example.com"}])
    source = make_source(database, tenant, warehouse)
    make_model(
        database,
        tenant,
        source,
        kind="users",
        query="SELECT * FROM people",
        mapping={"external_id": "id", "email": "email"},
    )

    def cli(*args):
        return CliRunner().invoke(
            main, ["--database-url", database_url, *args], env={"CONNECTOR_SECRET_KEY": settings.secret_key}
        )

    listed = cli("sources", "list")
    assert "acme/Warehouse" in listed.output and "users by hash diff" in listed.output
    assert cli("sources", "check", "Warehouse", "--workspace", "acme").exit_code == 0
    ran = cli("sources", "run", "Warehouse", "--workspace", "acme")
    assert ran.exit_code == 0, ran.output
    assert "succeeded" in ran.output and "created 2" in ran.output
    with database.session() as session:
        assert sorted(session.scalars(select(User.email))) == ["ann@example.com", "bob@example.com"]
    missing = cli("sources", "run", "Nope", "--workspace", "acme")
    assert missing.exit_code == 2 and "no source 'Nope'" in missing.output
