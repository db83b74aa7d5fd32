"""``connector syncs …`` and ``connector destinations …`` on the real database."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from connector.cli import main
from tests.syncs.conftest import create_sync, hubspot_config, seed_users, writes


@pytest.fixture
def cli(database_url, settings):
    def invoke(*args: str):
        result = CliRunner().invoke(
            main,
            ["--database-url", database_url, *args],
            env={"CONNECTOR_SECRET_KEY": settings.secret_key},
            catch_exceptions=False,
        )
        return result

    return invoke


def test_syncs_are_listed_run_and_their_history_shown(cli, client, tenant, database, sandbox):
    seed_users(database, tenant.workspace_id, [{"email": f"c{i}@example.com"} for i in range(3)] + [{"email": None}])
    setup = create_sync(client, tenant, sandbox, name="Newsletter")

    listed = cli("syncs", "list")
    assert listed.exit_code == 0
    assert "acme/Newsletter" in listed.output and "never run" in listed.output

    plan = cli("syncs", "run", "Newsletter", "--workspace", "acme", "--dry-run")
    assert plan.exit_code == 0, plan.output
    assert "planned 3" in plan.output and '"identity": "c0@example.com"' in plan.output
    assert writes(sandbox.stats()) == {}

    done = cli("syncs", "run", str(setup.sync_id))
    assert done.exit_code == 0, done.output
    assert "partial" in done.output and "added 3" in done.output and "invalid 1" in done.output
    assert len(sandbox.records("contacts")) == 3

    history = cli("syncs", "runs", "Newsletter", "--errors")
    assert history.exit_code == 0
    lines = history.output.splitlines()
    assert "partial" in lines[0] and "cli" in lines[0]
    assert "invalid: " in history.output and "no value for the identity field email" in history.output
    assert "dry-run" in history.output

    assert "last run: partial" in cli("syncs", "list", "--workspace", "acme").output


def test_a_failed_run_exits_non_zero(cli, client, tenant, database, sandbox):
    seed_users(database, tenant.workspace_id, [{"email": "x@example.com"}])
    setup = create_sync(client, tenant, sandbox, config=hubspot_config(sandbox, access_token="nope"))
    result = cli("syncs", "run", str(setup.sync_id), "--quiet")
    assert result.exit_code == 1
    assert "failed" in result.output and "credentials" in result.output


def test_unknown_syncs_are_usage_errors(cli, client, tenant, sandbox):
    create_sync(client, tenant, sandbox)
    assert cli("syncs", "run", "nope").exit_code == 2
    assert cli("syncs", "runs", "contacts", "--workspace", "globex").exit_code == 2


def test_destinations_are_checked(cli, client, tenant, sandbox):
    good = create_sync(client, tenant, sandbox, name="good").destination_id
    config = hubspot_config(sandbox, access_token="no")
    bad = create_sync(client, tenant, sandbox, name="bad", config=config).destination_id
    ok = cli("destinations", "check", str(good))
    assert ok.exit_code == 0 and ": ok" in ok.output
    refused = cli("destinations", "check", str(bad))
    assert refused.exit_code == 1 and "credentials" in refused.output
    assert cli("destinations", "check", "999").exit_code == 2
    listed = cli("destinations", "list")
    assert "acme/hubspot-good (hubspot)" in listed.output and "acme/hubspot-bad (hubspot)" in listed.output
