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
    field instead: users have ``email``, ``external_id``, ``created_at``; accounts ``domain``, ``name``,
    ``external_id``, ``created_at``. Exactly one of ``name`` and ``field`` is given. ``email`` and ``domain`` are
    stored in lower case, so their values are compared in lower case. ``"of": "account"`` (user segments only)
    matches a user when ANY of the user's accounts has the attribute or field.

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

``segment`` / ``account_segment``
    ``{"type": "segment", "operator": "in" | "not_in", "segment_id": 12}`` reads the stored membership of a
    segment of the same subject type. ``account_segment`` (user segments only) matches a user when any of the
    user's accounts is (``in``) or none is (``not_in``) in the account segment. Whether the segment exists and
    has the right subject type is checked with ``validate_references``.

Limits: strings at most 1,000 characters (names 100, tags 100), ``in`` lists at most 1,000 values, counts
0..1,000,000, relative amounts 1..1,000,000 and at most 100 years, at most 2,000 nodes a tree.

``parse_conditions`` returns the tree with every inferred ``value_type`` filled in, so
``node.model_dump(mode="json")`` is the normalised form and parses back to an equal tree.

Adding a leaf (condition type) — the one checklist; ``tests/segments/test_condition_tables.py`` fails until every
table has it:

1. here: its pydantic model, in ``Node``, ``NODE_TYPES`` (and ``USER_ONLY`` / ``ACCOUNT_ONLY``), its section of
   this docstring, and its change kinds in ``_collect`` (``dependencies``); its windows or relative comparisons in
   ``_relative_units`` when it has any;
2. ``compiler.py``: its SQL clause in ``LEAVES``;
3. ``explain.py``: what it observes of one subject in ``OBSERVERS`` (reusing the compiler's clauses);
4. ``tests/segments/reference.py``: its ``_<type>`` method in the reference evaluator, which the property-based
   tests compare with the compiler on both databases.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from connector.models.subjects import SubjectType

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

USER_FIELDS: dict[str, ValueType] = {"email": "string", "external_id": "string", "created_at": "date"}
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
_KEY = re.compile(r'\A[^"\\\x00-\x1f\x7f]+\Z')


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


class SegmentCondition(_Model):
    type: Literal["segment"]
    operator: Literal["in", "not_in"] = "in"
    segment_id: int = Field(ge=1, le=2**63 - 1)


class AccountSegmentCondition(_Model):
    type: Literal["account_segment"]
    operator: Literal["in", "not_in"] = "in"
    segment_id: int = Field(ge=1, le=2**63 - 1)


Node = Annotated[
    Group
    | AttributeCondition
    | TagCondition
    | EventCondition
    | PageViewCondition
    | DeviceCondition
    | ObjectCondition
    | UsersCondition
    | SegmentCondition
    | AccountSegmentCondition,
    Field(discriminator="type"),
]
NODE_TYPES = (
    "all", "any", "none", "attribute", "tag", "event", "page_view", "device", "object", "users", "segment",
    "account_segment",
)  # fmt: skip
USER_ONLY = frozenset({"event", "page_view", "device", "account_segment"})
ACCOUNT_ONLY = frozenset({"users"})

Group.model_rebuild()
UsersCondition.model_rebuild()
_NODE = TypeAdapter(Node)


# -- parsing -------------------------------------------------------------------------------------------------------


def parse_conditions(data: dict, subject_type: SubjectType, *, location: str = "conditions") -> Node:
    """Validate a condition tree for segments of ``subject_type`` and return it with value types filled in.

    Raises ``ConditionError`` naming the path of every bad node (``conditions.children[2].value``), including
    leaves the subject type cannot have (an event leaf in an account segment outside a ``users`` aggregation).
    Referenced segments are not looked up here; see ``validate_references``.
    """
    subject_type = SubjectType(subject_type)
    if not isinstance(data, dict):
        raise ConditionError([{"field": location, "reason": "must be a condition object"}])
    errors = _shape_errors(data, location)
    if errors:
        raise ConditionError(errors)
    try:
        node = _NODE.validate_python(data)
    except ValidationError as exc:
        raise ConditionError(_pydantic_errors(exc, data, location)) from None
    errors = list(_semantic_errors(node, location, subject_type))
    if errors:
        raise ConditionError(errors)
    return node


def _shape_errors(data: Any, location: str) -> list[dict[str, str]]:
    """Depth and size, checked on the raw data before anything recurses into it."""
    nodes = 0
    stack: list[tuple[Any, str, int]] = [(data, location, 1)]
    while stack:
        item, path, depth = stack.pop()
        if not isinstance(item, dict):
            continue
        nodes += 1
        if nodes > MAX_NODES:
            return [{"field": location, "reason": f"a condition tree has at most {MAX_NODES} nodes"}]
        if depth > MAX_DEPTH:
            return [{"field": path, "reason": f"conditions nest at most {MAX_DEPTH} levels deep"}]
        children = item.get("children")
        if isinstance(children, list):
            stack.extend((child, f"{path}.children[{i}]", depth + 1) for i, child in enumerate(children))
        if "condition" in item:
            stack.append((item["condition"], f"{path}.condition", depth + 1))
    return []


def _pydantic_errors(exc: ValidationError, data: Any, location: str) -> list[dict[str, str]]:
    errors = []
    for error in exc.errors(include_url=False):
        path, item = location, data
        for part in error["loc"]:
            # A tagged union puts the tag in the location ("children", 2, "attribute", "value"): skip it.
            if isinstance(part, str) and isinstance(item, dict) and item.get("type") == part and part not in item:
                continue
            if isinstance(part, int):
                path += f"[{part}]"
                item = item[part] if isinstance(item, list) and part < len(item) else None
            else:
                path += f".{part}"
                item = item.get(part) if isinstance(item, dict) else None
        reason = error["msg"]
        if error["type"] == "union_tag_invalid":
            path += ".type"
            reason = "type must be one of: " + ", ".join(NODE_TYPES)
        elif error["type"] == "union_tag_not_found":
            path += ".type"
            reason = "is required (one of: " + ", ".join(NODE_TYPES) + ")"
        errors.append({"field": path, "reason": reason})
    return errors


def _err(path: str, reason: str) -> dict[str, str]:
    return {"field": path, "reason": reason}


def _text_errors(value: str, path: str, limit: int = MAX_STRING, *, empty: bool = False) -> Iterator[dict]:
    if not empty and value == "":
        yield _err(path, "must not be empty")
    elif len(value) > limit:
        yield _err(path, f"must be at most {limit} characters")
    elif "\x00" in value:
        yield _err(path, "must not contain NUL characters")
    else:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            yield _err(path, "must be valid Unicode text")


def _name_errors(value: str, path: str) -> Iterator[dict]:
    if not value or len(value) > MAX_NAME:
        yield _err(path, f"must be 1 to {MAX_NAME} characters")
    elif not _KEY.match(value):
        yield _err(path, "must not contain quotes, backslashes or control characters")


def _semantic_errors(node: Node, path: str, subject_type: SubjectType, depth: int = 1) -> Iterator[dict]:
    kind = node.type
    if kind in USER_ONLY and subject_type != SubjectType.USER:
        yield _err(path + ".type", f"{kind} conditions apply to users; use a users aggregation in account segments")
        return
    if kind in ACCOUNT_ONLY and subject_type != SubjectType.ACCOUNT:
        yield _err(path + ".type", f"{kind} conditions apply to account segments only")
        return
    if isinstance(node, Group):
        for i, child in enumerate(node.children):
            yield from _semantic_errors(child, f"{path}.children[{i}]", subject_type, depth + 1)
    elif isinstance(node, AttributeCondition):
        yield from _attribute_errors(node, path, subject_type)
    elif isinstance(node, TagCondition):
        yield from _text_errors(node.value, path + ".value", MAX_NAME)
    elif isinstance(node, EventCondition):
        yield from _text_errors(node.name, path + ".name", 200)
        yield from _window_errors(node.window, path + ".window")
        for i, item in enumerate(node.filters):
            yield from _name_errors(item.property, f"{path}.filters[{i}].property")
            yield from _comparison_errors(item, f"{path}.filters[{i}]", None)
    elif isinstance(node, PageViewCondition):
        if node.url is not None:
            yield from _text_errors(node.url.value, path + ".url.value")
        yield from _window_errors(node.window, path + ".window")
    elif isinstance(node, DeviceCondition):
        yield from _window_errors(node.last_seen, path + ".last_seen")
    elif isinstance(node, ObjectCondition):
        yield from _name_errors(node.object_type, path + ".object_type")
        for i, item in enumerate(node.filters):
            yield from _name_errors(item.field, f"{path}.filters[{i}].field")
            yield from _comparison_errors(item, f"{path}.filters[{i}]", None)
    elif isinstance(node, UsersCondition):
        if node.quantifier in ("at_least", "at_most"):
            if node.count is None:
                yield _err(path + ".count", f"is required with quantifier {node.quantifier}")
        elif node.count is not None:
            yield _err(path + ".count", f"is only allowed with quantifiers at_least and at_most, not {node.quantifier}")
        yield from _semantic_errors(node.condition, path + ".condition", SubjectType.USER, depth + 1)


def _attribute_errors(node: AttributeCondition, path: str, subject_type: SubjectType) -> Iterator[dict]:
    if node.of == "account" and subject_type != SubjectType.USER:
        yield _err(path + ".of", "'of: account' applies to user segments only")
        return
    owner = SubjectType.ACCOUNT if node.of == "account" else subject_type
    if (node.name is None) == (node.field is None):
        yield _err(path + ".name", "give exactly one of 'name' (a custom attribute) and 'field' (a built-in field)")
        return
    field_type = None
    if node.field is not None:
        fields = USER_FIELDS if owner == SubjectType.USER else ACCOUNT_FIELDS
        if node.field not in fields:
            yield _err(path + ".field", f"{owner} fields are: " + ", ".join(fields))
            return
        field_type = fields[node.field]
    else:
        errors = list(_name_errors(node.name, path + ".name"))
        if errors:
            yield from errors
            return
    errors = list(_comparison_errors(node, path, field_type))
    if errors:
        yield from errors
    elif node.field in LOWER_CASE_FIELDS and node.value_type == "string" and node.value is not None:
        node.value = [v.lower() for v in node.value] if isinstance(node.value, list) else node.value.lower()


def _comparison_errors(node: Comparison, path: str, field_type: ValueType | None) -> Iterator[dict]:
    """Check operator, value and value type together; fills in the inferred ``value_type``."""
    op, value = node.operator, node.value
    if op in PRESENCE_OPERATORS:
        if value is not None:
            yield _err(path + ".value", f"{op} takes no value")
        return
    if value is None:
        yield _err(path + ".value", f"is required with operator {op}")
        return
    value_type = node.value_type or field_type or _infer_type(op, value)
    if field_type is not None and value_type != field_type:
        yield _err(path + ".value_type", f"this field holds {field_type} values, not {value_type}")
        return
    if value_type is None:
        yield _err(path + ".value", f"cannot tell the value type of {value!r}; give value_type")
        return
    if op not in OPERATORS_BY_TYPE[value_type]:
        allowed = ", ".join(sorted(OPERATORS_BY_TYPE[value_type] | PRESENCE_OPERATORS))
        yield _err(path + ".operator", f"{op} does not apply to {value_type} values (use one of: {allowed})")
        return
    errors = list(_value_errors(op, value, value_type, path + ".value"))
    if errors:
        yield from errors
        return
    node.value_type = value_type


def _infer_type(op: str, value: Any) -> ValueType | None:
    if op in DATE_ONLY_OPERATORS:
        return "date"
    sample = value
    if isinstance(value, list):
        if not value:
            return "string"
        sample = value[0]
        if op == "between" and isinstance(sample, str):
            return "date"
    if isinstance(sample, bool):
        return "boolean"
    if isinstance(sample, int | float):
        return "number"
    if isinstance(sample, str):
        return "string"
    return None


def _scalar_errors(value: Any, value_type: ValueType, path: str) -> Iterator[dict]:
    if value_type == "string":
        if not isinstance(value, str):
            yield _err(path, "must be a string")
        else:
            yield from _text_errors(value, path, empty=True)
    elif value_type == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            yield _err(path, "must be a number")
        elif isinstance(value, float) and not math.isfinite(value):
            yield _err(path, "must be a finite number")
        elif abs(value) > MAX_SAFE_INTEGER:
            yield _err(path, f"must be between -{MAX_SAFE_INTEGER} and {MAX_SAFE_INTEGER}")
    elif value_type == "boolean":
        if not isinstance(value, bool):
            yield _err(path, "must be true or false")
    elif value_type == "date" and (not isinstance(value, str) or len(value) > 64 or parse_date(value) is None):
        yield _err(path, "must be an ISO 8601 date or date-time, like 2026-01-31 or 2026-01-31T12:00:00Z")


def _value_errors(op: str, value: Any, value_type: ValueType, path: str) -> Iterator[dict]:
    if op in RELATIVE_OPERATORS:
        if not isinstance(value, dict):
            yield _err(path, 'must be like {"amount": 7, "unit": "days"}')
            return
        try:
            duration = Duration.model_validate(value)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                yield _err(path + "".join(f".{p}" for p in error["loc"]), error["msg"])
            return
        if duration.as_timedelta() > MAX_WINDOW:
            yield _err(path + ".amount", "must span at most 100 years")
        return
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            yield _err(path, "must be a non-empty list")
        elif len(value) > MAX_LIST:
            yield _err(path, f"must have at most {MAX_LIST} values")
        else:
            for i, item in enumerate(value):
                yield from _scalar_errors(item, value_type, f"{path}[{i}]")
        return
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            yield _err(path, "must be a list of two values [low, high]")
            return
        errors = [e for i, item in enumerate(value) for e in _scalar_errors(item, value_type, f"{path}[{i}]")]
        if errors:
            yield from errors
            return
        low, high = (parse_date(v) for v in value) if value_type == "date" else value
        if low > high:
            yield _err(path, "low must not be greater than high")
        return
    yield from _scalar_errors(value, value_type, path)
    if op in ("contains", "not_contains", "starts_with", "ends_with") and value == "":
        yield _err(path, f"must not be empty for {op}")


def _window_errors(window: Window | None, path: str) -> Iterator[dict]:
    if window is None:
        return
    if (window.within_last is None) == (window.between is None):
        yield _err(path, "give exactly one of 'within_last' and 'between'")
    elif window.within_last is not None:
        if window.within_last.as_timedelta() > MAX_WINDOW:
            yield _err(path + ".within_last.amount", "must span at most 100 years")
    elif window.between[0] >= window.between[1]:
        yield _err(path + ".between", "start must be before end")


# -- references ----------------------------------------------------------------------------------------------------


def validate_references(
    node: Node,
    lookup: Callable[[int], SubjectType | None],
    *,
    subject_type: SubjectType | None = None,
    location: str = "conditions",
) -> list[dict[str, str]]:
    """Errors for segment references that do not resolve: ``lookup(id)`` gives the subject type of a segment of
    the same workspace, or None when there is none. Pass the tree's ``subject_type`` to also check that
    ``segment`` leaves name segments of the same subject type (inside a users aggregation: user segments);
    ``account_segment`` leaves must name account segments either way."""
    errors = []
    for path, leaf, context in walk(node, subject_type, location):
        if isinstance(leaf, SegmentCondition | AccountSegmentCondition):
            found = lookup(leaf.segment_id)
            expected = SubjectType.ACCOUNT if isinstance(leaf, AccountSegmentCondition) else context
            if found is None:
                errors.append(_err(path + ".segment_id", f"no segment {leaf.segment_id} in this workspace"))
            elif expected is not None and SubjectType(found) != expected:
                errors.append(
                    _err(path + ".segment_id", f"segment {leaf.segment_id} is a {found} segment, not a {expected} one")
                )
    return errors


# -- reading a tree ------------------------------------------------------------------------------------------------


def walk(
    node: Node, subject_type: SubjectType | None = None, location: str = "conditions"
) -> Iterator[tuple[str, Node, SubjectType | None]]:
    """Every node with its path and the subject type it is about, parents before children."""
    yield location, node, subject_type
    if isinstance(node, Group):
        for i, child in enumerate(node.children):
            yield from walk(child, subject_type, f"{location}.children[{i}]")
    elif isinstance(node, UsersCondition):
        yield from walk(node.condition, SubjectType.USER, f"{location}.condition")


def referenced_segment_ids(node: Node) -> set[int]:
    """Ids of every segment the tree reads membership of (``segment`` and ``account_segment`` leaves)."""
    return {n.segment_id for _, n, _ in walk(node) if isinstance(n, SegmentCondition | AccountSegmentCondition)}


def dependencies(node: Node) -> set[str]:
    """The kinds of change (``connector.changes``) that can alter the tree's result.

    Keys: ``attribute``, ``tag``, ``event:<name>``, ``page``, ``device``, ``object:<type name>``,
    ``account_link``, ``segment:<id>``. Data on the other side of a link is prefixed with its side: in an account
    segment, a users aggregation's user data is ``user:event:purchase``, ``user:attribute``, ``user:segment:4``…;
    in a user segment, ``of: account`` attributes are ``account:attribute``. Links themselves are
    ``account_link``. The creation of subjects (``subject``) concerns every segment and is not listed.
    """
    keys: set[str] = set()
    _collect(node, "", keys)
    return keys


def _collect(node: Node, prefix: str, keys: set[str]) -> None:
    if isinstance(node, Group):
        for child in node.children:
            _collect(child, prefix, keys)
    elif isinstance(node, AttributeCondition):
        if node.of == "account":
            keys.update({prefix + "account:attribute", prefix + "account_link"})
        else:
            keys.add(prefix + "attribute")
    elif isinstance(node, TagCondition):
        keys.add(prefix + "tag")
    elif isinstance(node, EventCondition):
        keys.add(f"{prefix}event:{node.name}")
    elif isinstance(node, PageViewCondition):
        keys.add(prefix + "page")
    elif isinstance(node, DeviceCondition):
        keys.add(prefix + "device")
    elif isinstance(node, ObjectCondition):
        keys.add(f"{prefix}object:{node.object_type}")
    elif isinstance(node, SegmentCondition):
        keys.add(f"{prefix}segment:{node.segment_id}")
    elif isinstance(node, AccountSegmentCondition):
        keys.update({f"{prefix}segment:{node.segment_id}", prefix + "account_link"})
    elif isinstance(node, UsersCondition):
        keys.add("account_link")
        _collect(node.condition, "user:", keys)


def _relative_units(node: Node) -> Iterator[timedelta]:
    for _, item, _ in walk(node):
        windows: list[Window | None] = []
        comparisons: list[Comparison] = []
        if isinstance(item, AttributeCondition):
            comparisons.append(item)
        elif isinstance(item, EventCondition):
            windows.append(item.window)
            comparisons.extend(item.filters)
        elif isinstance(item, PageViewCondition):
            windows.append(item.window)
        elif isinstance(item, DeviceCondition):
            windows.append(item.last_seen)
        elif isinstance(item, ObjectCondition):
            comparisons.extend(item.filters)
        for window in windows:
            if window is not None and window.within_last is not None:
                yield UNITS[window.within_last.unit]
        for comparison in comparisons:
            if comparison.operator in RELATIVE_OPERATORS and isinstance(comparison.value, dict):
                yield UNITS[comparison.value["unit"]]


def is_time_relative(node: Node) -> bool:
    """Whether the result can change with the passing of time alone (a ``within_last`` / ``more_than_ago``
    comparison or a relative window anywhere in the tree): such segments need re-evaluation on a schedule."""
    return next(_relative_units(node), None) is not None


def smallest_time_unit(node: Node) -> timedelta | None:
    """The finest unit (1 minute, 1 hour or 1 day) of the tree's relative times, for the refresh cadence; None
    when the tree is not time-relative."""
    return min(_relative_units(node), default=None)
