"""What a client sends to configure sources and models, and the rules each kind of model's mapping follows."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from connector.errors import InvalidError
from connector.ingest.items import check_text
from connector.models import ModelKind
from connector.schedules import ScheduleError, trigger_for


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


# Every string is checked to be storable as it is (no NUL: PostgreSQL text and JSONB refuse it).
Name = Annotated[str, BeforeValidator(_strip), Field(min_length=1, max_length=200), AfterValidator(check_text)]
Column = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(check_text)]
Constant = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(check_text)]


class Mapping(BaseModel):
    """Which column gives which field of the item a row becomes; ``attributes`` are the attribute columns (event
    properties, object fields). Left out, every column not mapped otherwise (nor the cursor) is an attribute."""

    model_config = ConfigDict(extra="forbid")

    external_id: Column | None = None
    email: Column | None = None
    domain: Column | None = None
    name: Column | None = None
    user_external_id: Column | None = None
    user_email: Column | None = None
    account_external_id: Column | None = None
    message_id: Column | None = None
    occurred_at: Column | None = None
    event_name: Column | None = Field(None, description="Column holding the event name")
    event: Constant | None = Field(None, description="One event name for every row (instead of event_name)")
    object_type: Constant | None = Field(None, description="Object type name for every row (objects)")
    attributes: Annotated[list[Column], Field(max_length=500)] | None = None


# kind -> (fields allowed, groups of which one field is required, key fields in order)
RULES: dict[ModelKind, tuple[set[str], list[tuple[str, ...]], tuple[str, ...]]] = {
    ModelKind.USERS: ({"external_id", "email", "attributes"}, [("external_id", "email")], ("external_id", "email")),
    ModelKind.ACCOUNTS: (
        {"external_id", "domain", "name", "attributes"},
        [("external_id",)],
        ("external_id",),
    ),
    ModelKind.ACCOUNT_LINKS: (
        {"user_external_id", "account_external_id"},
        [("user_external_id",), ("account_external_id",)],
        ("user_external_id", "account_external_id"),
    ),
    ModelKind.EVENTS: (
        {
            "user_external_id",
            "user_email",
            "account_external_id",
            "message_id",
            "occurred_at",
            "event_name",
            "event",
            "attributes",
        },
        [("user_external_id", "user_email"), ("message_id",), ("occurred_at",), ("event_name", "event")],
        ("message_id",),
    ),
    ModelKind.OBJECTS: (
        {"object_type", "external_id", "user_external_id", "user_email", "account_external_id", "attributes"},
        [("object_type",), ("external_id",)],
        ("external_id",),
    ),
}
# Fields whose value is a constant, not a column.
CONSTANTS = {"event", "object_type"}
DELETES = {"none", "clear", "remove"}
DELETES_KINDS = {ModelKind.USERS, ModelKind.ACCOUNTS, ModelKind.ACCOUNT_LINKS}


class SourceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    url: str = Field(min_length=1, max_length=4000, description="SQLAlchemy URL; its password is stored encrypted")
    schedule: dict[str, Any] | None = Field(None, description='{"kind": "manual" | "interval" | "cron", ...}')
    enabled: bool = True

    @field_validator("name", "url")
    @classmethod
    def _text(cls, value: str) -> str:
        return check_text(value)


class SourcePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    url: str | None = Field(None, min_length=1, max_length=4000, description="The masked password keeps the stored one")

    @field_validator("url")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return check_text(value) if value is not None else None

    schedule: dict[str, Any] | None = None
    enabled: bool | None = None


class ModelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: Literal["users", "accounts", "account_links", "events", "objects"]
    query: str = Field(min_length=1, max_length=100_000, description="A SELECT, run by the source")
    mapping: Mapping
    cursor_column: Column | None = Field(None, description="Incremental by this column; none: by a hash diff")
    deletes: Literal["none", "clear", "remove"] = Field(
        "none",
        description="Rows gone from the source: none (left alone), clear (attributes cleared), remove (the subject "
        "erased as by the erasure API); account links are unlinked by either",
    )
    enabled: bool = True

    @field_validator("query")
    @classmethod
    def _query(cls, value: str) -> str:
        if not value.strip(" \t\r\n;"):
            raise ValueError("must not be blank")
        return check_text(value)


class ModelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    query: str | None = Field(None, min_length=1, max_length=100_000)
    mapping: Mapping | None = None
    cursor_column: Column | None = None
    deletes: Literal["none", "clear", "remove"] | None = None
    enabled: bool | None = None

    @field_validator("query")
    @classmethod
    def _query(cls, value: str | None) -> str | None:
        return None if value is None else ModelIn._query(value)


def check_mapping(kind: ModelKind, mapping: Mapping, deletes: str) -> None:
    """Refuse fields this kind does not take, missing required ones, and deletes it cannot apply."""
    allowed, required, _ = RULES[kind]
    given = {name for name, value in mapping.model_dump().items() if value is not None}
    errors = [
        {"field": f"mapping.{name}", "reason": f"is not a field of {kind.value} models"}
        for name in sorted(given - allowed)
    ]
    for group in required:
        if not given & set(group):
            errors.append({"field": f"mapping.{group[0]}", "reason": "is required (" + " or ".join(group) + ")"})
    if mapping.event_name and mapping.event:
        errors.append({"field": "mapping.event", "reason": "give event or event_name, not both"})
    if deletes != "none" and kind not in DELETES_KINDS:
        errors.append({"field": "deletes", "reason": f"{kind.value} models cannot undo deleted rows"})
    if errors:
        raise InvalidError(errors)


def check_schedule(schedule: Any) -> dict[str, Any]:
    """The schedule in its normal form, or ``InvalidError`` naming the part that is wrong."""
    schedule = schedule or {"kind": "manual"}
    if isinstance(schedule, dict):
        allowed = {"manual": {"kind"}, "interval": {"kind", "minutes"}, "cron": {"kind", "expression", "timezone"}}
        extra = set(schedule) - allowed.get(schedule.get("kind"), set(schedule))
        if extra:
            raise InvalidError.one(f"schedule.{sorted(extra)[0]}", "not a setting of this kind of schedule")
    try:
        trigger_for(schedule)
    except ScheduleError as exc:
        raise InvalidError.one("schedule" if exc.field == "schedule" else f"schedule.{exc.field}", exc.reason) from None
    if schedule["kind"] == "cron":
        return {
            "kind": "cron",
            "expression": " ".join(schedule["expression"].split()),
            "timezone": schedule.get("timezone", "UTC"),
        }
    return dict(schedule)


def mapped_columns(mapping: dict[str, Any]) -> dict[str, str]:
    """item field -> column, for the fields read from a column (not constants nor the attribute list)."""
    return {k: v for k, v in mapping.items() if v is not None and k not in CONSTANTS and k != "attributes"}


def key_columns(kind: ModelKind, mapping: dict[str, Any]) -> list[str]:
    """The columns whose values name a row: the first key field mapped (users: external_id, else email)."""
    keys = RULES[kind][2]
    if kind == ModelKind.USERS:
        return [mapping["external_id"] if mapping.get("external_id") else mapping["email"]]
    return [mapping[k] for k in keys]


def attribute_columns(mapping: dict[str, Any], columns: list[str], cursor_column: str | None) -> list[str]:
    if mapping.get("attributes") is not None:
        return list(mapping["attributes"])
    taken = set(mapped_columns(mapping).values()) | {cursor_column}
    return [c for c in columns if c not in taken]


def missing_columns(mapping: dict[str, Any], cursor_column: str | None, columns: list[str]) -> list[dict[str, str]]:
    """Errors for mapped columns the query does not answer."""
    present = set(columns)
    listed = ", ".join(columns[:50])
    errors = [
        {"field": f"mapping.{k}", "reason": f"column {v!r} is not among the query's columns ({listed})"}
        for k, v in mapped_columns(mapping).items()
        if v not in present
    ]
    errors += [
        {"field": f"mapping.attributes[{i}]", "reason": f"column {c!r} is not among the query's columns ({listed})"}
        for i, c in enumerate(mapping.get("attributes") or [])
        if c not in present
    ]
    if cursor_column is not None and cursor_column not in present:
        errors.append(
            {
                "field": "cursor_column",
                "reason": f"column {cursor_column!r} is not among the query's columns ({listed})",
            }
        )
    return errors
