"""Computed properties of users and accounts, materialised in ``computed_values``; ``Segments`` is the first.

``refresh_computed`` recomputes properties for a scope of subjects (set-based), ``get_computed`` reads them.
"""

from connector.computed.activity import EVENT_COUNT, event_count_property
from connector.computed.properties import (
    ComputedProperty,
    Scope,
    computed_properties,
    computed_property,
    register,
)
from connector.computed.segments import SEGMENTS, segments_property
from connector.computed.values import get_computed, refresh_computed, refresh_for_changes

register(segments_property)
register(event_count_property)

__all__ = [
    "EVENT_COUNT",
    "SEGMENTS",
    "ComputedProperty",
    "Scope",
    "computed_properties",
    "computed_property",
    "get_computed",
    "refresh_computed",
    "refresh_for_changes",
    "register",
]
