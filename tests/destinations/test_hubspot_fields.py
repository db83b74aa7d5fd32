"""A HubSpot destination lists an object's real properties (for mapping fields in the UI), over real HTTP."""

from __future__ import annotations

import pytest

from connector.destinations import ConfigError, FieldSpec, WritePlan
from connector.destinations.hubspot import HubSpotDestination
from connector.testing.hubspot_sandbox import HubSpotSandbox

TOKEN = "fields-token-8e2"


@pytest.fixture(scope="module")
def sandbox():
    with HubSpotSandbox(port=0, token=TOKEN) as server:
        yield server


def test_fields_are_the_objects_properties_with_their_kinds(sandbox):
    sandbox.reset()
    destination = HubSpotDestination({"access_token": TOKEN, "base_url": sandbox.url})
    plan = WritePlan(
        "contacts", "email", [FieldSpec("connector_segments", "multi_select", "Segments", ["Beta", "VIP"])]
    )
    destination.prepare(plan)
    fields = {f.name: f for f in destination.fields("contacts")}
    assert fields["email"].kind == "text"
    assert fields["connector_segments"].kind == "multi_select"
    assert set(fields["connector_segments"].options) >= {"Beta", "VIP"}
    assert "hs_object_id" not in fields  # read-only properties cannot be written
    destination.close()


def test_fields_with_a_refused_token_is_a_config_error(sandbox):
    destination = HubSpotDestination({"access_token": "wrong", "base_url": sandbox.url})
    with pytest.raises(ConfigError, match="access token"):
        destination.fields("contacts")
    destination.close()
