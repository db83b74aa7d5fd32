"""The condition language of segments: a tree of groups and leaves, validated into pydantic models.

A tree is JSON. Every node has a ``type``; groups hold ``children``, leaves test one thing about a subject (a user
or an account). Example — people who viewed a premium offer at least 5 times in the last 7 days, did not buy in
that time, and are not on the free plan::

    {"type": "all", "children": [
        {"type": "page_view", "url": {"operator": "contains", "value": "/offers/premium"},
         "count": {"operator": "at_least", "value": 5}, "window": {"within_last": {"amount": 7, "unit": "days"}}},
        {"type": "event", "name": "purchase", "operator": "not_performed",
         "window": {"within_last": {"amount": 7, "unit": "days"}}},
        {"type": "none", "children": [{"type": "attribute", "name": "plan", "operator": "eq", "value": "free"}]}
    ]}

Groups
    ``all`` (every child matches), ``any`` (at least one), ``none`` (no child matches). An empty ``all`` matches
    everyone, an empty ``any`` matches no one, an empty ``none`` matches everyone. At most 200 children a group and
    20 levels of nodes (a users aggregation's condition counts as a level).

``attribute``  (users and accounts)
    ``{"type": "attribute", "name": "plan", "operator": "eq", "value": "pro"}`` tests a custom attribute;
    ``{"type": "attribute", "field": "email", "operator": "ends_with", "value": "@acme.com"}`` tests a built-in
    field instead: users have ``email``, ``external_id``, ``created_at``, ``default_channel``; accounts
    ``domain``, ``name``, ``external_id``, ``created_at``. Exactly one of ``name`` and ``field`` is given.
    ``email`` and ``domain`` are stored in lower case, so their values are compared in lower case.
    ``"of": "account"`` (user segments only) matches a user when ANY of the user's accounts has the attribute or
    field.

    ``value_type`` is ``string``, ``number``, ``date`` or ``boolean``. When omitted it is inferred: true/false are
    booleans, numbers are numbers, strings are strings except for the date-only operators (``before``, ``after``,
    ``within_last``, ``more_than_ago``) and for ``between`` two strings, which are dates. An ISO 8601 string with
    ``eq`` is compared as a string unless ``value_type`` says ``date`` (and ``eq`` is not a date operator).

    Operators by type:

    ==========  ===============================================================================================
    string      eq, ne, contains, not_contains, starts_with, ends_with, in, not_in (case-sensitive)
    number      eq, ne, in, not_in, gt, gte, lt, lte, between (inclusive ``[low, high]``)
    date        before, after, gt, gte, lt, lte, between (inclusive), within_last, more_than_ago
    boolean     eq, ne
    any type    exists, not_exists (no value; ``value_type`` is ignored)
    ==========  ===============================================================================================

    A stored value is compared only with values of the condition's type: JSON numbers are numbers (the string
    ``"42"`` is not), JSON true/false are booleans, and dates are strings in ISO 8601 form
    ``YYYY-MM-DD[(T| )HH:MM[:SS[.ffffff]][Z|±HH:MM]]`` with a real calendar day (no offset means UTC; years
    1000–9999). A missing value, JSON null or a value of another type never matches an operator other than
    ``not_exists`` — including the negative ones: ``ne``, ``not_contains`` and ``not_in`` match only subjects
    that HAVE a value of the type which differs. To include subjects without the value, wrap the positive
    operator in ``none``: ``{"type": "none", "children": [<plan eq pro>]}``. ``exists`` means present and not
    null. Dates compare as instants to millisecond precision (SQLite keeps milliseconds). ``within_last`` is
    ``now - amount <= value <= now``; ``more_than_ago`` is ``value < now - amount``. The amount is
    ``{"amount": 7, "unit": "minutes" | "hours" | "days"}``.

``tag``  (users and accounts)
    ``{"type": "tag", "operator": "has" | "has_not", "value": "vip"}``.

``event``  (users)
    ``{"type": "event", "name": "purchase", "operator": "performed" | "not_performed",
    "count": {"operator": "at_least" | "at_most" | "exactly", "value": N}, "window": <window> | null,
    "filters": [{"property": "amount", "operator": "gt", "value": 100}]}``. Counts the user's track events of
    that name inside the window whose properties pass every filter (filters use the attribute operators and
    typing over ``events.properties``). ``count`` defaults to at least 1; ``not_performed`` is the negation of
    ``performed`` with the same count, window and filters. A window is ``{"within_last": {"amount": 7, "unit":
    "days"}}`` (``now - amount <= occurred_at <= now``) or ``{"between": [start, end]}`` (``start <= occurred_at
    < end``; naive times are UTC); ``null`` means ever.

``page_view``  (users)
    ``{"type": "page_view", "operator": "viewed" | "not_viewed", "url": {"operator": "equals" | "contains" |
    "starts_with" | "matches", "value": "/offers/*"} | null, "count": ..., "window": ...}`` counts page-view
    events (``events`` of kind ``page``) whose URL matches. ``matches`` is a case-sensitive glob: ``*`` any run of
    characters, ``?`` one character, everything else literal.

``device``  (users)
    ``{"type": "device", "operator": "has" | "has_not", "platform": "ios" | "android" | "web" | null,
    "last_seen": <window> | null}``: the user has (or has not) a device of that platform seen in the window.

``object``  (users and accounts)
    ``{"type": "object", "object_type": "orders", "operator": "has" | "has_not", "count": ...,
    "filters": [{"field": "status", "operator": "eq", "value": "paid"}]}`` counts records of the workspace's
    object type linked to the subject (``objects.user_id`` / ``objects.account_id``) whose fields pass the filters.

``users``  (accounts only)
    ``{"type": "users", "quantifier": "any" | "none" | "all" | "at_least" | "at_most", "count": N,
    "condition": <user tree>}`` quantifies over the account's users (``count`` only with at_least / at_most).
    ``all`` needs at least one user: an account without users does not match ``all`` (no vacuous truth).

``message``  (users)
    ``{"type": "message", "operator": "did" | "did_not", "event": "opened", "sequence_id": 3 | null,
    "step": 0 | null, "count": ..., "window": ...}`` counts the user's message events (``message_events``: ``sent``,
    ``delivered``, ``opened``, ``clicked``, ``bounced``, ``unsubscribed``) of that kind, of that sequence and step
    when given, inside the window (on ``occurred_at``). ``did_not`` is the negation of ``did``. A sequence id that
    is not the workspace's matches no event.

``segment`` / ``account_segment``
    ``{"type": "segment", "operator": "in" | "not_in", "segment_id": 12}`` reads the stored membership of a
    segment of the same subject type. ``account_segment`` (user segments only) matches a user when any of the
    user's accounts is (``in``) or none is (``not_in``) in the account segment. Whether the segment exists and
    has the right subject type is checked with ``validation.validate_references``.

Limits: strings at most 1,000 characters (names 100, tags 100), ``in`` lists at most 1,000 values, counts
0..1,000,000, relative amounts 1..1,000,000 and at most 100 years, at most 2,000 nodes a tree.

``validation.parse_conditions`` returns the tree with every inferred ``value_type`` filled in, so
``node.model_dump(mode="json")`` is the normalised form and parses back to an equal tree.

Adding a leaf (condition type) — the one checklist; ``tests/segments/test_condition_tables.py`` fails until every
table has it:

1. here: its pydantic model, in ``Node``, ``NODE_TYPES`` (and ``USER_ONLY`` / ``ACCOUNT_ONLY``) and its section of
   this docstring; in ``validation.py`` its checks beyond the model's (``_semantic_errors``); in ``trees.py`` its
   change kinds in ``_collect`` (``dependencies``) and its windows or relative comparisons in ``_relative_units``
   when it has any;
2. ``compiler.py``: its SQL clause in ``LEAVES``;
3. ``explain.py``: what it observes of one subject in ``OBSERVERS`` (reusing the compiler's clauses);
4. ``tests/segments/reference.py``: its ``_<type>`` method in the reference evaluator, which the property-based
   tests compare with the compiler on both databases.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_DEPTH = 20
MAX_CHILDREN = 200
MAX_NODES = 2000
MAX_STRING = 1000
MAX_NAME = 100
MAX_LIST = 1000
MAX_COUNT = 1_000_000
MAX_FILTERS = 50
MAX_WINDOW = timedelta(days=36_500)
# Integers beyond this lose exactness in SQLite's and JavaScript's doubles; comparisons would differ by backend.
MAX_SAFE_INTEGER = 2**53 - 1

ValueType = Literal["string", "number", "date", "boolean"]
AttributeOperator = Literal[
    "eq", "ne", "contains", "not_contains", "starts_with", "ends_with", "in", "not_in",
    "gt", "gte", "lt", "lte", "between", "exists", "not_exists",
    "before", "after", "within_last", "more_than_ago",
]  # fmt: skip
Unit = Literal["minutes", "hours", "days"]
UNITS: dict[str, timedelta] = {"minutes": timedelta(minutes=1), "hours": timedelta(hours=1), "days": timedelta(days=1)}

USER_FIELDS: dict[str, ValueType] = {
    "email": "string", "external_id": "string", "created_at": "date", "default_channel": "string",
}  # fmt: skip
ACCOUNT_FIELDS: dict[str, ValueType] = {
    "domain": "string", "name": "string", "external_id": "string", "created_at": "date",
}  # fmt: skip
LOWER_CASE_FIELDS = frozenset({"email", "domain"})

OPERATORS_BY_TYPE: dict[str, frozenset[str]] = {
    "string": frozenset({"eq", "ne", "contains", "not_contains", "starts_with", "ends_with", "in", "not_in"}),
    "number": frozenset({"eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between"}),
    "date": frozenset({"before", "after", "gt", "gte", "lt", "lte", "between", "within_last", "more_than_ago"}),
    "boolean": frozenset({"eq", "ne"}),
}
PRESENCE_OPERATORS = frozenset({"exists", "not_exists"})
DATE_ONLY_OPERATORS = frozenset({"before", "after", "within_last", "more_than_ago"})
RELATIVE_OPERATORS = frozenset({"within_last", "more_than_ago"})

# The one accepted form of a date held in an attribute (and of a date in a condition). The calendar is checked
# by the pattern itself (30-day months, February and leap years) so that PostgreSQL can cast whatever matches
# without an error. \A and \Z mean the same in Python and in PostgreSQL's regular expressions.
_YEAR = r"[1-9][0-9]{3}"
_MONTH_DAY = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_LEAP_YEAR = r"(?:[1-9][0-9](?:0[48]|[2468][048]|[13579][26])|(?:1[26]|[2468][048]|[3579][26])00)"
_DATE = rf"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?"
_OFFSET = r"(?:Z|[+-](?:0[0-9]|1[0-4]):[0-5][0-9])"
ISO_DATETIME_PATTERN = rf"\A{_DATE}(?:[T ]{_TIME}{_OFFSET}?)?\Z"
# Whether a string of the form above carries its own offset (otherwise it is UTC).
ISO_OFFSET_PATTERN = rf"{_OFFSET}\Z"
_ISO_DATETIME = re.compile(ISO_DATETIME_PATTERN)
SAFE_KEY = re.compile(r'\A[^"\\\x00-\x1f\x7f]+\Z')


class ConditionError(ValueError):
    """A condition tree is invalid. ``errors`` is ``[{"field": "conditions.children[2].value", "reason": ...}]``,
    ready to be returned as the ``errors`` of a problem document."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['reason']}" for e in errors[:5]))


def parse_date(value: str) -> datetime | None:
    """An ISO 8601 string of the accepted form as an aware UTC datetime; None when it is not one."""
    if not isinstance(value, str) or not _ISO_DATETIME.match(value):
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Duration(_Model):
    amount: int = Field(ge=1, le=MAX_COUNT)
    unit: Unit

    def as_timedelta(self) -> timedelta:
        return self.amount * UNITS[self.unit]


class Window(_Model):
    """Exactly one of ``within_last`` (relative to now) and ``between`` (``[start, end)``, UTC)."""

    within_last: Duration | None = None
    between: tuple[datetime, datetime] | None = None

    @field_validator("between")
    @classmethod
    def _utc(cls, value: tuple[datetime, datetime] | None) -> tuple[datetime, datetime] | None:
        if value is None:
            return None
        try:
            return tuple(v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC) for v in value)
        except OverflowError:
            raise ValueError("is out of range") from None

    def bounds(self, now: datetime) -> tuple[datetime, datetime, bool]:
        """``(start, end, end_inclusive)`` of the window at ``now``."""
        if self.within_last is not None:
            return now - self.within_last.as_timedelta(), now, True
        assert self.between is not None
        return self.between[0], self.between[1], False


class Count(_Model):
    operator: Literal["at_least", "at_most", "exactly"] = "at_least"
    value: int = Field(default=1, ge=0, le=MAX_COUNT)


class Comparison(_Model):
    """Operator, value and type shared by attribute leaves and event/object filters."""

    operator: AttributeOperator
    value: Any = None
    value_type: ValueType | None = None


class PropertyFilter(Comparison):
    """A test on one property of an event (``events.properties``)."""

    property: str


class FieldFilter(Comparison):
    """A test on one field of a custom object record (``objects.fields``)."""

    field: str


class Group(_Model):
    type: Literal["all", "any", "none"]
    children: list[Node] = Field(default_factory=list, max_length=MAX_CHILDREN)


class AttributeCondition(Comparison):
    type: Literal["attribute"]
    name: str | None = None
    field: str | None = None
    of: Literal["account"] | None = None


class TagCondition(_Model):
    type: Literal["tag"]
    operator: Literal["has", "has_not"] = "has"
    value: str


class EventCondition(_Model):
    type: Literal["event"]
    name: str
    operator: Literal["performed", "not_performed"] = "performed"
    count: Count = Field(default_factory=Count)
    window: Window | None = None
    filters: list[PropertyFilter] = Field(default_factory=list, max_length=MAX_FILTERS)


class UrlMatch(_Model):
    operator: Literal["equals", "contains", "starts_with", "matches"]
    value: str


class PageViewCondition(_Model):
    type: Literal["page_view"]
    operator: Literal["viewed", "not_viewed"] = "viewed"
    url: UrlMatch | None = None
    count: Count = Field(default_factory=Count)
    window: Window | None = None


class DeviceCondition(_Model):
    type: Literal["device"]
    operator: Literal["has", "has_not"] = "has"
    platform: Literal["ios", "android", "web"] | None = None
    last_seen: Window | None = None


class ObjectCondition(_Model):
    type: Literal["object"]
    object_type: str
    operator: Literal["has", "has_not"] = "has"
    count: Count = Field(default_factory=Count)
    filters: list[FieldFilter] = Field(default_factory=list, max_length=MAX_FILTERS)


class UsersCondition(_Model):
    type: Literal["users"]
    quantifier: Literal["any", "none", "all", "at_least", "at_most"]
    count: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    condition: Node


class MessageCondition(_Model):
    type: Literal["message"]
    operator: Literal["did", "did_not"] = "did"
    event: Literal["sent", "delivered", "opened", "clicked", "bounced", "unsubscribed"]
    sequence_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    step: int | None = Field(default=None, ge=0, le=1000)
    count: Count = Field(default_factory=Count)
    window: Window | None = None


class SegmentCondition(_Model):
    type: Literal["segment"]
    operator: Literal["in", "not_in"] = "in"
    segment_id: int = Field(ge=1, le=2**63 - 1)


class AccountSegmentCondition(_Model):
    type: Literal["account_segment"]
    operator: Literal["in", "not_in"] = "in"
    segment_id: int = Field(ge=1, le=2**63 - 1)


class SharedSegmentCondition(_Model):
    """The users matching, by device id, a member of a segment shared with this workspace (``segment_shares``).

    Not part of the language (``Node``): no one writes it; it is the stored definition of a ``shared`` segment,
    made by ``connector.segments.sharing`` and compiled like a leaf."""

    type: Literal["shared_segment"] = "shared_segment"
    share_id: int


# Leaves the compiler and explain know that the language does not: made by the service, never written by a client.
INTERNAL_LEAVES: tuple[type[_Model], ...] = (SharedSegmentCondition,)


@functools.cache
def shared_condition(share_id: int) -> SharedSegmentCondition:
    """The definition of a share's stand-in (one object per share, so compiled queries are reused)."""
    return SharedSegmentCondition(share_id=share_id)


Node = Annotated[
    Group
    | AttributeCondition
    | TagCondition
    | EventCondition
    | PageViewCondition
    | DeviceCondition
    | ObjectCondition
    | UsersCondition
    | MessageCondition
    | SegmentCondition
    | AccountSegmentCondition,
    Field(discriminator="type"),
]
NODE_TYPES = (
    "all", "any", "none", "attribute", "tag", "event", "page_view", "device", "object", "users", "message",
    "segment", "account_segment",
)  # fmt: skip
USER_ONLY = frozenset({"event", "page_view", "device", "message", "account_segment"})
ACCOUNT_ONLY = frozenset({"users"})

Group.model_rebuild()
UsersCondition.model_rebuild()
