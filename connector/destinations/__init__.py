"""Destinations, found by entry point (group ``connector.destinations``), and what the API shows of their options.

A destination type is a ``Destination`` subclass registered in a package's metadata, e.g. in ``pyproject.toml``::

    [project.entry-points."connector.destinations"]
    hubspot = "connector.destinations.hubspot:HubSpotDestination"

Loading a type imports its module only; client libraries are imported when an instance is built.
"""

from __future__ import annotations

import functools
import types
import typing
from importlib.metadata import entry_points
from typing import Any

from pydantic import SecretStr

from connector.destinations.base import (
    ConfigError,
    Destination,
    DestinationConfig,
    DestinationError,
    FieldSpec,
    OutboundRecord,
    RecordResult,
    TransientError,
    WritePlan,
)

ENTRY_POINT_GROUP = "connector.destinations"

__all__ = [
    "ConfigError",
    "Destination",
    "DestinationConfig",
    "DestinationError",
    "FieldSpec",
    "OutboundRecord",
    "RecordResult",
    "TransientError",
    "UnknownDestinationTypeError",
    "WritePlan",
    "config_schema",
    "get_destination_type",
    "load_destination_types",
    "preload_destination_types",
    "secret_fields",
]


class UnknownDestinationTypeError(ConfigError, LookupError):
    """No destination type is registered under that name."""


@functools.cache
def load_destination_types() -> dict[str, type[Destination]]:
    """Every registered destination type by name (cached: entry points do not change while running)."""
    found: dict[str, type[Destination]] = {}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        cls = entry_point.load()
        if not (isinstance(cls, type) and issubclass(cls, Destination)):
            raise TypeError(f"entry point {entry_point.name!r} ({entry_point.value}) is not a Destination subclass")
        found[entry_point.name] = cls
    return dict(sorted(found.items()))


def preload_destination_types() -> None:
    """Import every destination type's client library now (``Destination.preload``): long-lived processes call it
    at start, before their first runs."""
    for destination_type in load_destination_types().values():
        destination_type.preload()


def get_destination_type(name: str) -> type[Destination]:
    types_ = load_destination_types()
    try:
        return types_[name]
    except KeyError:
        known = ", ".join(types_) or "none"
        raise UnknownDestinationTypeError(f"unknown destination type {name!r} (known: {known})") from None


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_secret(arg) for arg in typing.get_args(annotation))
    return False


def secret_fields(config_cls: type[DestinationConfig]) -> list[str]:
    """Names of the options typed ``SecretStr`` (alone or optional): stored encrypted, never shown back."""
    return [name for name, info in config_cls.model_fields.items() if _is_secret(info.annotation)]


def config_schema(destination_type: type[Destination] | str) -> dict[str, Any]:
    """The JSON schema of a destination type's options, with ``secretFields`` naming the secret ones."""
    cls = get_destination_type(destination_type) if isinstance(destination_type, str) else destination_type
    schema = cls.Config.model_json_schema()
    schema["secretFields"] = secret_fields(cls.Config)
    return schema
