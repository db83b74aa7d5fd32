"""HubSpot CRM (contacts, companies) through the official ``hubspot-api-client``.

Writes are batch upserts keyed by a unique property (``email`` for contacts; for companies a custom property
with unique values, which ``prepare`` creates when missing). Every input carries ``objectWriteTraceId`` = the
record's key, so HubSpot answers 207 naming the inputs it refused and writes the others; when it fails a whole
batch anyway (400 without naming inputs), the batch is split in halves until the bad records stand alone.

Multi-select fields (e.g. the segments a contact is in) are HubSpot "multiple checkboxes" properties: an option
per choice, label = the choice as given (e.g. the segment name), value = ``option_value(choice)``, which is the
choice itself with ``%`` and ``;`` percent-escaped (``;`` separates values in HubSpot). Readable in HubSpot's
UI and exports, and one choice never collides with another. ``render_multi_select`` renders a field value the
same way; ``prepare`` adds missing options without touching existing ones.

Errors: 401/403 -> ``ConfigError``; 429, 423, 477, 5xx, timeouts and dropped connections -> ``TransientError``
(with HubSpot's wait when it gives one); content refused -> a rejected ``RecordResult`` with HubSpot's message.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import Field, SecretStr, field_validator

from connector.destinations.base import (
    ConfigError,
    Destination,
    DestinationConfig,
    FieldSpec,
    OutboundRecord,
    RecordResult,
    TransientError,
    WritePlan,
    retry_after_seconds,
)

log = logging.getLogger(__name__)

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


def _choices(values: Iterable[str]) -> list[str]:
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


class HubSpotConfig(DestinationConfig):
    access_token: SecretStr = Field(description="Private app access token (scopes: crm.objects.*, crm.schemas.*)")
    base_url: str | None = Field(None, description="API host; empty for HubSpot itself (e.g. a local sandbox)")
    timeout_s: tuple[float, float] = Field((5.0, 30.0), description="Connect and read timeouts, seconds")
    property_group: str = Field("connector", description="Property group that holds the properties we create")
    rate_limit_requests: int = Field(100, ge=1, description="Requests allowed per window (100 Free/Starter, 190 Pro)")
    rate_limit_seconds: float = Field(10.0, gt=0, description="Length of the rate-limit window, seconds")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("timeout_s", mode="before")
    @classmethod
    def _one_or_two_timeouts(cls, value: Any) -> Any:
        return (value, value) if isinstance(value, int | float) else value

    @field_validator("timeout_s")
    @classmethod
    def _positive_timeouts(cls, value: tuple[float, float]) -> tuple[float, float]:
        if min(value) <= 0:
            raise ValueError("timeouts must be positive")
        return value


class _Refused(Exception):
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


class _BoundBatch:
    """The generic objects batch api with the object type filled in, shaped like a contacts/companies batch api."""

    def __init__(self, batch: Any, object_type: str) -> None:
        self.api_client = batch.api_client
        for name in ("upsert", "create", "update", "read", "archive"):
            setattr(self, name, functools.partial(getattr(batch, name), object_type))


@dataclass(frozen=True)
class _ObjectApi:
    batch: Any  # the module's BatchApi
    models: Any  # the module (hubspot.crm.contacts, ...), for its model classes
    configuration: Any  # shared by the models we build, so building one does not build a Configuration


def _parse_body(raw: Any) -> dict[str, Any]:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        return {"message": str(raw)[:MAX_REASON]}
    return body if isinstance(body, dict) else {"message": str(body)[:MAX_REASON]}


def _message(body: Mapping[str, Any], fallback: str) -> str:
    """HubSpot's explanation: the per-property details with their codes when it gives them (e.g. ``Email address
    x is invalid (INVALID_EMAIL)``), else its message."""
    details = [d for d in body.get("errors") or [] if isinstance(d, dict) and d.get("message")]
    if details and all(d.get("code") for d in details):
        message = "; ".join(dict.fromkeys(f"{d['message']} ({d['code']})" for d in details))
    else:
        message = str(body.get("message") or fallback)
    return message[:MAX_REASON]


def _retry_after(status: int, headers: Mapping[str, str], body: Mapping[str, Any]) -> float | None:
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


def _type_problem(object_type: str, spec: FieldSpec, prop: Any) -> str | None:
    """Why an existing property cannot take a field's values (e.g. ``Segments`` into a number), or None."""
    if prop is None or spec.kind not in ACCEPTED_TYPES or prop.type in ACCEPTED_TYPES[spec.kind]:
        return None
    return (
        f"HubSpot property {object_type}.{spec.name} is of type {prop.type} ({prop.field_type}), but the value "
        f"mapped to it is {KIND_WORDS[spec.kind]}: map it to a property of type "
        + " or ".join(sorted(ACCEPTED_TYPES[spec.kind]))
        + " (or to a new name, which is created with the right type)"
    )


def _normal(identity: str) -> str:
    return identity.strip().lower()


def _identity_key(field: str, identity: str) -> str:
    """What makes two identities the same record: HubSpot lowercases emails; other values are kept as given."""
    return _normal(identity) if field == "email" else identity.strip()


# A HubSpot property's (type, fieldType) or type as a FieldSpec kind.
_FIELD_KINDS = {("enumeration", "checkbox"): "multi_select", ("string", "textarea"): "multiline"}
_TYPE_KINDS = {"number": "number", "date": "date", "datetime": "date", "bool": "bool"}


class HubSpotDestination(Destination):
    type = "hubspot"
    label = "HubSpot"
    Config = HubSpotConfig
    max_batch_size = 100
    default_rate_limit = (100, 10.0)
    objects = ("contacts", "companies")
    supports_remove = True
    updates_identity = True
    retries_each_request = True
    schema_version = "2"
    supports_create_only = True

    def __init__(self, config: HubSpotConfig | Mapping[str, Any]) -> None:
        super().__init__(config)
        import urllib3
        from hubspot import HubSpot
        from hubspot.crm import companies, contacts, lists, objects, properties, schemas
        from hubspot.crm.associations import v4 as associations

        options: dict[str, Any] = {"access_token": self.config.access_token.get_secret_value()}
        if self.config.base_url:
            options["host"] = self.config.base_url
        # No urllib3 retries: the sync engine retries, knowing a 429 from a refused record. False (not None)
        # also makes urllib3 raise timeouts and dropped connections as they are, not as MaxRetryError.
        self._client = client = HubSpot(retry=False, **options)
        crm = client.crm
        # Every attribute access builds a new ApiClient and connection pool: build each api once.
        self._apis = {
            "contacts": self._object_api(crm.contacts.batch_api, contacts),
            "companies": self._object_api(crm.companies.batch_api, companies),
        }
        self._objects_module = objects
        self._schemas = crm.schemas.core_api
        self._properties = crm.properties.core_api
        self._groups = crm.properties.groups_api
        self._property_models = properties
        self._property_configuration = self._properties.api_client.configuration
        self._api_errors: tuple[type[Exception], ...] = (
            contacts.ApiException,
            companies.ApiException,
            properties.ApiException,
            lists.ApiException,
            objects.ApiException,
            schemas.ApiException,
            associations.ApiException,
        )
        self._network_errors: tuple[type[Exception], ...] = (urllib3.exceptions.HTTPError, OSError)

    @staticmethod
    def _object_api(batch_api: Any, module: Any) -> _ObjectApi:
        return _ObjectApi(batch=batch_api, models=module, configuration=batch_api.api_client.configuration)

    @property
    def rate_limit(self) -> tuple[int, float]:
        return (self.config.rate_limit_requests, self.config.rate_limit_seconds)

    def render_multi_select(self, values: Iterable[str]) -> str:
        """Option values joined by ``;``, sorted and without repeats (the order HubSpot shows is its own)."""
        return ";".join(sorted({option_value(v) for v in _choices(values)}))

    # -- calls ----------------------------------------------------------------------------------------------

    def _call(self, method: Any, *args: Any, raw: bool = False, **kwargs: Any) -> Any:
        """One HTTP request (retried alone under ``requests_retried``); see ``_call_once``."""
        return self._request(self._call_once, method, *args, raw=raw, **kwargs)

    def _call_once(self, method: Any, *args: Any, raw: bool = False, **kwargs: Any) -> Any:
        """One HTTP request, with our timeout; failures translated to what the caller must decide.

        ``raw=True`` returns the answer's JSON as a dict instead of the client's models: building those parses
        every timestamp of every record (most of the time of a batch) for values we never read.
        """
        self._throttle()
        try:
            if not raw:
                return method(*args, _request_timeout=self.config.timeout_s, **kwargs)
            response = method(*args, _request_timeout=self.config.timeout_s, _preload_content=False, **kwargs)
            try:
                return _parse_body(response.data)
            finally:
                response.release_conn()
        except self._api_errors as exc:
            status = int(getattr(exc, "status", 0) or 0)
            body = _parse_body(getattr(exc, "body", None))
            message = _message(body, f"HTTP {status} {getattr(exc, 'reason', '') or ''}".strip())
            if status in (401, 403):
                raise ConfigError(f"HubSpot refused the access token ({status}): {message}") from exc
            if status in TRANSIENT_STATUSES or status == 0:
                headers = getattr(exc, "headers", None) or {}
                wait = _retry_after(status, headers, body)
                raise TransientError(f"HubSpot answered {status}: {message}", retry_after=wait) from exc
            raise _Refused(status, message, body) from exc
        except self._network_errors as exc:
            raise TransientError(f"HubSpot did not answer: {type(exc).__name__}: {exc}") from exc
        except AttributeError as exc:
            # The client turns TLS failures into an ApiException without a body, then fails decoding that body.
            if isinstance(exc.__context__, self._api_errors):
                raise TransientError(f"HubSpot connection failed: {exc.__context__.reason}") from exc.__context__
            raise

    @classmethod
    def accepts_object(cls, object_type: str) -> bool:
        """Contacts, companies, or a custom object by its object type id (``2-…``)."""
        return object_type in cls.objects or bool(CUSTOM_OBJECT.match(object_type))

    def _api(self, object_type: str) -> _ObjectApi:
        api = self._apis.get(object_type)
        if api is not None:
            return api
        if not CUSTOM_OBJECT.match(object_type):
            known = ", ".join(self._apis)
            raise ConfigError(
                f"HubSpot destination cannot write {object_type!r} (only {known}, or a custom object id 2-…)"
            )
        batch = self._client.crm.objects.batch_api
        api = self._apis[object_type] = _ObjectApi(
            batch=_BoundBatch(batch, object_type),
            models=self._objects_module,
            configuration=batch.api_client.configuration,
        )
        return api

    def _ensure_custom_object(self, object_type: str) -> None:
        """A custom object must be defined (its schema) before records or properties of it can be written."""
        if not CUSTOM_OBJECT.match(object_type):
            return
        try:
            self._call(self._schemas.get_by_id, object_type, raw=True)
        except _Refused as exc:
            raise ConfigError(f"HubSpot has no custom object {object_type}: {exc.message}") from exc

    def check(self) -> None:
        try:
            self._call(self._properties.get_by_name, "contacts", "email")
        except _Refused as exc:
            if exc.status != 404:  # authenticated either way; a 404 only says the property is not there
                raise ConfigError(f"HubSpot refused the check: {exc.message}") from exc

    def fields(self, object_type: str) -> list[FieldSpec]:
        """The object's properties as HubSpot lists them (read-only and hidden ones left out), by label."""
        self._api(object_type)
        try:
            answer = self._call(self._properties.get_all, object_type, raw=True)
        except _Refused as exc:
            raise ConfigError(f"cannot list HubSpot {object_type} properties: {exc.message}") from exc
        found = []
        for prop in answer.get("results") or []:
            modification = prop.get("modificationMetadata") or {}
            if prop.get("hidden") or modification.get("readOnlyValue"):
                continue
            kind = _FIELD_KINDS.get(
                (prop.get("type"), prop.get("fieldType")), _TYPE_KINDS.get(prop.get("type"), "text")
            )
            options = [o.get("value", "") for o in prop.get("options") or []]
            found.append(FieldSpec(prop.get("name", ""), kind, prop.get("label"), options))
        return sorted(found, key=lambda f: (f.label or f.name).lower())

    def close(self) -> None:
        for api in [*(a.batch for a in self._apis.values()), self._properties, self._groups]:
            api.api_client.rest_client.pool_manager.clear()

    # -- properties -----------------------------------------------------------------------------------------

    def prepare(self, plan: WritePlan) -> None:
        self._api(plan.object_type)
        self._ensure_custom_object(plan.object_type)
        self._ensure_group(plan.object_type)
        self._ensure_identity(plan.object_type, plan.identity_field)
        for spec in plan.fields:
            if spec.name != plan.identity_field:
                self._ensure_property(plan.object_type, spec)

    def _ensure_group(self, object_type: str) -> None:
        name = self.config.property_group
        group = self._property_models.PropertyGroupCreate(
            name=name, label=name.replace("_", " ").title(), display_order=-1
        )
        try:
            self._call(self._groups.create, object_type, group)
        except _Refused as exc:
            if exc.status != 409:  # 409: the group exists already
                raise ConfigError(f"cannot create HubSpot property group {name!r}: {exc.message}") from exc

    def _read_property(self, object_type: str, name: str) -> Any | None:
        try:
            return self._call(self._properties.get_by_name, object_type, name)
        except _Refused as exc:
            if exc.status == 404:
                return None
            raise ConfigError(f"cannot read HubSpot property {object_type}.{name}: {exc.message}") from exc

    def _create_property(self, object_type: str, spec: FieldSpec, unique: bool = False) -> Any:
        models = self._property_models
        kind = spec.kind
        if kind not in PROPERTY_TYPES:
            raise ConfigError(
                f"no HubSpot property type for {spec.name!r} of kind {kind!r} ({', '.join(PROPERTY_TYPES)})"
            )
        type_, field_type = PROPERTY_TYPES[kind]
        options = None
        if kind == "multi_select":
            options = [self._option(choice, order) for order, choice in enumerate(_choices(spec.options))]
        elif kind == "bool":
            options = [self._option_input("Yes", "true", 0), self._option_input("No", "false", 1)]
        create = models.PropertyCreate(
            name=spec.name,
            label=spec.label or spec.name.replace("_", " ").capitalize(),
            type=type_,
            field_type=field_type,
            group_name=self.config.property_group,
            options=options,
            has_unique_value=unique or None,
            local_vars_configuration=self._property_configuration,
        )
        try:
            return self._call(self._properties.create, object_type, create)
        except _Refused as exc:
            if exc.status == 409:  # created meanwhile by another run
                return self._read_property(object_type, spec.name)
            raise ConfigError(f"cannot create HubSpot property {object_type}.{spec.name}: {exc.message}") from exc

    def _option_input(self, label: str, value: str, order: int, hidden: bool = False, description: Any = None):
        return self._property_models.OptionInput(
            label=label,
            value=value,
            display_order=order,
            hidden=hidden,
            description=description,
            local_vars_configuration=self._property_configuration,
        )

    def _option(self, choice: str, order: int) -> Any:
        return self._option_input(choice[:MAX_OPTION_VALUE], option_value(choice), order)

    def _ensure_identity(self, object_type: str, name: str) -> None:
        if name in KNOWN_UNIQUE.get(object_type, ()):
            return
        prop = self._read_property(object_type, name)
        if prop is None:
            self._create_property(object_type, FieldSpec(name=name), unique=True)
        elif not prop.has_unique_value:
            raise ConfigError(
                f"HubSpot property {object_type}.{name} does not have unique values, so records cannot be matched "
                "by it; choose a unique property as the identity (or a new name, created unique)"
            )

    def _ensure_property(self, object_type: str, spec: FieldSpec) -> None:
        prop = self._read_property(object_type, spec.name)
        problem = _type_problem(object_type, spec, prop)
        if problem:
            raise ConfigError(problem)
        if prop is None:
            prop = self._create_property(object_type, spec)
        metadata = getattr(prop, "modification_metadata", None)
        if metadata is not None and getattr(metadata, "read_only_value", False):
            raise ConfigError(f"HubSpot property {object_type}.{spec.name} is read-only")
        if spec.kind == "multi_select" and prop is not None and prop.type == "enumeration":
            self._ensure_options(object_type, prop, spec.options)

    def _ensure_options(self, object_type: str, prop: Any, choices: Sequence[str]) -> None:
        """Add missing options. PATCH replaces the whole list, so existing options are sent back unchanged."""
        existing = list(prop.options or [])
        have = {option.value for option in existing}
        missing = [c for c in _choices(choices) if option_value(c) not in have]
        if not missing:
            return
        options = [
            self._option_input(o.label, o.value, o.display_order, bool(o.hidden), o.description) for o in existing
        ]
        start = max([o.display_order or 0 for o in existing], default=-1) + 1
        options += [self._option(choice, start + i) for i, choice in enumerate(missing)]
        update = self._property_models.PropertyUpdate(
            options=options, local_vars_configuration=self._property_configuration
        )
        try:
            self._call(self._properties.update, object_type, prop.name, update)
        except _Refused as exc:
            raise ConfigError(f"cannot add options to HubSpot property {prop.name}: {exc.message}") from exc

    def retire_options(self, object_type: str, field: str, choices: Sequence[str]) -> None:
        """Drop the options of ``choices`` from a multiple-checkbox property (PATCH with the others, unchanged)."""
        prop = self._read_property(object_type, field)
        if prop is None or prop.type != "enumeration":
            return
        drop = {option_value(choice) for choice in choices}
        existing = list(prop.options or [])
        keep = [o for o in existing if o.value not in drop]
        if len(keep) == len(existing):
            return
        options = [self._option_input(o.label, o.value, o.display_order, bool(o.hidden), o.description) for o in keep]
        update = self._property_models.PropertyUpdate(
            options=options, local_vars_configuration=self._property_configuration
        )
        try:
            self._call(self._properties.update, object_type, field, update)
        except _Refused as exc:
            raise ConfigError(f"cannot remove options from HubSpot property {field}: {exc.message}") from exc

    # -- records --------------------------------------------------------------------------------------------

    def write(self, plan: WritePlan, batch: Sequence[OutboundRecord]) -> list[RecordResult]:
        api = self._api(plan.object_type)
        results, records = self._screen(plan, batch)
        if records:
            moved, records = self._move(api, plan, records)
            results.update(moved)
        if records:
            if plan.mode == "update":
                results.update(self._update(api, plan, records))
            elif plan.mode == "create":
                results.update(self._create_only(api, plan, records))
            else:
                results.update(self._upsert(api, plan, records))
        return [results[record.key] for record in batch]

    def remove(self, plan: WritePlan, batch: Sequence[OutboundRecord]) -> list[RecordResult]:
        """Archive the records found by identity; those not found are gone already, which is what was asked."""
        api = self._api(plan.object_type)
        results, records = self._screen(plan, batch)
        found = self._find(api, plan, records)
        ids = list(dict.fromkeys(found.values()))
        if ids:
            inputs = [api.models.SimplePublicObjectId(id=i, local_vars_configuration=api.configuration) for i in ids]
            body = api.models.BatchInputSimplePublicObjectId(inputs=inputs, local_vars_configuration=api.configuration)
            try:
                self._call(api.batch.archive, body, raw=True)
            except _Refused as exc:
                raise ConfigError(f"HubSpot refused to archive {plan.object_type}: {exc.message}") from exc
        for record in records:
            results[record.key] = RecordResult.ok(record.key, found.get(record.key))
        return [results[record.key] for record in batch]

    def _move(
        self, api: _ObjectApi, plan: WritePlan, records: list[OutboundRecord]
    ) -> tuple[dict[str, RecordResult], list[OutboundRecord]]:
        """Records whose identity changed (HubSpot lets ``email`` change on a contact): update the contact they
        were delivered as, by its id (known, or found by the previous identity), so no second contact appears.
        Returns their results and the records left to upsert (unchanged identity, or the old one is gone)."""
        field = plan.identity_field
        moving = [
            r
            for r in records
            if r.previous_identity and _identity_key(field, r.previous_identity) != _identity_key(field, r.identity)
        ]
        if not moving:
            return {}, records
        ids = {r.key: r.remote_id for r in moving if r.remote_id}
        unknown = [replace(r, identity=r.previous_identity) for r in moving if not r.remote_id]
        if unknown:
            ids.update(self._find(api, plan, unknown))
        by_id = [r for r in moving if r.key in ids]
        results = self._update_by_id(api, plan, by_id, ids) if by_id else {}
        # An id HubSpot no longer knows (the contact was deleted or merged): upsert by the new identity instead.
        gone = {k for k, r in results.items() if r.status == "rejected" and "not found" in (r.reason or "").lower()}
        for key in gone:
            del results[key]
        return results, [r for r in records if r.key not in results]

    def _screen(
        self, plan: WritePlan, batch: Sequence[OutboundRecord]
    ) -> tuple[dict[str, RecordResult], list[OutboundRecord]]:
        """Refuse what must not be sent: more than a batch, no identity, one identity twice (HubSpot fails the
        whole batch for a repeated id)."""
        if len(batch) > self.max_batch_size:
            raise ValueError(f"at most {self.max_batch_size} records per batch, got {len(batch)}")
        results: dict[str, RecordResult] = {}
        records: list[OutboundRecord] = []
        seen: set[str] = set()
        for record in batch:
            identity = _identity_key(plan.identity_field, record.identity or "")
            if not identity:
                results[record.key] = RecordResult.rejected(record.key, f"no value for {plan.identity_field}")
            elif identity in seen:
                reason = f"{plan.identity_field} {record.identity!r} appears twice in one batch"
                results[record.key] = RecordResult.rejected(record.key, reason)
            else:
                seen.add(identity)
                records.append(record)
        return results, records

    def _inputs(
        self, api: _ObjectApi, records: Sequence[tuple[OutboundRecord, dict[str, Any]]], cls: Any, **common: Any
    ) -> list[Any]:
        """Batch inputs of one model class: trace id = key, properties rendered as strings."""
        return [
            cls(
                object_write_trace_id=record.key,
                properties={name: render_value(value) for name, value in record.properties.items()},
                local_vars_configuration=api.configuration,
                **common,
                **extra,
            )
            for record, extra in records
        ]

    def _upsert(self, api: _ObjectApi, plan: WritePlan, records: list[OutboundRecord]) -> dict[str, RecordResult]:
        inputs = self._inputs(
            api,
            [(record, {"id": record.identity}) for record in records],
            api.models.SimplePublicObjectBatchInputUpsert,
            id_property=plan.identity_field,
        )
        body = api.models.BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=inputs, local_vars_configuration=api.configuration
        )
        try:
            response = self._call(api.batch.upsert, body, raw=True)
        except _Refused as exc:
            return self._isolate(exc, plan, records, lambda part: self._upsert(api, plan, part))
        return _match_results(response, records, plan.identity_field)

    def _update(self, api: _ObjectApi, plan: WritePlan, records: list[OutboundRecord]) -> dict[str, RecordResult]:
        """Update only records HubSpot has: find them by identity, then update them by id."""
        found = self._find(api, plan, records)
        results = {
            r.key: RecordResult.rejected(r.key, "not found in HubSpot (update mode)")
            for r in records
            if r.key not in found
        }
        existing = [r for r in records if r.key in found]
        if existing:
            results.update(self._update_by_id(api, plan, existing, found))
        return results

    def _create_only(self, api: _ObjectApi, plan: WritePlan, records: list[OutboundRecord]) -> dict[str, RecordResult]:
        """Create only records HubSpot does not have: those it has are left alone (``exists``)."""
        found = self._find(api, plan, records)
        results = {r.key: RecordResult.exists(r.key, found[r.key]) for r in records if r.key in found}
        missing = [r for r in records if r.key not in found]
        if missing:
            results.update(self._upsert(api, plan, missing))
        return results

    def _update_by_id(
        self, api: _ObjectApi, plan: WritePlan, records: list[OutboundRecord], ids: Mapping[str, str]
    ) -> dict[str, RecordResult]:
        inputs = self._inputs(
            api, [(record, {"id": ids[record.key]}) for record in records], api.models.SimplePublicObjectBatchInput
        )
        body = api.models.BatchInputSimplePublicObjectBatchInput(
            inputs=inputs, local_vars_configuration=api.configuration
        )
        try:
            response = self._call(api.batch.update, body, raw=True)
        except _Refused as exc:
            return self._isolate(exc, plan, records, lambda part: self._update_by_id(api, plan, part, ids))
        by_id = {ids[record.key]: record for record in records}
        return _match_results(response, records, plan.identity_field, by_id=by_id)

    def _find(self, api: _ObjectApi, plan: WritePlan, records: Sequence[OutboundRecord]) -> dict[str, str]:
        """Remote ids of the records HubSpot has, by key (batch read by the identity property)."""
        if not records:
            return {}
        inputs = [
            api.models.SimplePublicObjectId(id=r.identity, local_vars_configuration=api.configuration) for r in records
        ]
        body = api.models.BatchReadInputSimplePublicObjectId(
            id_property=plan.identity_field,
            inputs=inputs,
            properties=[plan.identity_field],
            local_vars_configuration=api.configuration,
        )
        try:
            response = self._call(api.batch.read, body, raw=True)
        except _Refused as exc:
            raise ConfigError(
                f"HubSpot refused to read {plan.object_type} by {plan.identity_field}: {exc.message}"
            ) from exc
        keys = _IdentityIndex(records)
        found: dict[str, str] = {}
        for result in response.get("results") or []:
            record = keys.get((result.get("properties") or {}).get(plan.identity_field))
            if record is not None:
                found[record.key] = str(result["id"])
        return found

    def _isolate(self, exc: _Refused, plan: WritePlan, records: list[OutboundRecord], send) -> dict[str, RecordResult]:
        """HubSpot refused the whole batch without saying which input: halve it until the bad ones stand alone."""
        if exc.status == 404:
            raise ConfigError(f"HubSpot does not know {plan.object_type!r}: {exc.message}") from exc
        if "PROPERTY_DOESNT_EXIST" in exc.codes or "non-unique" in exc.message:
            raise ConfigError(f"HubSpot refused the {plan.object_type} batch: {exc.message}") from exc
        if len(records) == 1:
            return {records[0].key: RecordResult.rejected(records[0].key, exc.message)}
        log.debug("HubSpot refused a batch of %d (%s); splitting it", len(records), exc.status)
        middle = len(records) // 2
        return {**send(records[:middle]), **send(records[middle:])}


class _IdentityIndex:
    """Records by identity value: exact first, then case-insensitively (HubSpot lowercases emails)."""

    def __init__(self, records: Iterable[OutboundRecord]) -> None:
        records = list(records)
        self.exact = {r.identity: r for r in records}
        self.folded = {_normal(r.identity): r for r in records}

    def get(self, value: Any) -> OutboundRecord | None:
        if value is None:
            return None
        return self.exact.get(value) or self.folded.get(_normal(str(value)))


def _match_results(
    response: Mapping[str, Any],
    records: Sequence[OutboundRecord],
    identity_field: str,
    by_id: Mapping[str, OutboundRecord] | None = None,
) -> dict[str, RecordResult]:
    """One result per record from a 200 or 207 batch answer (JSON), whatever order HubSpot listed them in.

    Refusals are matched by ``objectWriteTraceId`` (= key) or, failing that, by an identity named in the error's
    context; successes by trace id, by remote id (updates) or by the identity property's value.
    """
    by_key = {record.key: record for record in records}
    identities = _IdentityIndex(records)
    results: dict[str, RecordResult] = {}

    errors = [e for e in response.get("errors") or [] if isinstance(e, dict)]
    for error in errors:
        context = error.get("context") or {}
        keys = [k for k in context.get("objectWriteTraceId") or [] if k in by_key]
        if not keys:
            named = (identities.get(v) for values in context.values() for v in values or [])
            keys = [record.key for record in named if record is not None]
        reason = _message(error, "refused by HubSpot")
        for key in keys:
            results[key] = RecordResult.rejected(key, reason)

    unmatched = []
    for result in response.get("results") or []:
        remote_id = str(result.get("id"))
        record = by_key.get(result.get("objectWriteTraceId") or "")
        if record is None and by_id is not None:
            record = by_id.get(remote_id)
        if record is None:
            record = identities.get((result.get("properties") or {}).get(identity_field))
        if record is None or record.key in results:
            unmatched.append(remote_id)
        else:
            results[record.key] = RecordResult.ok(record.key, remote_id)

    rest = [record for record in records if record.key not in results]
    if len(rest) == 1 and len(unmatched) == 1:
        results[rest[0].key] = RecordResult.ok(rest[0].key, unmatched[0])
    elif not errors or len(unmatched) >= len(rest):
        # A complete answer (200) means every input was written, even if we cannot tell which id is whose.
        results.update((record.key, RecordResult.ok(record.key)) for record in rest)
    else:
        reason = "HubSpot's answer named neither a result nor an error for this record"
        results.update((record.key, RecordResult.retry(record.key, reason)) for record in rest)
    return results
