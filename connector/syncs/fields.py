"""The fields a destination object has, read from the destination itself (to map onto real properties)."""

from __future__ import annotations

from dataclasses import dataclass

from connector.destinations import DestinationError, FieldSpec
from connector.models import Destination
from connector.security import SecretBox
from connector.syncs import connections


@dataclass(frozen=True)
class DestinationFields:
    """``fields`` is None when the destination takes any field name; ``error`` says why they could not be read."""

    fields: list[FieldSpec] | None
    error: str | None = None


def destination_fields(destination: Destination, box: SecretBox, object_type: str) -> DestinationFields:
    """Ask the destination for ``object_type``'s fields. Talks to it: call outside any transaction."""
    plugin = None
    try:
        plugin = connections.build_destination(destination, box)
        return DestinationFields(plugin.fields(object_type))
    except DestinationError as exc:
        return DestinationFields(None, str(exc))
    except Exception as exc:  # a destination answering nonsense must not become our 500
        return DestinationFields(None, f"unexpected {type(exc).__name__}: {exc}")
    finally:
        if plugin is not None:
            plugin.close()
