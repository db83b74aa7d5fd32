"""From a source row to the ingestion item it becomes, its key, and its hash.

Items are exactly what the ingestion API takes (``identify``, ``group``, ``track``, ``objects`` items), so rows go
through the same validation and writes as API batches, and segments, ``Segments`` and syncs follow alike.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from connector.models import ModelKind
from connector.sources.reader import json_value

KEY_SEPARATOR = "\x1f"
MAX_KEY = 500


@dataclass
class Layout:
    """How one model's rows map, resolved against the query's columns once per run."""

    kind: ModelKind
    mapping: dict[str, Any]
    key_columns: list[str]
    attribute_columns: list[str]

    def column_of(self, field: str) -> str | None:
        """The column an item field came from (for error messages)."""
        head = field.split(".")[0].split("[")[0]
        if head in ("attributes", "properties", "fields"):
            rest = field[len(head) + 1 :].split(".")[0]
            return rest or None
        value = self.mapping.get(head)
        return value if isinstance(value, str) else None


def _text(value: Any) -> Any:
    """Ids arrive as numbers from many schemas; the ingestion API takes them as strings."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float | str):
        return str(value)
    return value


def row_key(layout: Layout, row: dict[str, Any]) -> str | None:
    columns = layout.key_columns
    if len(columns) == 1:
        value = row[columns[0]]
        if value is None:
            return None
        return value if type(value) is str else str(_text(json_value(columns[0], value)))
    parts = [row[c] for c in columns]
    if any(p is None for p in parts):
        return None
    return KEY_SEPARATOR.join(str(_text(json_value(c, p))) for c, p in zip(columns, parts, strict=True))


def row_item(layout: Layout, row: dict[str, Any]) -> dict[str, Any]:
    """The ingestion item of a row. ``TypeMappingError`` when a value cannot be mapped."""
    m = layout.mapping

    def col(field: str) -> Any:
        column = m.get(field)
        return json_value(column, row[column]) if column else None

    attributes = {c: json_value(c, row[c]) for c in layout.attribute_columns}
    kind = layout.kind
    if kind == ModelKind.USERS:
        item = {"external_id": _text(col("external_id")), "email": col("email"), "attributes": attributes}
    elif kind == ModelKind.ACCOUNTS:
        item = {"external_id": _text(col("external_id")), "attributes": attributes}
        for field in ("domain", "name"):
            if m.get(field):
                item[field] = col(field)
    elif kind == ModelKind.ACCOUNT_LINKS:
        item = {"external_id": _text(col("user_external_id")), "accounts": [_text(col("account_external_id"))]}
    elif kind == ModelKind.EVENTS:
        item = {
            "external_id": _text(col("user_external_id")),
            "email": col("user_email"),
            "account_external_id": _text(col("account_external_id")),
            "message_id": _text(col("message_id")),
            "occurred_at": col("occurred_at"),
            "name": m["event"] if m.get("event") else col("event_name"),
            "properties": attributes,
        }
    else:
        item = {
            "type": m["object_type"],
            "external_id": _text(col("external_id")),
            "user_external_id": _text(col("user_external_id")),
            "user_email": col("user_email"),
            "account_external_id": _text(col("account_external_id")),
            "fields": attributes,
        }
    # Absent, not null: null means "clear" for some fields, and an unmapped field must leave stored data alone.
    return {k: v for k, v in item.items() if v is not None or k in ("attributes", "properties", "fields")}


def cleared_item(layout: Layout, key: str) -> dict[str, Any]:
    """The item that undoes a row gone from the source: its attributes cleared, or its link removed."""
    if layout.kind == ModelKind.ACCOUNT_LINKS:
        user, _, account = key.partition(KEY_SEPARATOR)
        return {"external_id": user, "remove_accounts": [account]}
    identity = "email" if layout.kind == ModelKind.USERS and not layout.mapping.get("external_id") else "external_id"
    return {identity: key, "attributes": {c: None for c in layout.attribute_columns}}


_HASH_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def item_hash(item: dict[str, Any]) -> str:
    encoded = _HASH_ENCODER.encode(item)
    return hashlib.blake2b(encoded.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def key_digest(key: str) -> int:
    """A short stand-in for a key, for the set of keys seen in a full read (8 bytes instead of the key)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")
