"""What one item of an ingestion batch may contain, as pydantic models.

Items are validated one by one (``connector.ingest.batches``) so a batch can be taken in part. Every string and
JSON value an item carries is checked here to be storable as it is on every backend: no NUL characters, no lone
surrogates, no NaN or infinite numbers, bounded depth and size. Anything that passes these models can be written
without a database error.
"""

from __future__ import annotations

import functools
import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from connector.models import Platform
from connector.text import check_text, normalize_email

MAX_JSON_CHARS = 64 * 1024
MAX_KEY_CHARS = 100
# A timestamp before this is a client bug (a zero value, seconds taken for milliseconds), not history.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
# Clocks drift; events from a little in the future are accepted, events from next year are not.
FUTURE_SLACK = timedelta(days=1)

DOMAIN_RE = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
# Attribute and field names reach SQL as JSON path labels; quotes and control characters would break them.
KEY_RE = re.compile(r'^[^"\\\x00-\x1f\x7f]+$')


@functools.lru_cache(maxsize=4096)
def check_key(value: str) -> str:
    """A valid attribute or field name (stripped). Cached: the same few names come with every item of a batch."""
    value = value.strip()
    if not value:
        raise ValueError("names must not be empty")
    if len(value) > MAX_KEY_CHARS:
        raise ValueError(f"names must be at most {MAX_KEY_CHARS} characters")
    if not KEY_RE.match(value):
        raise ValueError("names must not contain quotes, backslashes or control characters")
    return check_text(value)


def check_json_object(value: dict[str, Any]) -> dict[str, Any]:
    """Attribute/property maps: named keys, values any JSON that PostgreSQL's jsonb and SQLite both keep."""
    for key in value:
        check_key(key)
        if key != key.strip():
            raise ValueError(f"name {key!r} has leading or trailing spaces")
    if _flat_and_small(value):
        return value
    try:
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise ValueError("numbers must be finite (no NaN or Infinity)") from None
    except RecursionError:
        raise ValueError("is nested too deeply") from None
    if len(encoded) > MAX_JSON_CHARS:
        raise ValueError(f"must be at most {MAX_JSON_CHARS} characters as JSON")
    # JSON escapes NUL as \u0000 even with ensure_ascii=False; jsonb refuses it.
    if "\\u0000" in encoded:
        raise ValueError("must not contain NUL characters")
    try:
        encoded.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


# Up to this many flat values, a map cannot exceed MAX_JSON_CHARS when each string is this short: even escaped
# six characters for one, 30 x (100 for the key + 6 x 256 + quotes and separators) stays under 64 KiB.
_FLAT_VALUES = 30
_FLAT_STRING = 256
_FLAT_INTEGER = 2**63


def _flat_and_small(value: dict[str, Any]) -> bool:
    """True when every value is a short valid string, an integer, a finite float, a boolean or null: the common
    shape, checked without encoding the whole map (which costs more than the rest of an item's validation)."""
    if len(value) > _FLAT_VALUES:
        return False
    for item in value.values():
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, int):
            if -_FLAT_INTEGER < item < _FLAT_INTEGER:
                continue
            return False
        if isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError("numbers must be finite (no NaN or Infinity)")
            continue
        if not isinstance(item, str) or len(item) > _FLAT_STRING:
            return False
        check_text(item)
    return True


def normalize_domain(value: str) -> str:
    value = check_text(value).strip().lower().removeprefix("www.")
    if len(value) > 255 or not DOMAIN_RE.match(value):
        raise ValueError("is not a valid domain name (like example.com)")
    return value


def normalize_timestamp(value: datetime) -> datetime:
    """Naive timestamps are UTC; every timestamp must lie between 1970 and a day from now."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    if value < EARLIEST:
        raise ValueError("must not be before 1970-01-01")
    if value > datetime.now(UTC) + FUTURE_SLACK:
        raise ValueError("must not be more than a day in the future")
    return value


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


Text = Annotated[str, AfterValidator(check_text)]
Id = Annotated[str, BeforeValidator(_strip), Field(min_length=1, max_length=255), AfterValidator(check_text)]
Email = Annotated[str, AfterValidator(normalize_email), Field(max_length=400)]
Domain = Annotated[str, AfterValidator(normalize_domain), Field(max_length=300)]
Key = Annotated[str, AfterValidator(check_key)]
Tag = Annotated[str, BeforeValidator(_strip), Field(min_length=1, max_length=100), AfterValidator(check_text)]
JsonObject = Annotated[dict[str, Any], AfterValidator(check_json_object)]
Timestamp = Annotated[datetime, AfterValidator(normalize_timestamp)]
Tags = Annotated[list[Tag], Field(max_length=100)]
Ids = Annotated[list[Id], Field(max_length=100)]


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserRef(Item):
    """A user named by external id and/or email; the external id wins when both name someone."""

    external_id: Id | None = Field(None, description="Your id of the user")
    email: Email | None = Field(None, description="Stored lowercase and trimmed")

    @model_validator(mode="after")
    def _named(self):
        if self.external_id is None and self.email is None:
            raise ValueError("external_id or email is required")
        return self


class IdentifyItem(UserRef):
    """Create or update a user.

    ``attributes`` merge into the stored ones (a ``null`` value removes that attribute). ``tags`` are added and
    ``remove_tags`` removed; other tags stay. ``accounts`` links the user to accounts by their external ids
    (an unknown account is created as a stub), ``remove_accounts`` unlinks. Identity (external id, email) is set
    or changed here but never cleared.
    """

    attributes: JsonObject = Field(default_factory=dict)
    tags: Tags = Field(default_factory=list)
    remove_tags: Tags = Field(default_factory=list)
    accounts: Ids = Field(default_factory=list, description="External ids of accounts to link the user to")
    remove_accounts: Ids = Field(default_factory=list, description="External ids of accounts to unlink")
    default_channel: Literal["email", "sms", "push", "whatsapp", "in_app"] | None = Field(
        None, description="The channel sequences reach this person on (kept when omitted)"
    )


class GroupItem(Item):
    """Create or update an account (a company), optionally linking users to it.

    ``attributes``, ``tags`` and ``remove_tags`` behave as in identify. ``domain`` and ``name`` are set when
    given (``null`` clears them). ``users`` links users by external id or email (unknown users are created).
    """

    external_id: Id = Field(description="Your id of the account")
    domain: Domain | None = None
    name: Annotated[Text | None, Field(max_length=255)] = None
    attributes: JsonObject = Field(default_factory=dict)
    tags: Tags = Field(default_factory=list)
    remove_tags: Tags = Field(default_factory=list)
    users: Annotated[list[UserRef], Field(max_length=1000)] = Field(default_factory=list)


class EventItem(UserRef):
    occurred_at: Timestamp | None = Field(None, description="ISO 8601; naive times are UTC; default: now")
    message_id: Id | None = Field(
        None,
        description="Your unique id of this event in the workspace: an event already recorded with it is skipped "
        "(status duplicate), so a batch can be sent again safely. Without one, every send records the event.",
    )
    account_external_id: Id | None = Field(None, description="The account the event happened in (created if new)")
    properties: JsonObject = Field(default_factory=dict)


class TrackItem(EventItem):
    """Something a user did. An unknown user is created from ``external_id``/``email``."""

    name: Annotated[Text, BeforeValidator(_strip), Field(min_length=1, max_length=200)]


class PageItem(EventItem):
    """A page view: stored as an event of kind ``page`` named ``name`` (default ``page``)."""

    name: Annotated[Text, BeforeValidator(_strip), Field(min_length=1, max_length=200)] = "page"
    url: Annotated[Text | None, Field(max_length=8192)] = None
    title: Annotated[Text | None, Field(max_length=2000)] = None


class DeviceItem(UserRef):
    """A user's device, upserted by (platform, vendor_device_id); a device seen with another user moves to them.

    ``push_token`` is kept when absent and cleared by ``null``.
    """

    platform: Platform
    vendor_device_id: Id = Field(description="IDFV on iOS, Android ID on Android, a browser id on the web")
    push_token: Annotated[Text | None, Field(max_length=4096)] = None
    last_seen_at: Timestamp | None = Field(None, description="Default: now")


class ObjectItem(Item):
    """A record of a custom object type, upserted by (type, external_id); ``fields`` merge like attributes.

    The type is created on first use, with the link fields given then. A record is linked to a user directly
    (``user_external_id``/``user_email``, the user is created if unknown) or through the type's
    ``user_link_field``: the field whose value is a user's external id (a user identified later is linked then).
    The same holds for accounts with ``account_external_id`` and ``account_link_field``.
    """

    type: Key = Field(description="Object type name, e.g. order")
    external_id: Id
    fields: JsonObject = Field(default_factory=dict)
    user_external_id: Id | None = None
    user_email: Email | None = None
    account_external_id: Id | None = None
    user_link_field: Key | None = Field(None, description="Only when the type is created")
    account_link_field: Key | None = Field(None, description="Only when the type is created")
