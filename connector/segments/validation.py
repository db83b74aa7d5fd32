"""Checking a condition tree: ``parse_conditions`` turns JSON into a typed tree (``conditions``) or raises
``ConditionError`` naming the path and reason of every bad node; ``validate_references`` checks that the segments a
tree reads exist in the workspace with the right subject type."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import TypeAdapter, ValidationError

from connector.models.subjects import SubjectType
from connector.segments.conditions import (
    ACCOUNT_FIELDS,
    ACCOUNT_ONLY,
    DATE_ONLY_OPERATORS,
    LOWER_CASE_FIELDS,
    MAX_DEPTH,
    MAX_LIST,
    MAX_NAME,
    MAX_NODES,
    MAX_SAFE_INTEGER,
    MAX_STRING,
    MAX_WINDOW,
    NODE_TYPES,
    OPERATORS_BY_TYPE,
    PRESENCE_OPERATORS,
    RELATIVE_OPERATORS,
    SAFE_KEY,
    USER_FIELDS,
    USER_ONLY,
    AccountSegmentCondition,
    AttributeCondition,
    Comparison,
    ConditionError,
    DeviceCondition,
    Duration,
    EventCondition,
    Group,
    MessageCondition,
    Node,
    ObjectCondition,
    PageViewCondition,
    SegmentCondition,
    TagCondition,
    UsersCondition,
    ValueType,
    Window,
    parse_date,
)
from connector.segments.trees import walk

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
    elif not SAFE_KEY.match(value):
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
    elif isinstance(node, MessageCondition):
        yield from _window_errors(node.window, path + ".window")
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
