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

Where it lives: this module holds the configuration, the client and its calls, and the properties (``prepare``,
options); record writes are in ``hubspot_records``, HubSpot's wire rules (types, option values, refusals, waits) in
``hubspot_wire``, lists in ``hubspot_lists`` and associations in ``hubspot_associations``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from connector.destinations.base import (
    ConfigError,
    Destination,
    DestinationConfig,
    FieldSpec,
    TransientError,
    WritePlan,
)
from connector.destinations.hubspot_records import HubSpotRecords
from connector.destinations.hubspot_wire import (
    CUSTOM_OBJECT,
    FIELD_KINDS,
    KNOWN_UNIQUE,
    MAX_OPTION_VALUE,
    PROPERTY_TYPES,
    TRANSIENT_STATUSES,
    TYPE_KINDS,
    BoundBatch,
    ObjectApi,
    Refused,
    distinct_choices,
    hubspot_message,
    option_value,
    parse_body,
    retry_after,
    type_problem,
)

log = logging.getLogger(__name__)


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


class HubSpotDestination(HubSpotRecords, Destination):
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

    @classmethod
    def preload(cls) -> None:
        import hubspot  # noqa: F401  (a fifth of a second of imports: the client's API modules and models)
        from hubspot.crm import companies, contacts, lists, objects, properties, schemas  # noqa: F401
        from hubspot.crm.associations import v4  # noqa: F401

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
    def _object_api(batch_api: Any, module: Any) -> ObjectApi:
        return ObjectApi(batch=batch_api, models=module, configuration=batch_api.api_client.configuration)

    @property
    def rate_limit(self) -> tuple[int, float]:
        return (self.config.rate_limit_requests, self.config.rate_limit_seconds)

    @property
    def budget_key(self) -> str:
        """HubSpot counts a private app's requests per portal, and the app is its token: destinations holding the
        same token share one budget, named by a digest of the token (never the token) and the API's address."""
        token = self.config.access_token.get_secret_value().encode()
        host = urlsplit(self.config.base_url).netloc if self.config.base_url else "api.hubapi.com"
        return f"hubspot:{host}:{hashlib.sha256(token).hexdigest()[:32]}"

    def render_multi_select(self, values: Iterable[str]) -> str:
        """Option values joined by ``;``, sorted and without repeats (the order HubSpot shows is its own)."""
        return ";".join(sorted({option_value(v) for v in distinct_choices(values)}))

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
                return parse_body(response.data)
            finally:
                response.release_conn()
        except self._api_errors as exc:
            status = int(getattr(exc, "status", 0) or 0)
            body = parse_body(getattr(exc, "body", None))
            message = hubspot_message(body, f"HTTP {status} {getattr(exc, 'reason', '') or ''}".strip())
            if status in (401, 403):
                raise ConfigError(f"HubSpot refused the access token ({status}): {message}") from exc
            if status in TRANSIENT_STATUSES or status == 0:
                headers = getattr(exc, "headers", None) or {}
                wait = retry_after(status, headers, body)
                raise TransientError(f"HubSpot answered {status}: {message}", retry_after=wait) from exc
            raise Refused(status, message, body) from exc
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

    def _api(self, object_type: str) -> ObjectApi:
        api = self._apis.get(object_type)
        if api is not None:
            return api
        if not CUSTOM_OBJECT.match(object_type):
            known = ", ".join(self._apis)
            raise ConfigError(
                f"HubSpot destination cannot write {object_type!r} (only {known}, or a custom object id 2-…)"
            )
        batch = self._client.crm.objects.batch_api
        api = self._apis[object_type] = ObjectApi(
            batch=BoundBatch(batch, object_type),
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
        except Refused as exc:
            raise ConfigError(f"HubSpot has no custom object {object_type}: {exc.message}") from exc

    def check(self) -> None:
        try:
            self._call(self._properties.get_by_name, "contacts", "email")
        except Refused as exc:
            if exc.status != 404:  # authenticated either way; a 404 only says the property is not there
                raise ConfigError(f"HubSpot refused the check: {exc.message}") from exc

    def fields(self, object_type: str) -> list[FieldSpec]:
        """The object's properties as HubSpot lists them (read-only and hidden ones left out), by label."""
        self._api(object_type)
        try:
            answer = self._call(self._properties.get_all, object_type, raw=True)
        except Refused as exc:
            raise ConfigError(f"cannot list HubSpot {object_type} properties: {exc.message}") from exc
        found = []
        for prop in answer.get("results") or []:
            modification = prop.get("modificationMetadata") or {}
            if prop.get("hidden") or modification.get("readOnlyValue"):
                continue
            kind = FIELD_KINDS.get((prop.get("type"), prop.get("fieldType")), TYPE_KINDS.get(prop.get("type"), "text"))
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

    def inspect(self, plan: WritePlan) -> list[str]:
        """Every reason ``prepare`` would refuse the plan, from reading the object's schema and properties only."""
        self._api(plan.object_type)
        self._ensure_custom_object(plan.object_type)  # reads the schema; refuses an undefined object
        problems = []
        identity = plan.identity_field
        if identity not in KNOWN_UNIQUE.get(plan.object_type, ()):
            prop = self._read_property(plan.object_type, identity)
            if prop is not None and not prop.has_unique_value:
                problems.append(_not_unique(plan.object_type, identity))
        for spec in plan.fields:
            if spec.name == identity:
                continue
            prop = self._read_property(plan.object_type, spec.name)
            problem = type_problem(plan.object_type, spec, prop) or _read_only(plan.object_type, spec.name, prop)
            if problem:
                problems.append(problem)
        return problems

    def _ensure_group(self, object_type: str) -> None:
        name = self.config.property_group
        group = self._property_models.PropertyGroupCreate(
            name=name, label=name.replace("_", " ").title(), display_order=-1
        )
        try:
            self._call(self._groups.create, object_type, group)
        except Refused as exc:
            if exc.status != 409:  # 409: the group exists already
                raise ConfigError(f"cannot create HubSpot property group {name!r}: {exc.message}") from exc

    def _read_property(self, object_type: str, name: str) -> Any | None:
        try:
            return self._call(self._properties.get_by_name, object_type, name)
        except Refused as exc:
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
            options = [self._option(choice, order) for order, choice in enumerate(distinct_choices(spec.options))]
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
        except Refused as exc:
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
            raise ConfigError(_not_unique(object_type, name))

    def _ensure_property(self, object_type: str, spec: FieldSpec) -> None:
        prop = self._read_property(object_type, spec.name)
        problem = type_problem(object_type, spec, prop)
        if problem:
            raise ConfigError(problem)
        if prop is None:
            prop = self._create_property(object_type, spec)
        problem = _read_only(object_type, spec.name, prop)
        if problem:
            raise ConfigError(problem)
        if spec.kind == "multi_select" and prop is not None and prop.type == "enumeration":
            self._ensure_options(object_type, prop, spec.options)

    def _ensure_options(self, object_type: str, prop: Any, choices: Sequence[str]) -> None:
        """Add missing options. PATCH replaces the whole list, so existing options are sent back unchanged."""
        existing = list(prop.options or [])
        have = {option.value for option in existing}
        missing = [c for c in distinct_choices(choices) if option_value(c) not in have]
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
        except Refused as exc:
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
        except Refused as exc:
            raise ConfigError(f"cannot remove options from HubSpot property {field}: {exc.message}") from exc

    # -- records --------------------------------------------------------------------------------------------


def _not_unique(object_type: str, name: str) -> str:
    return (
        f"HubSpot property {object_type}.{name} does not have unique values, so records cannot be matched by it; "
        "choose a unique property as the identity (or a new name, created unique)"
    )


def _read_only(object_type: str, name: str, prop: Any) -> str | None:
    metadata = getattr(prop, "modification_metadata", None)
    if metadata is not None and getattr(metadata, "read_only_value", False):
        return f"HubSpot property {object_type}.{name} is read-only"
    return None
