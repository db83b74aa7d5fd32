"""Reading a parsed condition tree: its nodes with their paths (``walk``), the segments it references, the kinds
of change that can alter its result (``dependencies``, which incremental evaluation reads), and whether and how
fast it moves with time alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from connector.models.subjects import SubjectType
from connector.segments.conditions import (
    RELATIVE_OPERATORS,
    UNITS,
    AccountSegmentCondition,
    AttributeCondition,
    Comparison,
    DeviceCondition,
    EventCondition,
    Group,
    MessageCondition,
    Node,
    ObjectCondition,
    PageViewCondition,
    SegmentCondition,
    TagCondition,
    UsersCondition,
    Window,
)

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
    elif isinstance(node, MessageCondition):
        keys.add(prefix + "message")
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
        elif isinstance(item, MessageCondition):
            windows.append(item.window)
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
