"""Which queue a sync's runs go to, and the settings that say so."""

from __future__ import annotations

from dataclasses import replace

import pytest

from connector.operations.settings import OperationsSettings
from connector.workers.app import queue_name, worker_queues
from connector.workers.dispatch import CeleryDispatcher
from tests.syncs.conftest import create_sync


def test_a_destination_with_a_queue_of_its_own_gets_its_runs_there(client, tenant, database, sandbox, settings):
    slow = create_sync(client, tenant, sandbox, name="slow")
    other = create_sync(client, tenant, sandbox, name="other")
    operations = OperationsSettings(
        broker_url="amqp://guest:guest@127.0.0.1:5672//",
        queue_prefix="acme.",
        destination_queues={slow.destination_id: "slow"},
    )
    configured = replace(settings, operations=operations)
    dispatcher = CeleryDispatcher(database, configured)
    assert dispatcher.queue_for_sync(slow.sync_id) == "acme.slow"
    assert dispatcher.queue_for_sync(other.sync_id) == "acme.default"
    assert worker_queues(configured) == ["default", "slow"]
    assert queue_name(configured, "slow") == "acme.slow"


def test_destination_queues_are_read_from_the_environment():
    operations = OperationsSettings.from_env({"CONNECTOR_DESTINATION_QUEUES": "7=slow, 9=slow,12=bulk"})
    assert operations.destination_queues == {7: "slow", 9: "slow", 12: "bulk"}
    assert not operations.distributed
    assert OperationsSettings.from_env({"CONNECTOR_BROKER_URL": "redis://127.0.0.1:6379/0"}).distributed


@pytest.mark.parametrize(
    "variable, value",
    [
        ("CONNECTOR_DESTINATION_QUEUES", "slow=7"),
        ("CONNECTOR_DESTINATION_CONCURRENCY", "two"),
        ("CONNECTOR_RUN_LEASE_SECONDS", "a minute"),
    ],
)
def test_a_malformed_setting_stops_the_process_naming_it(variable, value):
    with pytest.raises(RuntimeError, match="CONNECTOR_DESTINATION_QUEUES|not a number"):
        OperationsSettings.from_env({variable: value})
