"""The sandbox's custom object schemas (``/crm-object-schemas/v3/schemas``), so custom objects can be written.

Creating a schema defines an object type with an ``objectTypeId`` ``2-<n>``; records and properties of that type
are then reached by its id or its name (as on HubSpot), and a ``2-<n>`` no schema defines is refused (HubSpot: 400
"Unable to infer object type from: 2-…"). The schema's properties become the type's properties; its
``primaryDisplayProperty`` and ``requiredProperties`` must be among them.
"""

from __future__ import annotations

import re
from typing import Any

CUSTOM_ID = re.compile(r"^2-\d+$")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")

SCHEMA_ROUTES = [
    ("POST", r"^/crm-object-schemas/v3/schemas$", "schema-create"),
    ("GET", r"^/crm-object-schemas/v3/schemas/(?P<object_type>[^/]+)$", "schema-get"),
]
SCHEMA_WRITE_ROUTES = {"schema-create"}


class SchemasMixin:
    """Custom object schemas; mixed into ``HubSpotSandbox`` (see ``ListsMixin`` for what it provides)."""

    def _reset_schemas(self) -> None:
        self._schemas: dict[str, dict[str, Any]] = {}  # objectTypeId -> schema
        self._next_schema = 1

    def custom_object_name(self, object_type: str) -> str | None:
        """The name of a custom object type given by id (or name), None when no schema defines it."""
        for schema in self._schemas.values():
            if object_type in (schema["objectTypeId"], schema["name"]):
                return schema["name"]
        return None

    def _unknown_object(self, object_type: str | None) -> Any | None:
        """HubSpot's answer for a ``2-…`` object type no schema defines, else None."""
        if object_type and CUSTOM_ID.match(object_type) and self.custom_object_name(object_type) is None:
            return self._fail(400, f"Unable to infer object type from: {object_type}", "VALIDATION_ERROR")
        return None

    def _schema_create(self, body: Any, query: Any):
        if not isinstance(body, dict):
            return self._fail(400, "Invalid input JSON: expected an object")
        name = body.get("name")
        properties = body.get("properties") or []
        names = {p.get("name") for p in properties if isinstance(p, dict)}
        problems = []
        if not isinstance(name, str) or not NAME.match(name):
            problems.append("name must be lowercase letters, digits and underscores")
        if not properties:
            problems.append("properties must define at least one property")
        if body.get("primaryDisplayProperty") not in names:
            problems.append("primaryDisplayProperty must be one of the properties")
        if not set(body.get("requiredProperties") or []) <= names:
            problems.append("requiredProperties must be among the properties")
        if problems:
            return self._fail(400, "; ".join(problems))
        if self.custom_object_name(name) is not None or name in ("contacts", "companies"):
            return self._fail(409, f"An object type named {name} already exists.", "CONFLICT")
        object_type_id = f"2-{self._next_schema}"
        self._next_schema += 1
        store = self._store(name)
        store.type_id = object_type_id
        group = next(iter(store.groups))
        for prop in properties:
            store.properties[prop["name"]] = {
                "name": prop["name"],
                "label": prop.get("label") or prop["name"],
                "type": prop.get("type", "string"),
                "fieldType": prop.get("fieldType", "text"),
                "groupName": group,
                "hasUniqueValue": bool(prop.get("hasUniqueValue")),
                "options": prop.get("options") or [],
                "modificationMetadata": {"readOnlyValue": False, "readOnlyDefinition": False, "archivable": True},
            }
            if prop.get("hasUniqueValue"):
                store.unique.add(prop["name"])
                store.indexes.setdefault(prop["name"], {})
        schema = {
            "id": str(self._next_schema + 1000),
            "objectTypeId": object_type_id,
            "name": name,
            "fullyQualifiedName": f"p_{name}",
            "labels": body.get("labels") or {"singular": name, "plural": name},
            "primaryDisplayProperty": body["primaryDisplayProperty"],
            "requiredProperties": list(body.get("requiredProperties") or []),
            "properties": [store.properties[n] for n in names],
            "associations": [],
            "archived": False,
        }
        self._schemas[object_type_id] = schema
        return self._answer(201, schema)

    def _schema_get(self, object_type: str, body: Any, query: Any):
        for schema in self._schemas.values():
            if object_type in (schema["objectTypeId"], schema["name"], schema["fullyQualifiedName"]):
                return self._answer(200, schema)
        return self._fail(404, f"Unable to infer object type from: {object_type}", "OBJECT_NOT_FOUND")
