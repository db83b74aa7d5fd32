"""Destination types come from entry points; their options schema names the secret ones."""

from __future__ import annotations

import subprocess
import sys

import pytest

from connector.destinations import (
    UnknownDestinationTypeError,
    config_schema,
    get_destination_type,
    load_destination_types,
    secret_fields,
)
from connector.destinations.base import ConfigError
from connector.destinations.file import FileDestination
from connector.destinations.hubspot import HubSpotConfig, HubSpotDestination
from connector.destinations.webhook import WebhookDestination


def test_the_three_destinations_are_registered() -> None:
    assert load_destination_types() == {
        "file": FileDestination,
        "hubspot": HubSpotDestination,
        "webhook": WebhookDestination,
    }
    assert get_destination_type("hubspot") is HubSpotDestination


def test_an_unknown_type_is_a_config_error_naming_the_known_ones() -> None:
    with pytest.raises(UnknownDestinationTypeError, match="known: file, hubspot, webhook") as unknown:
        get_destination_type("salesforce")
    assert isinstance(unknown.value, ConfigError)


def test_schemas_list_their_secret_fields() -> None:
    assert secret_fields(HubSpotConfig) == ["access_token"]
    schema = config_schema("hubspot")
    assert schema["secretFields"] == ["access_token"] and "access_token" in schema["required"]
    assert schema["properties"]["access_token"]["writeOnly"] is True
    assert config_schema(WebhookDestination)["secretFields"] == ["secret"]
    assert config_schema("file")["secretFields"] == []


def test_destinations_import_no_client_library_database_or_web_layer_until_used() -> None:
    code = (
        "import sys, connector.destinations as d; d.load_destination_types();"
        "bad = [m for m in ('hubspot', 'sqlalchemy', 'flask', 'connector.models', 'connector.db',"
        " 'connector.segments', 'connector.syncs', 'connector.api') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_the_objects_a_type_accepts_can_be_asked_of_the_class() -> None:
    assert HubSpotDestination.accepts_object("contacts") and not HubSpotDestination.accepts_object("deals")
    assert WebhookDestination.accepts_object("anything") and FileDestination.accepts_object("orders")


def test_preloading_imports_each_types_client_library_before_any_instance_is_built():
    check = "import sys; import connector.destinations as d; {}print('hubspot.crm.contacts' in sys.modules)"
    for preload, loaded in (("", "False"), ("d.preload_destination_types(); ", "True")):
        result = subprocess.run([sys.executable, "-c", check.format(preload)], capture_output=True, text=True)
        assert result.stdout.strip() == loaded, result.stderr
