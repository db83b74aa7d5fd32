"""The SQL the compiler writes: one column of ids, every name and value bound, restrictions pushed inside."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from connector.segments.compiler import compile_condition
from connector.segments.validation import parse_conditions
from tests.segments.factories import NOW, Data
from tests.segments.reference import World

DIALECTS = [postgresql.dialect(), sqlite.dialect()]
HOSTILE = "x'); drop table users; --"

EVERYTHING = {
    "type": "all",
    "children": [
        {"type": "attribute", "name": "größe", "operator": "eq", "value": HOSTILE + "1"},
        {"type": "attribute", "name": "plan_name", "operator": "contains", "value": HOSTILE + "2"},
        {"type": "attribute", "name": "plan_code", "operator": "in", "value": [HOSTILE + "3"]},
        {"type": "attribute", "name": "seen_at", "operator": "before", "value": "2026-01-02T03:04:05Z"},
        {"type": "attribute", "field": "email", "operator": "ends_with", "value": HOSTILE + "4"},
        {"type": "tag", "value": HOSTILE + "5"},
        {
            "type": "event",
            "name": HOSTILE + "6",
            "count": {"operator": "at_least", "value": 3},
            "filters": [{"property": "sku_code", "operator": "eq", "value": HOSTILE + "7"}],
        },
        {"type": "page_view", "url": {"operator": "matches", "value": "*" + HOSTILE + "8"}},
        {"type": "object", "object_type": "order_records", "filters": [{"field": "state_code", "operator": "exists"}]},
    ],
}


def compiled(tree, dialect, subject_type="user", **kwargs):
    node = parse_conditions(tree, subject_type)
    query = compile_condition(node, subject_type=subject_type, workspace_id=1, now=NOW, **kwargs)
    return query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_names_and_values_reach_sql_only_as_parameters(dialect):
    sql = compiled(EVERYTHING, dialect)
    text = str(sql)
    for secret in ("größe", "plan_name", "plan_code", "seen_at", "sku_code", "order_records", "state_code", "2026"):
        assert secret not in text
    assert "drop" not in text.lower()
    params = [str(v) for v in sql.params.values()]
    for n in range(1, 8):
        assert any(HOSTILE + str(n) in p for p in params), n
    assert {"größe", "plan_name", "order_records"} <= set(params)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_the_result_is_one_column_of_subject_ids(dialect):
    for subject_type in ("user", "account"):
        node = parse_conditions({"type": "tag", "value": "x"}, subject_type)
        query = compile_condition(node, subject_type=subject_type, workspace_id=1, now=NOW)
        assert [c.name for c in query.selected_columns] == ["subject_id"]
        # Usable as a sub-query, e.g. for a membership diff.
        str(select(query.subquery().c.subject_id).compile(dialect=dialect))


def test_restriction_reaches_every_grouped_sub_query():
    tree = {
        "type": "any",
        "children": [
            {"type": "event", "name": "a", "count": {"operator": "at_least", "value": 2}},
            {"type": "page_view", "count": {"operator": "exactly", "value": 3}},
            {"type": "event", "name": "b"},  # plain EXISTS: correlated, needs no restriction inside
        ],
    }
    text = str(compiled(tree, postgresql.dialect(), subject_ids=[7, 8]))
    assert text.count("GROUP BY") == 2
    assert text.count("IN (%(id_1_1)s::BIGINT, %(id_1_2)s::BIGINT)") == 1
    assert text.count("user_id IN (%(user_id_1_1)s::BIGINT") + text.count("user_id IN (%(user_id_2_1)s") == 2


def test_account_restriction_reaches_grouped_sub_queries_about_users():
    tree = {
        "type": "users",
        "quantifier": "at_least",
        "count": 2,
        "condition": {"type": "event", "name": "login", "count": {"operator": "at_least", "value": 5}},
    }
    text = str(compiled(tree, postgresql.dialect(), "account", subject_ids=[3]))
    # The users' grouped event counts are limited to the users of the given accounts.
    assert "user_id IN (SELECT account_users_" in text
    assert text.count("account_id IN (%(") == 2


def test_compiling_needs_no_database_and_is_repeatable():
    node = parse_conditions(EVERYTHING, "user")
    first = str(compile_condition(node, subject_type="user", workspace_id=1, now=NOW).compile())
    again = str(compile_condition(node, subject_type="user", workspace_id=1, now=NOW + timedelta(days=1)).compile())
    assert first == again  # now is a parameter, not text


def test_subject_ids_must_be_ids_or_a_select():
    node = parse_conditions({"type": "tag", "value": "x"}, "user")
    with pytest.raises(TypeError):
        compile_condition(node, subject_type="user", workspace_id=1, now=NOW, subject_ids=select(1).subquery())
    with pytest.raises(ValueError):
        compile_condition(node, subject_type="user", workspace_id=1, now=NOW, subject_ids=["x"])


def _chain(levels: int, width: int) -> dict:
    """``levels`` nested groups of ``width`` children: the next group first (the deepest way to write a list of
    terms), then leaves."""
    tree: dict = {"type": "all", "children": [MIXED_LEAVES[i % len(MIXED_LEAVES)] for i in range(width)]}
    for level in range(levels - 1):
        fill = [MIXED_LEAVES[(level + i) % len(MIXED_LEAVES)] for i in range(width - 1)]
        tree = {"type": ("any", "all", "none")[level % 3], "children": [tree, *fill]}
    return tree


DAY = {"within_last": {"amount": 1, "unit": "days"}}
MIXED_LEAVES = [
    {"type": "attribute", "name": "plan", "operator": "eq", "value": "pro"},
    {"type": "attribute", "name": "seen", "operator": "within_last", "value": {"amount": 3, "unit": "days"}},
    {"type": "event", "name": "purchase", "count": {"operator": "at_least", "value": 2}},
    {"type": "event", "name": "login", "operator": "not_performed", "window": DAY},
    {"type": "page_view", "url": {"operator": "matches", "value": "*/offers/*"}},
    {"type": "tag", "value": "vip"},
]


@pytest.mark.parametrize(
    ("subject_type", "tree"),
    [
        # 20 levels whose widths add up past 1,000: SQLite's limits on expression depth and parser nesting.
        ("user", _chain(19, 60)),
        ("user", {"type": "none", "children": (MIXED_LEAVES * 34)[:200]}),
        ("account", {"type": "users", "quantifier": "at_least", "count": 1, "condition": _chain(18, 3)}),
    ],
    ids=["deep_and_wide", "two_hundred_negated_leaves", "deep_users_aggregation"],
)
def test_the_deepest_and_widest_trees_run_and_agree_with_the_reference(database, subject_type, tree):
    data = Data(database)
    ann = data.user(attributes={"plan": "pro", "seen": "2026-03-14"}, tags=["vip"])
    data.events(ann, "purchase", [NOW, NOW])
    bob = data.user(attributes={"plan": "free"})
    data.page_view(bob, "https://x/offers/1")
    data.user()
    data.account(users=[ann, bob])
    data.account(users=[bob])
    node = parse_conditions(tree, subject_type)
    query = compile_condition(node, subject_type=subject_type, workspace_id=data.workspace_id, now=NOW)
    with database.engine.connect() as conn:
        got = set(conn.execute(query).scalars())
        assert got == World.load(conn, data.workspace_id).matching(node, subject_type, NOW)
