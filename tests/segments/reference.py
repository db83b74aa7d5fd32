"""A plain Python evaluator of the condition language, to check the SQL compiler against on random data.

It reads a workspace's rows into memory (``World.load``) and decides each subject by walking the tree, written from
the language's documentation (``connector.segments.conditions``) rather than from the compiler. It lives in the
tests only: the product evaluates segments in SQL.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from connector.models import (
    Account,
    AccountTag,
    AccountUser,
    Device,
    Event,
    MessageEvent,
    ObjectRecord,
    ObjectType,
    Segment,
    SegmentMembership,
    SubjectType,
    User,
    UserTag,
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
    TagCondition,
    UsersCondition,
    Window,
    parse_date,
)

UNITS = {"minutes": timedelta(minutes=1), "hours": timedelta(hours=1), "days": timedelta(days=1)}


@dataclass
class World:
    """Everything of one workspace, as plain Python values."""

    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    accounts: dict[int, dict[str, Any]] = field(default_factory=dict)
    links: set[tuple[int, int]] = field(default_factory=set)  # (account_id, user_id)
    user_tags: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    account_tags: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    events: list[dict[str, Any]] = field(default_factory=list)
    devices: list[dict[str, Any]] = field(default_factory=list)
    object_types: dict[str, int] = field(default_factory=dict)
    objects: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    segments: dict[int, str] = field(default_factory=dict)  # id -> subject type
    memberships: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))

    @classmethod
    def load(cls, connection: Connection, workspace_id: int) -> World:
        world = cls()

        def rows(model):
            table = model.__table__
            return connection.execute(select(table).where(table.c.workspace_id == workspace_id)).mappings()

        world.users = {r["id"]: dict(r) for r in rows(User)}
        world.accounts = {r["id"]: dict(r) for r in rows(Account)}
        world.links = {(r["account_id"], r["user_id"]) for r in rows(AccountUser)}
        for r in rows(UserTag):
            world.user_tags[r["user_id"]].add(r["tag"])
        for r in rows(AccountTag):
            world.account_tags[r["account_id"]].add(r["tag"])
        world.events = [dict(r) for r in rows(Event)]
        world.devices = [dict(r) for r in rows(Device)]
        world.object_types = {r["name"]: r["id"] for r in rows(ObjectType)}
        world.objects = [dict(r) for r in rows(ObjectRecord)]
        world.messages = [dict(r) for r in rows(MessageEvent)]
        world.segments = {r["id"]: str(r["subject_type"]) for r in rows(Segment)}
        members = SegmentMembership.__table__
        for r in connection.execute(select(members)).mappings():
            if r["segment_id"] in world.segments:
                world.memberships[r["segment_id"]].add(r["subject_id"])
        return world

    def matching(self, node: Node, subject_type: SubjectType | str, now: datetime) -> set[int]:
        subjects = self.users if SubjectType(subject_type) == SubjectType.USER else self.accounts
        return {s for s in subjects if Evaluator(self, now).matches(node, SubjectType(subject_type), s)}


class Evaluator:
    def __init__(self, world: World, now: datetime) -> None:
        self.world = world
        self.now = now

    def matches(self, node: Node, subject_type: SubjectType, subject_id: int) -> bool:
        if isinstance(node, Group):
            results = [self.matches(child, subject_type, subject_id) for child in node.children]
            return {"all": all(results), "any": any(results), "none": not any(results)}[node.type]
        method = getattr(self, "_" + node.type)
        return method(node, subject_type, subject_id)

    # -- leaves ----------------------------------------------------------------------------------------------------

    def _attribute(self, node: AttributeCondition, subject_type: SubjectType, subject_id: int) -> bool:
        if node.of == "account":
            accounts = [self.world.accounts[a] for a, u in self.world.links if u == subject_id]
            return any(self._attribute_of(node, account) for account in accounts)
        subject = (self.world.users if subject_type == SubjectType.USER else self.world.accounts)[subject_id]
        return self._attribute_of(node, subject)

    def _attribute_of(self, node: AttributeCondition, row: dict[str, Any]) -> bool:
        if node.field is not None:
            return compare(node, row[node.field], self.now, built_in=True)
        attributes = row["attributes"] or {}
        return compare(node, attributes.get(node.name, MISSING), self.now)

    def _tag(self, node: TagCondition, subject_type: SubjectType, subject_id: int) -> bool:
        tags = self.world.user_tags if subject_type == SubjectType.USER else self.world.account_tags
        has = node.value in tags.get(subject_id, set())
        return has if node.operator == "has" else not has

    def _event(self, node: EventCondition, subject_type: SubjectType, subject_id: int) -> bool:
        count = sum(
            1
            for e in self.world.events
            if e["user_id"] == subject_id
            and e["kind"] == "track"
            and e["name"] == node.name
            and in_window(e["occurred_at"], node.window, self.now)
            and all(compare(f, (e["properties"] or {}).get(f.property, MISSING), self.now) for f in node.filters)
        )
        performed = count_passes(count, node.count)
        return performed if node.operator == "performed" else not performed

    def _page_view(self, node: PageViewCondition, subject_type: SubjectType, subject_id: int) -> bool:
        count = sum(
            1
            for e in self.world.events
            if e["user_id"] == subject_id
            and e["kind"] == "page"
            and in_window(e["occurred_at"], node.window, self.now)
            and (node.url is None or url_matches(e["url"], node.url.operator, node.url.value))
        )
        viewed = count_passes(count, node.count)
        return viewed if node.operator == "viewed" else not viewed

    def _device(self, node: DeviceCondition, subject_type: SubjectType, subject_id: int) -> bool:
        has = any(
            d["user_id"] == subject_id
            and (node.platform is None or d["platform"] == node.platform)
            and in_window(d["last_seen_at"], node.last_seen, self.now)
            for d in self.world.devices
        )
        return has if node.operator == "has" else not has

    def _object(self, node: ObjectCondition, subject_type: SubjectType, subject_id: int) -> bool:
        type_id = self.world.object_types.get(node.object_type)
        owner = "user_id" if subject_type == SubjectType.USER else "account_id"
        count = sum(
            1
            for o in self.world.objects
            if o["object_type_id"] == type_id
            and o[owner] == subject_id
            and all(compare(f, (o["fields"] or {}).get(f.field, MISSING), self.now) for f in node.filters)
        )
        has = count_passes(count, node.count)
        return has if node.operator == "has" else not has

    def _message(self, node: MessageCondition, subject_type: SubjectType, subject_id: int) -> bool:
        count = sum(
            1
            for m in self.world.messages
            if m["user_id"] == subject_id
            and m["kind"] == node.event
            and (node.sequence_id is None or m["sequence_id"] == node.sequence_id)
            and (node.step is None or m["step"] == node.step)
            and in_window(m["occurred_at"], node.window, self.now)
        )
        did = count_passes(count, node.count)
        return did if node.operator == "did" else not did

    def _users(self, node: UsersCondition, subject_type: SubjectType, subject_id: int) -> bool:
        users = [u for a, u in self.world.links if a == subject_id and u in self.world.users]
        matched = sum(1 for u in users if self.matches(node.condition, SubjectType.USER, u))
        if node.quantifier == "any":
            return matched >= 1
        if node.quantifier == "none":
            return matched == 0
        if node.quantifier == "all":
            return bool(users) and matched == len(users)
        if node.quantifier == "at_least":
            return matched >= node.count
        return matched <= node.count

    def _segment(self, node: SegmentCondition, subject_type: SubjectType, subject_id: int) -> bool:
        member = self.world.segments.get(node.segment_id) == str(subject_type) and subject_id in (
            self.world.memberships.get(node.segment_id, set())
        )
        return member if node.operator == "in" else not member

    def _account_segment(self, node: AccountSegmentCondition, subject_type: SubjectType, subject_id: int) -> bool:
        is_account_segment = self.world.segments.get(node.segment_id) == "account"
        members = self.world.memberships.get(node.segment_id, set()) if is_account_segment else set()
        member = any(a in members for a, u in self.world.links if u == subject_id)
        return member if node.operator == "in" else not member


# -- comparisons ---------------------------------------------------------------------------------------------------

MISSING = object()


def typed(value: Any, value_type: str) -> Any:
    """The stored value as the condition's type, or None when it is missing or of another type."""
    if value is MISSING or value is None:
        return None
    if value_type == "string":
        return value if isinstance(value, str) else None
    if value_type == "number":
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if value_type == "boolean":
        return value if isinstance(value, bool) else None
    if isinstance(value, datetime):
        return value
    return parse_date(value) if isinstance(value, str) else None


def _ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def compare(node, stored: Any, now: datetime, *, built_in: bool = False) -> bool:
    op = node.operator
    if op == "exists":
        return stored is not MISSING and stored is not None
    if op == "not_exists":
        return stored is MISSING or stored is None
    x = typed(stored, node.value_type)
    if x is None:
        return False
    v = node.value
    if node.value_type == "date":
        if op == "within_last":
            return now - duration(v) <= x <= now
        if op == "more_than_ago":
            return x < now - duration(v)
        v = [_ms(parse_date(d)) for d in v] if isinstance(v, list) else _ms(parse_date(v))
    return {
        "eq": lambda: x == v,
        "ne": lambda: x != v,
        "contains": lambda: v in x,
        "not_contains": lambda: v not in x,
        "starts_with": lambda: x.startswith(v),
        "ends_with": lambda: x.endswith(v),
        "in": lambda: x in v,
        "not_in": lambda: x not in v,
        "gt": lambda: x > v,
        "gte": lambda: x >= v,
        "lt": lambda: x < v,
        "lte": lambda: x <= v,
        "between": lambda: v[0] <= x <= v[1],
        "before": lambda: x < v,
        "after": lambda: x > v,
    }[op]()


def duration(value: dict[str, Any]) -> timedelta:
    return value["amount"] * UNITS[value["unit"]]


def in_window(at: datetime, window: Window | None, now: datetime) -> bool:
    if window is None:
        return True
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    if window.within_last is not None:
        return now - duration(window.within_last.model_dump()) <= at <= now
    start, end = window.between
    return start <= at < end


def count_passes(count: int, rule: Count) -> bool:
    if rule.operator == "at_least":
        return count >= rule.value
    if rule.operator == "at_most":
        return count <= rule.value
    return count == rule.value


def url_matches(url: str | None, operator: str, value: str) -> bool:
    if url is None:
        return False
    if operator == "equals":
        return url == value
    if operator == "contains":
        return value in url
    if operator == "starts_with":
        return url.startswith(value)
    pattern = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value)
    return re.fullmatch(pattern, url, re.DOTALL) is not None
