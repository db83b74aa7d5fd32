"""Computed properties: values derived from a subject's data, materialised in ``computed_values``.

A property declares its name, the subject types it applies to, the kinds of change that invalidate it (the kinds of
``connector.changes``; ``event:*`` matches every event name; ``membership`` means segment membership) and a
set-based ``compute`` giving one ``(subject_id, value)`` row per subject that has a value. A subject without a row
has the property's ``default``: rows are written only for subjects with a value, so an empty workspace costs
nothing and reading a subject that never had a value needs no evaluation.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func
from sqlalchemy.orm import Session

from connector.models import SubjectType

# A scope of subjects: None for every subject of the workspace, else ids (a collection or a one-column select).
Scope = Collection[int] | Select | None


@dataclass(frozen=True)
class ComputedProperty:
    """One computed property. Subclasses implement ``compute``."""

    name: str
    subject_types: frozenset[SubjectType]
    dependencies: frozenset[str]
    default: Any = None

    def compute(self, session: Session, workspace_id: int, subject_type: SubjectType, subject_ids: Scope) -> Select:
        """A select of ``(subject_id, value)``, ``value`` a JSON value, for the subjects in scope that have one."""
        raise NotImplementedError

    def depends_on(self, kinds: Iterable[str]) -> bool:
        """Whether a change of any of ``kinds`` can change this property."""
        for kind in kinds:
            for dependency in self.dependencies:
                if kind == dependency or (dependency.endswith("*") and kind.startswith(dependency[:-1])):
                    return True
        return False


_registry: dict[str, ComputedProperty] = {}


def register(prop: ComputedProperty) -> ComputedProperty:
    """Add a property to the registry (its name must be new)."""
    if prop.name in _registry:
        raise ValueError(f"a computed property named {prop.name!r} is already registered")
    _registry[prop.name] = prop
    return prop


def computed_properties(subject_type: SubjectType | None = None) -> list[ComputedProperty]:
    """The registered properties, in name order; only those for ``subject_type`` when given."""
    return [p for _, p in sorted(_registry.items()) if subject_type is None or subject_type in p.subject_types]


def computed_property(name: str) -> ComputedProperty:
    """The registered property of that name (``KeyError`` when there is none)."""
    return _registry[name]


def json_value(session: Session, expression: ColumnElement) -> ColumnElement:
    """A scalar SQL expression as a JSON value for ``computed_values.value`` on the session's dialect."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_jsonb(expression)
    return func.json_quote(expression)
