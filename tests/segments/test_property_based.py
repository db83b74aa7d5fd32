"""The compiled SQL and the plain Python evaluator (``reference.py``) agree on random data and random trees.

Each example builds a fresh workspace with a few users and accounts whose attributes mix types on purpose (numbers
stored as strings, impossible dates, booleans, nulls), events around the window edges, page views with LIKE
metacharacters in their URLs, devices, objects, tags and stored segment memberships; then it draws condition trees
for users and for accounts and compares the ids the SQL returns with the reference's, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert

from connector.models import (
    Account,
    AccountTag,
    AccountUser,
    Device,
    Event,
    EventKind,
    MessageEvent,
    ObjectRecord,
    ObjectType,
    Segment,
    SegmentKind,
    SegmentMembership,
    Sequence,
    SubjectType,
    User,
    UserTag,
)
from connector.segments.compiler import compile_condition
from connector.segments.validation import parse_conditions
from tests.segments.factories import NOW, make_workspace
from tests.segments.reference import World

# -- data ----------------------------------------------------------------------------------------------------------

ATTRIBUTE_NAMES = ["plan", "ltv", "seen", "größe"]
STRINGS = ["pro", "free", "Pro", "pro plan", "50%", "a_b", "back\\slash", "ünïcødé", "", "42", "2026-03-10"]
DATES = [
    "2026-03-10",
    "2026-03-14T10:00:00Z",
    "2026-03-15T11:30:00+01:00",
    "2026-03-08 12:00:00.250",
    "2026-03-15T12:00:00Z",
    "2026-03-08T12:00:00Z",
    "2026-02-29",  # not a day of 2026
    "2026-13-01",
    "2024-02-29T00:00",
    "yesterday",
]
NUMBERS = [0, 5, 5.5, -3, 100, 0.1]
JSON_VALUES = st.one_of(
    st.sampled_from(STRINGS),
    st.sampled_from(DATES),
    st.sampled_from(NUMBERS),
    st.booleans(),
    st.none(),
    st.just([1, 2]),
    st.just({"a": 1}),
)
ATTRIBUTES = st.dictionaries(st.sampled_from(ATTRIBUTE_NAMES), JSON_VALUES, min_size=1, max_size=4)
AGO = [
    timedelta(0),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=6, hours=23),
    timedelta(days=7),
    timedelta(days=7, seconds=1),
    timedelta(days=30),
    timedelta(days=-1),  # a little in the future: clock skew
]
TIMES = st.sampled_from(AGO).map(lambda d: NOW - d)
URLS = [
    "https://shop.example/offers/premium",
    "https://shop.example/offers/premium?utm=1",
    "https://shop.example/Offers/Premium",
    "https://shop.example/pricing",
    "https://shop.example/a%b_c\\d",
    "/offers/premium",
]
TAGS = ["vip", "beta", "Vip"]
EVENT_NAMES = ["purchase", "signup"]
OBJECT_TYPES = ["orders", "tickets"]
MESSAGE_KINDS = ["sent", "opened", "clicked"]


@st.composite
def worlds(draw):
    """A small workspace, as row specs that refer to users and accounts by position."""
    n_users = draw(st.integers(3, 7))
    n_accounts = draw(st.integers(1, 3))
    users = [
        {
            "email": draw(st.sampled_from([None, f"ann{i}@acme.com", f"bob{i}@globex.com", f"cy{i}@acme.co"])),
            "default_channel": draw(st.sampled_from([None, "email", "sms"])),
            "attributes": draw(ATTRIBUTES),
            "tags": draw(st.sets(st.sampled_from(TAGS), max_size=2)),
            "created_at": draw(TIMES),
        }
        for i in range(n_users)
    ]
    accounts = [
        {
            "domain": draw(st.sampled_from([None, "acme.com", "globex.com"])),
            "name": draw(st.sampled_from([None, "Acme", "Globex"])),
            "attributes": draw(ATTRIBUTES),
            "tags": draw(st.sets(st.sampled_from(TAGS), max_size=2)),
        }
        for _ in range(n_accounts)
    ]
    user_index = st.integers(0, max(n_users - 1, 0))
    account_index = st.integers(0, max(n_accounts - 1, 0))
    links = draw(st.sets(st.tuples(account_index, user_index), min_size=2, max_size=8))
    events = []
    if n_users:
        for _ in range(draw(st.integers(2, 12))):
            events.append(
                {
                    "user": draw(user_index),
                    "kind": "track",
                    "name": draw(st.sampled_from(EVENT_NAMES)),
                    "url": None,
                    "properties": draw(st.dictionaries(st.sampled_from(["amount", "sku"]), JSON_VALUES, max_size=2)),
                    "at": draw(TIMES),
                }
            )
        for _ in range(draw(st.integers(2, 10))):
            events.append(
                {
                    "user": draw(user_index),
                    "kind": "page",
                    # Page views may carry an event's name; they never count as that event.
                    "name": draw(st.sampled_from(["page", "purchase"])),
                    "url": draw(st.sampled_from([*URLS, None])),
                    "properties": {},
                    "at": draw(TIMES),
                }
            )
    devices = [
        {"user": draw(user_index), "platform": draw(st.sampled_from(["ios", "android", "web"])), "at": draw(TIMES)}
        for _ in range(draw(st.integers(1, 4)))
    ]
    objects = [
        {
            "type": draw(st.sampled_from(OBJECT_TYPES[:1] * 3 + OBJECT_TYPES[1:])),
            "user": draw(st.none() | user_index) if n_users else None,
            "account": draw(st.none() | account_index) if n_accounts else None,
            "fields": draw(
                st.dictionaries(st.sampled_from(["status", "total"]), st.sampled_from(["paid", "open", 5, 50]))
            ),
        }
        for _ in range(draw(st.integers(1, 6)))
    ]
    memberships = {
        "user_a": draw(st.sets(user_index, max_size=n_users)) if n_users else set(),
        "user_b": draw(st.sets(user_index, max_size=n_users)) if n_users else set(),
        "account_a": draw(st.sets(account_index, max_size=n_accounts)) if n_accounts else set(),
    }
    messages = [
        {
            "user": draw(user_index),
            "kind": draw(st.sampled_from(MESSAGE_KINDS)),
            "sequence": draw(st.sampled_from([None, 0, 1])),
            "step": draw(st.sampled_from([None, 0, 1])),
            "at": draw(TIMES),
        }
        for _ in range(draw(st.integers(0, 8)) if n_users else 0)
    ]
    return {
        "users": users,
        "accounts": accounts,
        "links": links,
        "events": events,
        "devices": devices,
        "objects": objects,
        "messages": messages,
        "memberships": memberships,
    }


_ids = itertools.count(10_000_000, 100)


def load(database, spec) -> tuple[int, dict[str, int]]:
    """Insert a drawn world into a new workspace; returns the workspace id and the segment ids by name."""
    ws = make_workspace(database)
    # Users and accounts get the same ids on purpose: a membership of an account segment names ids that are also
    # users' ids, so reading a segment of the wrong subject type would show.
    base = next(_ids)
    with database.engine.begin() as conn:

        def add(model, **values):
            return conn.execute(insert(model.__table__).values(workspace_id=ws, **values)).inserted_primary_key[0]

        users = [
            add(
                User,
                id=base + i,
                external_id=f"u{i}",
                email=u["email"],
                default_channel=u["default_channel"],
                attributes=u["attributes"],
                created_at=u["created_at"],
            )
            for i, u in enumerate(spec["users"])
        ]
        accounts = [
            add(Account, id=base + i, external_id=f"a{i}", **{k: a[k] for k in ("domain", "name", "attributes")})
            for i, a in enumerate(spec["accounts"])
        ]
        for user, u in zip(users, spec["users"], strict=True):
            for tag in u["tags"]:
                add(UserTag, user_id=user, tag=tag)
        for account, a in zip(accounts, spec["accounts"], strict=True):
            for tag in a["tags"]:
                add(AccountTag, account_id=account, tag=tag)
        for a, u in spec["links"]:
            add(AccountUser, account_id=accounts[a], user_id=users[u])
        for i, e in enumerate(spec["events"]):
            add(
                Event,
                user_id=users[e["user"]],
                kind=EventKind(e["kind"]),
                name=e["name"],
                url=e["url"],
                properties=e["properties"],
                occurred_at=e["at"],
                message_id=f"m{i}",
            )
        for i, d in enumerate(spec["devices"]):
            add(
                Device, user_id=users[d["user"]], platform=d["platform"], vendor_device_id=f"d{i}", last_seen_at=d["at"]
            )
        types = {name: add(ObjectType, name=name) for name in OBJECT_TYPES}
        for i, o in enumerate(spec["objects"]):
            add(
                ObjectRecord,
                object_type_id=types[o["type"]],
                external_id=f"o{i}",
                fields=o["fields"],
                user_id=None if o["user"] is None else users[o["user"]],
                account_id=None if o["account"] is None else accounts[o["account"]],
            )
        sequences = [add(Sequence, name=f"s{i}", channels=["email"], steps=[{"name": "a"}]) for i in range(2)]
        for i, m in enumerate(spec["messages"]):
            add(
                MessageEvent,
                user_id=users[m["user"]],
                kind=m["kind"],
                sequence_id=None if m["sequence"] is None else sequences[m["sequence"]],
                step=m["step"],
                occurred_at=m["at"],
                message_id=f"msg{i}",
            )
        segments = {f"sequence_{i}": sequence for i, sequence in enumerate(sequences)}
        for name, members in spec["memberships"].items():
            subject_type = SubjectType.ACCOUNT if name.startswith("account") else SubjectType.USER
            segments[name] = add(Segment, name=name, subject_type=subject_type, kind=SegmentKind.MANUAL)
            ids = accounts if subject_type == SubjectType.ACCOUNT else users
            for m in members:
                conn.execute(insert(SegmentMembership.__table__).values(segment_id=segments[name], subject_id=ids[m]))
    return ws, segments


# -- trees ---------------------------------------------------------------------------------------------------------

DURATIONS = st.builds(
    lambda amount, unit: {"amount": amount, "unit": unit},
    st.sampled_from([1, 7, 30, 90]),
    st.sampled_from(["minutes", "hours", "days"]),
)
WINDOWS = st.one_of(
    st.none(),
    DURATIONS.map(lambda d: {"within_last": d}),
    st.just({"between": ["2026-03-08T12:00:00Z", "2026-03-15T12:00:00Z"]}),
    st.just({"between": ["2026-03-14T12:00:00", "2026-03-16T00:00:00"]}),
)
COUNTS = st.builds(
    lambda op, n: {"operator": op, "value": n},
    st.sampled_from(["at_least", "at_most", "exactly"]),
    st.integers(0, 3),
)


@st.composite
def comparisons(draw, key: str, names: list[str]):
    """A valid attribute-style comparison ``{key: name, operator, value[, value_type]}``."""
    name = draw(st.sampled_from(names))
    value_type = draw(st.sampled_from(["string", "number", "date", "boolean", None]))
    if value_type is None:
        return {key: name, "operator": draw(st.sampled_from(["exists", "not_exists"]))}
    if value_type == "string":
        op = draw(st.sampled_from(["eq", "ne", "contains", "not_contains", "starts_with", "ends_with", "in", "not_in"]))
        pool = [s for s in STRINGS if s] if "with" in op or "contains" in op else STRINGS
        if op in ("in", "not_in"):
            value = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3))
        else:
            value = draw(st.sampled_from(pool))
        if op in ("contains", "not_contains") and draw(st.booleans()):
            value = draw(st.sampled_from(["%", "_", "\\", "o", "ü"]))
    elif value_type == "number":
        op = draw(st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in"]))
        if op == "between":
            value = sorted(draw(st.lists(st.sampled_from(NUMBERS), min_size=2, max_size=2)))
        elif op in ("in", "not_in"):
            value = draw(st.lists(st.sampled_from(NUMBERS), min_size=1, max_size=3))
        else:
            value = draw(st.sampled_from(NUMBERS))
    elif value_type == "boolean":
        op, value = draw(st.sampled_from(["eq", "ne"])), draw(st.booleans())
    else:
        op = draw(st.sampled_from(["before", "after", "gt", "lte", "between", "within_last", "more_than_ago"]))
        # Finer than milliseconds in a condition: compared as .250 (stored values keep to milliseconds here, as
        # SQLite rounds finer ones).
        valid = [d for d in DATES if d not in ("2026-02-29", "2026-13-01", "yesterday")]
        valid.append("2026-03-08 12:00:00.2504")
        if op in ("within_last", "more_than_ago"):
            value = draw(DURATIONS)
        elif op == "between":
            value = sorted(draw(st.lists(st.sampled_from(valid), min_size=2, max_size=2)), key=_instant)
        else:
            value = draw(st.sampled_from(valid))
    item = {key: name, "operator": op, "value": value}
    if draw(st.booleans()) or (value_type == "date" and op not in ("before", "after", "between")):
        item["value_type"] = value_type
    return item


def _instant(value: str):
    from connector.segments.conditions import parse_date

    return parse_date(value)


def attribute_leaves(subject_type: str):
    custom = comparisons("name", ATTRIBUTE_NAMES).map(lambda c: {"type": "attribute", **c})
    fields = ["email", "default_channel", "created_at"] if subject_type == "user" else ["domain", "name", "created_at"]
    built_in = st.one_of(
        st.builds(
            lambda f, op, v: {"type": "attribute", "field": f, "operator": op, "value": v},
            st.sampled_from([f for f in fields if f != "created_at"]),
            st.sampled_from(["eq", "ne", "ends_with", "contains"]),
            st.sampled_from(["ann@acme.com", "ACME.com", "acme.com", "Acme", "globex", "email"]),
        ),
        st.builds(
            lambda op, v: {"type": "attribute", "field": "created_at", "operator": op, "value": v},
            st.sampled_from(["within_last", "more_than_ago"]),
            DURATIONS,
        ),
        st.sampled_from(fields).map(lambda f: {"type": "attribute", "field": f, "operator": "exists"}),
    )
    leaves = [custom, built_in]
    if subject_type == "user":
        leaves.append(custom.map(lambda c: {**c, "of": "account"}))
    return st.one_of(*leaves)


def user_leaves(segments: dict[str, int]):
    return st.one_of(
        attribute_leaves("user"),
        st.builds(
            lambda op, t: {"type": "tag", "operator": op, "value": t},
            st.sampled_from(["has", "has_not"]),
            st.sampled_from(TAGS),
        ),  # fmt: skip
        st.builds(
            lambda name, op, count, window, filters: {
                "type": "event",
                "name": name,
                "operator": op,
                "count": count,
                "window": window,
                "filters": filters,
            },  # fmt: skip
            st.sampled_from(EVENT_NAMES),
            st.sampled_from(["performed", "not_performed"]),
            COUNTS,
            WINDOWS,
            st.lists(comparisons("property", ["amount", "sku"]), max_size=1),
        ),
        st.builds(
            lambda op, url, count, window: {
                "type": "page_view",
                "operator": op,
                "url": url,
                "count": count,
                "window": window,
            },  # fmt: skip
            st.sampled_from(["viewed", "not_viewed"]),
            st.none()
            | st.builds(
                lambda op, v: {"operator": op, "value": v},
                st.sampled_from(["equals", "contains", "starts_with", "matches"]),
                st.sampled_from(
                    [
                        "/offers/premium",
                        "https://shop.example/offers/*",
                        "*premium*",
                        "*/?ffers/*",
                        "*%*",
                        "*a%b_c\\d",
                        "https://shop.example/a%b_c\\d",
                        "a_b",
                        "*[*",
                    ]  # fmt: skip
                ),
            ),
            COUNTS,
            WINDOWS,
        ),
        st.builds(
            lambda op, platform, window: {"type": "device", "operator": op, "platform": platform, "last_seen": window},
            st.sampled_from(["has", "has_not"]),
            st.sampled_from([None, "ios", "android", "web"]),
            WINDOWS,
        ),
        _objects(),
        st.builds(
            lambda op, event, sequence, step, count, window: {
                "type": "message",
                "operator": op,
                "event": event,
                "sequence_id": sequence,
                "step": step,
                "count": count,
                "window": window,
            },  # fmt: skip
            st.sampled_from(["did", "did_not"]),
            st.sampled_from(MESSAGE_KINDS),
            st.sampled_from([None, segments["sequence_0"], segments["sequence_1"]]),
            st.sampled_from([None, 0, 1]),
            COUNTS,
            WINDOWS,
        ),
        st.builds(
            lambda op, s: {"type": "segment", "operator": op, "segment_id": s},
            st.sampled_from(["in", "not_in"]),
            st.sampled_from([segments["user_a"], segments["user_b"], segments["account_a"]]),
        ),
        st.builds(
            lambda op, s: {"type": "account_segment", "operator": op, "segment_id": s},
            st.sampled_from(["in", "not_in"]),
            st.sampled_from([segments["account_a"], segments["user_a"]]),
        ),
    )


def _objects():
    return st.builds(
        lambda t, op, count, filters: {
            "type": "object",
            "object_type": t,
            "operator": op,
            "count": count,
            "filters": filters,
        },  # fmt: skip
        st.sampled_from([*OBJECT_TYPES, "missing"]),
        st.sampled_from(["has", "has_not"]),
        COUNTS,
        st.lists(comparisons("field", ["status", "total"]), max_size=1),
    )


def groups(leaves, max_leaves: int):
    return st.recursive(
        leaves,
        lambda children: st.builds(
            lambda t, c: {"type": t, "children": c},
            st.sampled_from(["all", "any", "none"]),
            st.lists(children, max_size=3),
        ),
        max_leaves=max_leaves,
    )


def account_leaves(segments: dict[str, int]):
    return st.one_of(
        attribute_leaves("account"),
        st.builds(
            lambda op, t: {"type": "tag", "operator": op, "value": t},
            st.sampled_from(["has", "has_not"]),
            st.sampled_from(TAGS),
        ),  # fmt: skip
        _objects(),
        st.builds(
            lambda q, n, c: {
                "type": "users",
                "quantifier": q,
                **({"count": n} if q in ("at_least", "at_most") else {}),
                "condition": c,
            },  # fmt: skip
            st.sampled_from(["any", "none", "all", "at_least", "at_most"]),
            st.integers(0, 3),
            groups(user_leaves(segments), 3),
        ),
        st.builds(
            lambda op, s: {"type": "segment", "operator": op, "segment_id": s},
            st.sampled_from(["in", "not_in"]),
            st.sampled_from([segments["account_a"], segments["user_a"]]),
        ),
    )


# -- the property --------------------------------------------------------------------------------------------------


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(spec=worlds(), data=st.data())
def test_compiled_sql_agrees_with_reference_evaluator(database, spec, data):
    ws, segments = load(database, spec)
    with database.engine.connect() as sql:
        world = World.load(sql, ws)

        def agree(tree: dict, subject_type: str, now=NOW, subject_ids=None) -> None:
            node = parse_conditions(tree, subject_type)
            query = compile_condition(
                node, subject_type=subject_type, workspace_id=ws, now=now, subject_ids=subject_ids
            )
            expected = world.matching(node, subject_type, now)
            if subject_ids is not None:
                expected &= set(subject_ids)
            assert set(sql.execute(query).scalars()) == expected, tree

        for subject_type, leaves in (("user", user_leaves(segments)), ("account", account_leaves(segments))):
            # Single leaves first: a wrong leaf cannot hide behind the logic of a group.
            for _ in range(12):
                agree(data.draw(leaves, label=f"{subject_type} leaf"), subject_type)
            for _ in range(3):
                tree = data.draw(groups(leaves, 6), label=f"{subject_type} tree")
                agree(tree, subject_type)
                agree(tree, subject_type, now=NOW + timedelta(days=3))
                # A few subjects at a time (incremental evaluation) give the same answer for those subjects.
                subjects = world.users if subject_type == "user" else world.accounts
                agree(tree, subject_type, subject_ids=sorted(subjects)[:2])
