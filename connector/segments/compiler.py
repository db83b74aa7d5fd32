"""Condition trees compiled to one SQL query of matching subject ids.

``compile_condition`` turns a validated tree (``connector.segments.validation.parse_conditions``) into
``SELECT users.id AS subject_id FROM users WHERE users.workspace_id = :ws AND <predicate>`` (or the same over
``accounts``). It is pure: no session, no I/O; run the result wherever a selectable fits (``IN``, ``INSERT …
SELECT``, ``EXCEPT``).

Shape of the SQL, chosen for both a full refresh of a large workspace and the evaluation of a handful of subjects:

* Every predicate is two-valued (never NULL), so ``none`` (``NOT``) and nesting behave as the language says.
  Attribute leaves compare ``COALESCE(<typed value> <op> :value, false)`` where the typed value is NULL unless
  the stored JSON value has the condition's type (a guard in a CASE, so PostgreSQL never casts foreign text).
* A leaf about related rows (events, page views, devices, objects, tags, memberships, the users of an account) is
  a correlated ``EXISTS (SELECT 1 FROM events WHERE events.user_id = users.id AND …)``. At the top level of the
  WHERE clause PostgreSQL turns these into semi/anti-joins (one scan of ``events(workspace_id, name,
  occurred_at)`` for a full refresh); under ``OR`` they stay sub-plans that probe ``events(user_id, name,
  occurred_at)`` per subject or are hashed — linear either way, never quadratic.
* Counting leaves (at least N > 1, exactly N) group first: ``EXISTS (SELECT 1 FROM (SELECT user_id FROM events
  WHERE … GROUP BY user_id HAVING count(*) >= :n) AS g WHERE g.user_id = users.id)``. Made a semi-join,
  that grouped sub-query is computed for the whole workspace (PostgreSQL does not parametrise it by the subject),
  so when ``subject_ids`` is given it is written into every grouped sub-query as well as on the subject table:
  evaluating one subject reads only that subject's rows.
* Every table is aliased per use (numbered per query, ``events_1``, ``events_2``: see ``Aliases``), every
  sub-query filters on the workspace (the tenant wall holds inside, too), and every name and value is a bound
  parameter.
* Groups deeper than ``HOIST_DEPTH`` become CTEs (SQLite's parser cannot nest a 20-level tree); PostgreSQL inlines
  them, so the plan is the same correlated EXISTS (a primary-key probe per subject).

Measured on PostgreSQL 15 with 1,000,000 users and 10,000,000 events (``bench/segments.py``'s data, two cores): the
twenty segment queries took 13–15 s together when written with ``CREATE TEMPORARY TABLE … AS`` (which may use
parallel workers; 0.2–2.4 s each: events over a 7-day window, an index range scan of ``(workspace_id, name,
occurred_at)`` into a hash semi-join; a JSON property filter over 90 days, a parallel sequential scan), and about
1.5 ms for one subject at the median (primary key, then ``(user_id, name, occurred_at)``).

Time: ``now`` is given by the caller (one instant for the whole query), windows and relative dates are bound
values computed from it, so evaluating again later with another ``now`` slides the windows. A query built with
``late`` (``LateValues``) takes them, and the subject ids, as named parameters, to run again at another instant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    and_,
    func,
    literal_column,
    not_,
    select,
    true,
)
from sqlalchemy.sql import ClauseElement

from connector.models import (
    EventKind,
    SubjectType,
)
from connector.segments import sqlfuncs
from connector.segments.comparisons import (
    Operand,
    compile_comparison,
)
from connector.segments.conditions import (
    AccountSegmentCondition,
    AttributeCondition,
    Count,
    DeviceCondition,
    EventCondition,
    Group,
    MessageCondition,
    Node,
    ObjectCondition,
    PageViewCondition,
    SegmentCondition,
    SharedSegmentCondition,
    TagCondition,
    UsersCondition,
    Window,
)
from connector.segments.scope import (
    ACCOUNT_TAGS,
    ACCOUNT_USERS,
    ACCOUNTS,
    DEVICES,
    EVENTS,
    MATCHING_PLATFORMS,
    MEMBERSHIPS,
    MESSAGE_EVENTS,
    OBJECT_TYPES,
    OBJECTS,
    SEGMENTS,
    SHARES,
    USER_TAGS,
    USERS,
    LateValues,
    Scope,
    SubjectIds,
    as_utc,
)


def compile_condition(
    node: Node,
    *,
    subject_type: SubjectType,
    workspace_id: int,
    now: datetime,
    subject_ids: SubjectIds = None,
    late: LateValues | None = None,
) -> Select:
    """The ids (column ``subject_id``) of the workspace's users or accounts that match ``node`` at ``now``.

    ``node`` must come from ``parse_conditions`` for the same subject type. ``subject_ids`` (a list of ids or a
    one-column SELECT) restricts the query to those subjects — and keeps its cost proportional to them. A long
    list is bound value by value; past a few thousand ids pass a SELECT instead. With ``late``, the query is built
    to be run again with other ids and another ``now`` (see ``LateValues``).
    """
    subject_type = SubjectType(subject_type)
    subject = USERS if subject_type == SubjectType.USER else ACCOUNTS
    restriction = _restriction(subject_ids)
    if late is not None and isinstance(restriction, list):
        restriction = late.ids(restriction)
    scope = Scope(subject_type, subject, workspace_id, as_utc(now), restriction, late=late)
    query = select(subject.c.id.label("subject_id")).where(subject.c.workspace_id == workspace_id)
    if scope.restriction is not None:
        query = query.where(subject.c.id.in_(scope.restriction))
    return query.where(compile_predicate(node, scope))


def _restriction(subject_ids: SubjectIds) -> Select | list[int] | None:
    if subject_ids is None:
        return None
    if isinstance(subject_ids, Select):
        # The caller's SELECT stands alone: never let it correlate to our subject table of the same name.
        return subject_ids.correlate(None)
    if isinstance(subject_ids, ClauseElement):
        raise TypeError("subject_ids must be a SELECT of one column or an iterable of ids")
    return sorted({int(i) for i in subject_ids})


def compile_predicate(node: Node, scope: Scope) -> ColumnElement[bool]:
    """The tree as a two-valued boolean expression over ``scope.subject``."""
    if not isinstance(node, Group):
        return LEAVES[type(node)](node, scope)
    if scope.depth >= HOIST_DEPTH:
        return _hoisted(node, scope)
    inner = replace(scope, depth=scope.depth + 1)
    children = [compile_predicate(child, inner) for child in node.children]
    if node.type == "all":
        return sqlfuncs.all_of(children)
    if node.type == "any":
        return sqlfuncs.any_of(children)
    return not_(sqlfuncs.any_of(children))


# SQLite's parser (before 3.46) overflows at about 35 nested parentheses, which a tree of 20 levels would reach:
# a group this deep becomes a CTE of its own (WITH clauses are not nested), tested with a correlated EXISTS.
HOIST_DEPTH = 6


def _hoisted(node: Group, scope: Scope) -> ColumnElement[bool]:
    subject = scope.alias(USERS if scope.subject_type == SubjectType.USER else ACCOUNTS)
    inner = replace(scope, subject=subject, depth=0)
    query = select(subject.c.id.label("subject_id")).where(
        subject.c.workspace_id == scope.workspace_id, compile_predicate(node, inner)
    )
    if scope.restriction is not None:
        query = query.where(subject.c.id.in_(scope.restriction))
    matched = query.cte()
    return select(literal_column("1")).select_from(matched).where(matched.c.subject_id == scope.subject_id).exists()


def _attribute(node: AttributeCondition, scope: Scope) -> ColumnElement[bool]:
    if node.of == "account":
        accounts, links = scope.alias(ACCOUNTS), scope.alias(ACCOUNT_USERS)
        return _exists(
            scope,
            links.join(accounts, accounts.c.id == links.c.account_id),
            links.c.user_id,
            [links.c.workspace_id == scope.workspace_id, _attribute_test(node, accounts, scope)],
        )
    return _attribute_test(node, scope.subject, scope)


def _attribute_test(node: AttributeCondition, table: FromClause, scope: Scope) -> ColumnElement[bool]:
    if node.field is not None:
        return compile_comparison(Operand(column=table.c[node.field]), node, scope)
    return compile_comparison(Operand(table.c.attributes, node.name), node, scope)


# -- related rows --------------------------------------------------------------------------------------------------


def _exists(scope: Scope, source: FromClause, key: ColumnElement, clauses: list) -> ColumnElement[bool]:
    """Some row of ``source`` with ``key`` = the subject satisfies ``clauses``."""
    return select(literal_column("1")).select_from(source).where(key == scope.subject_id, *clauses).exists()


def _grouped(
    scope: Scope, source: FromClause, key: ColumnElement, clauses: list, having: Callable
) -> ColumnElement[bool]:
    """The subject's number of rows of ``source`` satisfying ``clauses`` passes ``having(count(*))``."""
    inner = select(key.label("subject_id")).select_from(source).where(*clauses)
    if scope.restriction is not None:
        inner = inner.where(key.in_(scope.restriction))
    counted = inner.group_by(key).having(having(func.count())).subquery()
    return select(literal_column("1")).select_from(counted).where(counted.c.subject_id == scope.subject_id).exists()


def _at_least(scope: Scope, source: FromClause, key: ColumnElement, clauses: list, n: int) -> ColumnElement[bool]:
    if n <= 0:
        return true()
    if n == 1:
        return _exists(scope, source, key, clauses)
    return _grouped(scope, source, key, clauses, lambda c: c >= n)


def _counted(scope: Scope, source: FromClause, key: ColumnElement, clauses: list, count: Count):
    if count.operator == "at_least":
        return _at_least(scope, source, key, clauses, count.value)
    if count.operator == "at_most":
        return not_(_at_least(scope, source, key, clauses, count.value + 1))
    if count.value == 0:
        return not_(_exists(scope, source, key, clauses))
    return _grouped(scope, source, key, clauses, lambda c: c == count.value)


def window_clauses(column: ColumnElement, window: Window | None, scope: Scope) -> list:
    if window is None:
        return []
    if window.within_last is not None:
        return [column >= scope.ago(window.within_last.as_timedelta()), column <= scope.ago(timedelta(0))]
    start, end, inclusive = window.bounds(scope.now)
    return [column >= start, column <= end if inclusive else column < end]


def event_clauses(node: EventCondition, events: FromClause, scope: Scope) -> list:
    """The events a leaf counts (any user of the workspace; the caller ties them to the subject)."""
    return [
        events.c.workspace_id == scope.workspace_id,
        events.c.name == node.name,
        events.c.kind == EventKind.TRACK,
        *window_clauses(events.c.occurred_at, node.window, scope),
        *(compile_comparison(Operand(events.c.properties, f.property), f, scope) for f in node.filters),
    ]


def _event(node: EventCondition, scope: Scope) -> ColumnElement[bool]:
    events = scope.alias(EVENTS)
    matched = _counted(scope, events, events.c.user_id, event_clauses(node, events, scope), node.count)
    return not_(matched) if node.operator == "not_performed" else matched


URL_TESTS: dict[str, Callable[[ColumnElement, str], ColumnElement[bool]]] = {
    "equals": lambda url, v: url == v,
    "contains": sqlfuncs.text_contains,
    "starts_with": sqlfuncs.text_starts_with,
    "matches": sqlfuncs.glob_match,
}


def page_view_clauses(node: PageViewCondition, events: FromClause, scope: Scope) -> list:
    clauses = [
        events.c.workspace_id == scope.workspace_id,
        events.c.kind == EventKind.PAGE,
        *window_clauses(events.c.occurred_at, node.window, scope),
    ]
    if node.url is not None:
        clauses.append(URL_TESTS[node.url.operator](events.c.url, node.url.value))
    return clauses


def _page_view(node: PageViewCondition, scope: Scope) -> ColumnElement[bool]:
    events = scope.alias(EVENTS)
    matched = _counted(scope, events, events.c.user_id, page_view_clauses(node, events, scope), node.count)
    return not_(matched) if node.operator == "not_viewed" else matched


def device_clauses(node: DeviceCondition, devices: FromClause, scope: Scope) -> list:
    clauses = [devices.c.workspace_id == scope.workspace_id]
    if node.platform is not None:
        clauses.append(devices.c.platform == node.platform)
    return clauses + window_clauses(devices.c.last_seen_at, node.last_seen, scope)


def _device(node: DeviceCondition, scope: Scope) -> ColumnElement[bool]:
    devices = scope.alias(DEVICES)
    matched = _exists(scope, devices, devices.c.user_id, device_clauses(node, devices, scope))
    return not_(matched) if node.operator == "has_not" else matched


def message_clauses(node: MessageCondition, messages: FromClause, scope: Scope) -> list:
    clauses = [
        messages.c.workspace_id == scope.workspace_id,
        messages.c.kind == node.event,
        *window_clauses(messages.c.occurred_at, node.window, scope),
    ]
    if node.sequence_id is not None:
        clauses.append(messages.c.sequence_id == node.sequence_id)
    if node.step is not None:
        clauses.append(messages.c.step == node.step)
    return clauses


def _message(node: MessageCondition, scope: Scope) -> ColumnElement[bool]:
    messages = scope.alias(MESSAGE_EVENTS)
    matched = _counted(scope, messages, messages.c.user_id, message_clauses(node, messages, scope), node.count)
    return not_(matched) if node.operator == "did_not" else matched


def object_clauses(node: ObjectCondition, objects: FromClause, scope: Scope) -> list:
    types = scope.alias(OBJECT_TYPES)
    type_id = (
        select(types.c.id)
        .where(types.c.workspace_id == scope.workspace_id, types.c.name == node.object_type)
        .scalar_subquery()
    )
    return [
        objects.c.workspace_id == scope.workspace_id,
        objects.c.object_type_id == type_id,
        *(compile_comparison(Operand(objects.c.fields, f.field), f, scope) for f in node.filters),
    ]


def object_owner(objects: FromClause, subject_type: SubjectType) -> ColumnElement:
    return objects.c.user_id if subject_type == SubjectType.USER else objects.c.account_id


def _object(node: ObjectCondition, scope: Scope) -> ColumnElement[bool]:
    objects = scope.alias(OBJECTS)
    key = object_owner(objects, scope.subject_type)
    matched = _counted(scope, objects, key, object_clauses(node, objects, scope), node.count)
    return not_(matched) if node.operator == "has_not" else matched


def _tag(node: TagCondition, scope: Scope) -> ColumnElement[bool]:
    if scope.subject_type == SubjectType.USER:
        tags = scope.alias(USER_TAGS)
        key = tags.c.user_id
    else:
        tags = scope.alias(ACCOUNT_TAGS)
        key = tags.c.account_id
    matched = _exists(scope, tags, key, [tags.c.workspace_id == scope.workspace_id, tags.c.tag == node.value])
    return not_(matched) if node.operator == "has_not" else matched


def segment_id_in_workspace(segment_id: int, subject_type: SubjectType, workspace_id: int, segments=None):
    """The segment's id if it is a segment of the workspace about ``subject_type``, else NULL (matches nothing)."""
    segments = SEGMENTS.alias() if segments is None else segments
    return (
        select(segments.c.id)
        .where(
            segments.c.id == segment_id,
            segments.c.workspace_id == workspace_id,
            segments.c.subject_type == subject_type,
        )
        .scalar_subquery()
    )


def _segment(node: SegmentCondition, scope: Scope) -> ColumnElement[bool]:
    members = scope.alias(MEMBERSHIPS)
    segment_id = segment_id_in_workspace(node.segment_id, scope.subject_type, scope.workspace_id, scope.alias(SEGMENTS))
    matched = _exists(scope, members, members.c.subject_id, [members.c.segment_id == segment_id])
    return not_(matched) if node.operator == "not_in" else matched


def _account_segment(node: AccountSegmentCondition, scope: Scope) -> ColumnElement[bool]:
    members, links = scope.alias(MEMBERSHIPS), scope.alias(ACCOUNT_USERS)
    segment_id = segment_id_in_workspace(
        node.segment_id, SubjectType.ACCOUNT, scope.workspace_id, scope.alias(SEGMENTS)
    )
    matched = _exists(
        scope,
        links.join(members, members.c.subject_id == links.c.account_id),
        links.c.user_id,
        [links.c.workspace_id == scope.workspace_id, members.c.segment_id == segment_id],
    )
    return not_(matched) if node.operator == "not_in" else matched


def account_users(scope: Scope) -> tuple[FromClause, FromClause, Scope, list]:
    """The users of the subject account: ``(source, links, user scope, clauses)`` for a users aggregation."""
    users, links = scope.alias(USERS), scope.alias(ACCOUNT_USERS)
    restriction = None
    if scope.restriction is not None:
        restricted = scope.alias(ACCOUNT_USERS)
        restriction = select(restricted.c.user_id).where(restricted.c.account_id.in_(scope.restriction))
    # The aggregation's own EXISTS and grouping count as levels of nesting for what it holds.
    user_scope = Scope(
        SubjectType.USER, users, scope.workspace_id, scope.now, restriction, scope.depth + 2, scope.alias, scope.late
    )
    clauses = [links.c.workspace_id == scope.workspace_id, users.c.workspace_id == scope.workspace_id]
    return links.join(users, users.c.id == links.c.user_id), links, user_scope, clauses


def _users(node: UsersCondition, scope: Scope) -> ColumnElement[bool]:
    source, links, user_scope, clauses = account_users(scope)
    condition = compile_predicate(node.condition, user_scope)
    key = links.c.account_id
    if node.quantifier == "any":
        return _exists(scope, source, key, [*clauses, condition])
    if node.quantifier == "none":
        return not_(_exists(scope, source, key, [*clauses, condition]))
    if node.quantifier == "all":
        # An account without users is not "all users match" (no vacuous truth).
        some_user = _exists(scope, source, key, clauses)
        return and_(some_user, not_(_exists(scope, source, key, [*clauses, not_(condition)])))
    if node.quantifier == "at_least":
        return _at_least(scope, source, key, [*clauses, condition], node.count)
    return not_(_at_least(scope, source, key, [*clauses, condition], node.count + 1))


def _shared_segment(node: SharedSegmentCondition, scope: Scope) -> ColumnElement[bool]:
    """Some iOS or Android device of the user has the vendor id of a device of a member of the shared segment in its
    workspace. The share must name this workspace as its target (the wall holds: another share matches nothing)."""
    own, theirs = scope.alias(DEVICES), scope.alias(DEVICES)
    members, shares = scope.alias(MEMBERSHIPS), scope.alias(SHARES)
    source = (
        own.join(
            theirs,
            and_(theirs.c.platform == own.c.platform, theirs.c.vendor_device_id == own.c.vendor_device_id),
        )
        .join(shares, theirs.c.workspace_id == shares.c.source_workspace_id)
        .join(
            members,
            and_(members.c.subject_id == theirs.c.user_id, members.c.segment_id == shares.c.source_segment_id),
        )
    )
    clauses = [
        own.c.workspace_id == scope.workspace_id,
        own.c.platform.in_(MATCHING_PLATFORMS),
        shares.c.id == node.share_id,
        shares.c.target_workspace_id == scope.workspace_id,
    ]
    return _exists(scope, source, own.c.user_id, clauses)


LEAVES: dict[type, Callable[[Any, Scope], ColumnElement[bool]]] = {
    AttributeCondition: _attribute,
    TagCondition: _tag,
    EventCondition: _event,
    PageViewCondition: _page_view,
    DeviceCondition: _device,
    ObjectCondition: _object,
    UsersCondition: _users,
    MessageCondition: _message,
    SegmentCondition: _segment,
    AccountSegmentCondition: _account_segment,
    SharedSegmentCondition: _shared_segment,
}
