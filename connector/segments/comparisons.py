"""One compared value as SQL: where it lives (``Operand``: a JSON key of a document column, or a column) and the
two-valued comparison of the condition language's operators (a missing or differently typed value is false), shared
by attribute conditions, event property filters and object field filters."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    bindparam,
    case,
    false,
    func,
    literal,
    not_,
)

from connector.segments import sqlfuncs
from connector.segments.conditions import (
    Comparison,
    Duration,
    parse_date,
)
from connector.segments.scope import Scope

# -- attributes ----------------------------------------------------------------------------------------------------


class Operand:
    """Where a compared value lives: a JSON key of a document column, or a built-in column."""

    def __init__(self, doc: ColumnElement | None = None, key: str | None = None, column=None) -> None:
        self.doc, self.key, self.column = doc, key, column

    def present(self) -> ColumnElement[bool]:
        if self.column is not None:
            return self.column.is_not(None)
        return sqlfuncs.json_type_is(self.doc, self.key, "present")

    def is_boolean(self, value: bool) -> ColumnElement[bool]:
        return sqlfuncs.json_type_is(self.doc, self.key, "true" if value else "false")

    def typed(self, value_type: str) -> ColumnElement:
        """The value when it has ``value_type``, else NULL."""
        if self.column is not None:
            return self.column
        if value_type == "date":
            return sqlfuncs.json_timestamp(self.doc, self.key)
        if value_type == "number":
            guard, value = sqlfuncs.json_type_is(self.doc, self.key, "number"), sqlfuncs.json_number(self.doc, self.key)
        else:
            guard, value = sqlfuncs.json_type_is(self.doc, self.key, "string"), sqlfuncs.json_text(self.doc, self.key)
        return case((guard, value))


COMPARISONS: dict[str, Callable[[ColumnElement, Any], ColumnElement[bool]]] = {
    "eq": lambda x, v: x == v,
    "ne": lambda x, v: x != v,
    "contains": lambda x, v: sqlfuncs.text_contains(x, v),
    "not_contains": lambda x, v: not_(sqlfuncs.text_contains(x, v)),
    "starts_with": lambda x, v: sqlfuncs.text_starts_with(x, v),
    "ends_with": lambda x, v: sqlfuncs.text_ends_with(x, v),
    "in": lambda x, v: x.in_(v),
    "not_in": lambda x, v: x.not_in(v),
    "gt": lambda x, v: x > v,
    "gte": lambda x, v: x >= v,
    "lt": lambda x, v: x < v,
    "lte": lambda x, v: x <= v,
    "between": lambda x, v: x.between(*v),
    "before": lambda x, v: x < v,
    "after": lambda x, v: x > v,
    "within_last": lambda x, v: x.between(*v),
    "more_than_ago": lambda x, v: x < v,
}


def compile_comparison(operand: Operand, node: Comparison, scope: Scope) -> ColumnElement[bool]:
    """One attribute/property/field test, two-valued: a missing or differently typed value is false."""
    if node.operator == "exists":
        return operand.present()
    if node.operator == "not_exists":
        return not_(operand.present())
    if node.value_type == "boolean":
        return operand.is_boolean(node.value if node.operator == "eq" else not node.value)
    typed = operand.typed(node.value_type)
    if node.operator in ("within_last", "more_than_ago"):
        # Relative to now: the attribute's stored JSON text is compared as a timestamp, a column as itself.
        type_ = sqlfuncs.AttributeTimestamp() if operand.column is None else None
        delta = Duration.model_validate(node.value).as_timedelta()
        if node.operator == "within_last":
            value = (scope.ago(delta, type_), scope.ago(timedelta(0), type_))
        else:
            value = scope.ago(delta, type_)
        return func.coalesce(COMPARISONS[node.operator](typed, value), false())
    value = _bound_value(node)
    if operand.column is None and node.value_type in ("date", "number"):
        value = _bind(value, sqlfuncs.AttributeTimestamp() if node.value_type == "date" else sqlfuncs.AttributeNumber())
    return func.coalesce(COMPARISONS[node.operator](typed, value), false())


def _bound_value(node: Comparison) -> Any:
    """The condition's value as Python: a pair (tuple) for ranges, a list for ``in``, datetimes for dates."""
    value = node.value
    if node.value_type == "date":
        value = [_millis(parse_date(v)) for v in value] if isinstance(value, list) else _millis(parse_date(value))
    return tuple(value) if node.operator == "between" else value


def _millis(value: datetime) -> datetime:
    # SQLite's date functions keep milliseconds; every backend compares at that precision.
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _bind(value: Any, type_) -> Any:
    if isinstance(value, tuple):
        return tuple(literal(v, type_) for v in value)
    if isinstance(value, list):
        return bindparam(None, value, type_=type_, expanding=True)
    return literal(value, type_)
