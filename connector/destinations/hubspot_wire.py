"""HubSpot's rules as the destination meets them on the wire: property types, option values, how a value is
rendered, what a refusal says and how long a 429 asks to wait, and the batch APIs of contacts, companies and
custom objects in one shape."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson

from connector.destinations.base import FieldSpec, retry_after_seconds

# Properties HubSpot matches records by without declaring them unique in the properties API.
KNOWN_UNIQUE = {"contacts": frozenset({"email", "hs_object_id"}), "companies": frozenset({"hs_object_id"})}

# FieldSpec.kind -> (type, fieldType) of the HubSpot property created for it.
PROPERTY_TYPES = {
    "text": ("string", "text"),
    "multiline": ("string", "textarea"),
    "number": ("number", "number"),
    "date": ("date", "date"),
    "bool": ("bool", "booleancheckbox"),
    "multi_select": ("enumeration", "checkbox"),
}

# Which existing HubSpot property types take the values of each field kind (strings take anything rendered).
ACCEPTED_TYPES = {
    "text": {"string"},
    "multiline": {"string"},
    "number": {"number", "string"},
    "date": {"date", "datetime", "string"},
    "bool": {"bool", "enumeration", "string"},
    "multi_select": {"enumeration", "string"},
}
KIND_WORDS = {
    "text": "text",
    "multiline": "multi-line text",
    "number": "a number",
    "date": "a date",
    "bool": "true or false",
    "multi_select": "a list of names",
}
CUSTOM_OBJECT = re.compile(r"^2-\d+$")  # a custom object's object type id
MAX_OPTION_VALUE = 3000  # characters HubSpot allows in an option value
MAX_REASON = 1000  # characters of HubSpot's message kept as a rejection reason
TRANSIENT_STATUSES = frozenset({408, 423, 429, 477}) | frozenset(range(500, 600))


def option_value(choice: str) -> str:
    """The option value HubSpot stores for a multi-select choice (the choice, with ``%`` and ``;`` escaped)."""
    value = choice.replace("%", "%25").replace(";", "%3B")
    if len(value) > MAX_OPTION_VALUE:
        digest = hashlib.sha256(choice.encode()).hexdigest()[:16]
        value = value[: MAX_OPTION_VALUE - 17] + "~" + digest
    return value


def distinct_choices(values: Iterable[str]) -> list[str]:
    """Distinct, non-empty choices in the order given (an empty option value is not allowed)."""
    return [v for v in dict.fromkeys(values) if v]


def render_value(value: Any) -> str:
    """A property value as HubSpot takes it: always a string, ``""`` to clear."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return ";".join(render_value(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


class Refused(Exception):
    """HubSpot refused a request for its content (4xx other than auth and rate limits)."""

    def __init__(self, status: int, message: str, body: dict[str, Any]) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body

    @property
    def codes(self) -> set[str]:
        codes = {detail.get("code") for detail in self.body.get("errors") or [] if isinstance(detail, dict)}
        return {c for c in codes if c} | ({self.body["category"]} if self.body.get("category") else set())


class BoundBatch:
    """The generic objects batch api with the object type filled in, shaped like a contacts/companies batch api."""

    def __init__(self, batch: Any, object_type: str) -> None:
        self.api_client = batch.api_client
        for name in ("upsert", "create", "update", "read", "archive"):
            setattr(self, name, functools.partial(getattr(batch, name), object_type))


@dataclass(frozen=True)
class ObjectApi:
    batch: Any  # the module's BatchApi
    models: Any  # the module (hubspot.crm.contacts, ...), for its model classes
    configuration: Any  # shared by the models we build, so building one does not build a Configuration


def parse_body(raw: Any) -> dict[str, Any]:
    """An answer's JSON object; anything else as its ``message``. orjson first (a batch answer of 100 records
    parses several times faster), ``json`` for what orjson refuses. HubSpot writes ids and property values as
    strings, so orjson reading an integer beyond 64 bits as a float costs nothing here."""
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except ValueError:
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        try:
            body = json.loads(raw)
        except ValueError:
            return {"message": str(raw)[:MAX_REASON]}
    return body if isinstance(body, dict) else {"message": str(body)[:MAX_REASON]}


def hubspot_message(body: Mapping[str, Any], fallback: str) -> str:
    """HubSpot's explanation: the per-property details with their codes when it gives them (e.g. ``Email address
    x is invalid (INVALID_EMAIL)``), else its message."""
    details = [d for d in body.get("errors") or [] if isinstance(d, dict) and d.get("message")]
    if details and all(d.get("code") for d in details):
        message = "; ".join(dict.fromkeys(f"{d['message']} ({d['code']})" for d in details))
    else:
        message = str(body.get("message") or fallback)
    return message[:MAX_REASON]


def retry_after(status: int, headers: Mapping[str, str], body: Mapping[str, Any]) -> float | None:
    """How long HubSpot asks us to wait: Retry-After when sent, else what the rate-limit policy implies."""
    wait = retry_after_seconds(headers.get("Retry-After"))
    if status == 423:
        return max(wait or 0.0, 2.0)  # locked during heavy writes: HubSpot asks for at least 2 s
    if wait is not None or status != 429:
        return wait
    policy = str(body.get("policyName") or "").upper()
    if policy == "SECONDLY":
        return 1.0
    if policy == "DAILY":
        return 3600.0  # the day's budget is spent; it resets at midnight in the account's time zone
    try:  # the rolling window's length: wait for it to clear
        return max(float(headers.get("X-HubSpot-RateLimit-Interval-Milliseconds") or "") / 1000, 1.0)
    except ValueError:
        return 10.0


def type_problem(object_type: str, spec: FieldSpec, prop: Any) -> str | None:
    """Why an existing property cannot take a field's values (e.g. ``Segments`` into a number), or None."""
    if prop is None or spec.kind not in ACCEPTED_TYPES or prop.type in ACCEPTED_TYPES[spec.kind]:
        return None
    return (
        f"HubSpot property {object_type}.{spec.name} is of type {prop.type} ({prop.field_type}), but the value "
        f"mapped to it is {KIND_WORDS[spec.kind]}: map it to a property of type "
        + " or ".join(sorted(ACCEPTED_TYPES[spec.kind]))
        + " (or to a new name, which is created with the right type)"
    )


def normal_identity(identity: str) -> str:
    return identity.strip().lower()


def identity_key(field: str, identity: str) -> str:
    """What makes two identities the same record: HubSpot lowercases emails; other values are kept as given."""
    return normal_identity(identity) if field == "email" else identity.strip()


# A HubSpot property's (type, fieldType) or type as a FieldSpec kind.
FIELD_KINDS = {("enumeration", "checkbox"): "multi_select", ("string", "textarea"): "multiline"}
TYPE_KINDS = {"number": "number", "date": "date", "datetime": "date", "bool": "bool"}
