"""The condition language: what parses, what it normalises to, and how bad trees are refused (with paths)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.models import SubjectType
from connector.segments.conditions import ConditionError, parse_date
from connector.segments.trees import dependencies, is_time_relative, referenced_segment_ids, smallest_time_unit, walk
from connector.segments.validation import parse_conditions, validate_references

PRO = {"type": "attribute", "name": "plan", "operator": "eq", "value": "pro"}
WEEK = {"within_last": {"amount": 7, "unit": "days"}}

EVERY_USER_LEAF = {
    "type": "all",
    "children": [
        PRO,
        {"type": "attribute", "field": "email", "operator": "ends_with", "value": "@acme.com"},
        {"type": "attribute", "name": "plan", "of": "account", "operator": "in", "value": ["pro", "team"]},
        {"type": "tag", "operator": "has", "value": "vip"},
        {
            "type": "event",
            "name": "purchase",
            "operator": "performed",
            "count": {"operator": "at_least", "value": 2},
            "window": {"between": ["2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"]},
            "filters": [{"property": "amount", "operator": "gt", "value": 100}],
        },
        {"type": "page_view", "url": {"operator": "matches", "value": "/offers/*"}, "window": WEEK},
        {"type": "device", "operator": "has", "platform": "ios", "last_seen": WEEK},
        {
            "type": "object",
            "object_type": "orders",
            "filters": [{"field": "status", "operator": "eq", "value": "paid"}],
        },
        {"type": "segment", "operator": "in", "segment_id": 4},
        {"type": "account_segment", "operator": "not_in", "segment_id": 9},
        {"type": "none", "children": [{"type": "any", "children": []}]},
    ],
}
EVERY_ACCOUNT_LEAF = {
    "type": "any",
    "children": [
        {"type": "attribute", "field": "domain", "operator": "eq", "value": "acme.com"},
        {"type": "tag", "operator": "has_not", "value": "churned"},
        {"type": "object", "object_type": "subscriptions", "count": {"operator": "exactly", "value": 1}},
        {"type": "segment", "operator": "in", "segment_id": 7},
        {
            "type": "users",
            "quantifier": "at_least",
            "count": 3,
            "condition": {"type": "all", "children": [PRO, {"type": "event", "name": "login", "window": WEEK}]},
        },
    ],
}


def errors_of(tree, subject_type="user") -> list[dict[str, str]]:
    with pytest.raises(ConditionError) as caught:
        parse_conditions(tree, subject_type)
    return caught.value.errors


def fields_of(tree, subject_type="user") -> list[str]:
    return [e["field"] for e in errors_of(tree, subject_type)]


# -- parsing and normal form ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("tree", "subject_type"), [(EVERY_USER_LEAF, "user"), (EVERY_ACCOUNT_LEAF, "account")])
def test_normal_form_round_trips(tree, subject_type):
    node = parse_conditions(tree, subject_type)
    dumped = node.model_dump(mode="json")
    assert parse_conditions(dumped, subject_type) == node
    assert parse_conditions(dumped, subject_type).model_dump(mode="json") == dumped


def test_value_types_are_inferred_and_written_into_the_normal_form():
    def inferred(leaf):
        return parse_conditions({"type": "attribute", "name": "x", **leaf}, "user").value_type

    assert inferred({"operator": "eq", "value": "pro"}) == "string"
    assert inferred({"operator": "eq", "value": 3}) == "number"
    assert inferred({"operator": "gt", "value": 2.5}) == "number"
    assert inferred({"operator": "eq", "value": True}) == "boolean"
    assert inferred({"operator": "in", "value": [1, 2]}) == "number"
    assert inferred({"operator": "not_in", "value": ["a"]}) == "string"
    # An ISO string is a string unless the operator or value_type makes it a date.
    assert inferred({"operator": "eq", "value": "2026-01-01"}) == "string"
    assert inferred({"operator": "before", "value": "2026-01-01"}) == "date"
    assert inferred({"operator": "between", "value": ["2026-01-01", "2026-02-01"]}) == "date"
    assert inferred({"operator": "between", "value": [1, 2]}) == "number"
    assert inferred({"operator": "gt", "value": "2026-01-01", "value_type": "date"}) == "date"
    assert inferred({"operator": "within_last", "value": {"amount": 1, "unit": "hours"}}) == "date"
    assert inferred({"operator": "exists"}) is None


def test_defaults_fill_in_count_and_operators():
    node = parse_conditions({"type": "event", "name": "purchase"}, "user")
    assert (node.operator, node.count.operator, node.count.value, node.window) == ("performed", "at_least", 1, None)
    assert parse_conditions({"type": "page_view"}, "user").operator == "viewed"
    assert parse_conditions({"type": "device"}, "user").operator == "has"


def test_email_and_domain_values_are_compared_in_lower_case_as_stored():
    node = parse_conditions(
        {"type": "attribute", "field": "email", "operator": "ends_with", "value": "@ACME.com"}, "user"
    )
    assert node.value == "@acme.com"
    node = parse_conditions(
        {"type": "attribute", "field": "domain", "operator": "in", "value": ["Acme.COM"]}, "account"
    )
    assert node.value == ["acme.com"]
    node = parse_conditions({"type": "attribute", "field": "name", "operator": "eq", "value": "Acme"}, "account")
    assert node.value == "Acme"


def test_twenty_levels_parse():
    tree = PRO
    for _ in range(19):
        tree = {"type": "all", "children": [tree]}
    parse_conditions(tree, "user")


# -- refusals ------------------------------------------------------------------------------------------------------


def test_twenty_one_levels_are_refused_at_the_deepest_node():
    tree = PRO
    for _ in range(20):
        tree = {"type": "all", "children": [tree]}
    assert fields_of(tree) == ["conditions" + ".children[0]" * 20]


def test_a_deep_hostile_tree_is_refused_without_recursing():
    tree: dict = {"type": "all", "children": []}
    for _ in range(100_000):
        tree = {"type": "none", "children": [tree]}
    assert "nest" in errors_of(tree)[0]["reason"]


@pytest.mark.parametrize(
    ("tree", "field", "reason"),
    [
        ({"type": "attribute", "name": "plan", "operator": "gt", "value": "pro"}, "conditions.operator", "gt does"),
        ({"type": "attribute", "name": "plan", "operator": "eq"}, "conditions.value", "required"),
        ({"type": "attribute", "name": "plan", "operator": "exists", "value": 1}, "conditions.value", "no value"),
        (
            {"type": "attribute", "name": "n", "operator": "eq", "value": "5", "value_type": "number"},
            "conditions.value",
            "must be a number",
        ),  # fmt: skip
        ({"type": "attribute", "name": "d", "operator": "before", "value": "2026-02-30"}, "conditions.value", "ISO"),
        ({"type": "attribute", "name": "d", "operator": "after", "value": "yesterday"}, "conditions.value", "ISO"),
        ({"type": "attribute", "name": "b", "operator": "gt", "value": True}, "conditions.operator", "boolean"),
        (
            {"type": "attribute", "name": "d", "operator": "eq", "value": "2026-01-01", "value_type": "date"},
            "conditions.operator",
            "does not apply to date",
        ),  # fmt: skip
        ({"type": "attribute", "name": "x", "operator": "contains", "value": ""}, "conditions.value", "empty"),
        ({"type": "attribute", "name": "x", "operator": "in", "value": []}, "conditions.value", "non-empty"),
        ({"type": "attribute", "name": "x", "operator": "in", "value": ["a", 1]}, "conditions.value[1]", "string"),
        ({"type": "attribute", "name": "x", "operator": "in", "value": list(range(1001))}, "conditions.value", "1000"),
        ({"type": "attribute", "name": "x", "operator": "between", "value": [5, 1]}, "conditions.value", "low"),
        ({"type": "attribute", "name": "x", "operator": "between", "value": [1]}, "conditions.value", "two"),
        ({"type": "attribute", "name": "x", "operator": "eq", "value": 2**60}, "conditions.value", "between"),
        ({"type": "attribute", "name": "x", "operator": "eq", "value": float("nan")}, "conditions.value", "finite"),
        ({"type": "attribute", "name": "x", "operator": "eq", "value": "a" * 1001}, "conditions.value", "1000"),
        ({"type": "attribute", "name": "x", "operator": "eq", "value": "a\x00b"}, "conditions.value", "NUL"),
        ({"type": "attribute", "name": "x", "operator": "eq", "value": "\ud800"}, "conditions.value", "Unicode"),
        ({"type": "attribute", "name": "x", "operator": "eq", "value": {"a": 1}}, "conditions.value", "value type"),
        ({"type": "attribute", "name": 'a"b', "operator": "exists"}, "conditions.name", "quotes"),
        ({"type": "attribute", "name": "a" * 101, "operator": "exists"}, "conditions.name", "100"),
        ({"type": "attribute", "operator": "exists"}, "conditions.name", "exactly one"),
        ({"type": "attribute", "name": "a", "field": "email", "operator": "exists"}, "conditions.name", "exactly one"),
        ({"type": "attribute", "field": "domain", "operator": "exists"}, "conditions.field", "user fields"),
        ({"type": "attribute", "field": "email", "operator": "gt", "value": 3}, "conditions.operator", "string"),
        (
            {"type": "attribute", "field": "email", "operator": "eq", "value": "x", "value_type": "number"},
            "conditions.value_type",
            "string",
        ),  # fmt: skip
        ({"type": "attribute", "field": "created_at", "operator": "eq", "value": 3}, "conditions.operator", "date"),
        (
            {"type": "attribute", "name": "d", "operator": "within_last", "value": {"amount": 7, "unit": "weeks"}},
            "conditions.value.unit",
            "minutes",
        ),  # fmt: skip
        (
            {"type": "attribute", "name": "d", "operator": "within_last", "value": {"amount": 40000, "unit": "days"}},
            "conditions.value.amount",
            "100 years",
        ),  # fmt: skip
        ({"type": "attribute", "name": "d", "operator": "more_than_ago", "value": 7}, "conditions.value", "amount"),
        ({"type": "attribute", "name": "p", "operater": "eq", "value": 1}, "conditions.operater", "Extra"),
        ({"type": "tag", "value": "v" * 101}, "conditions.value", "100"),
        ({"type": "event", "name": "e", "count": {"value": -1}}, "conditions.count.value", "greater than"),
        ({"type": "event", "name": "e", "count": {"value": 1_000_001}}, "conditions.count.value", "less than"),
        ({"type": "event", "name": "e", "window": {}}, "conditions.window", "exactly one"),
        (
            {"type": "event", "name": "e", "window": {"between": ["2026-02-01", "2026-01-01"]}},
            "conditions.window.between",
            "before end",
        ),  # fmt: skip
        (
            {"type": "event", "name": "e", "window": {"within_last": {"amount": 0, "unit": "days"}}},
            "conditions.window.within_last.amount",
            "greater than",
        ),  # fmt: skip
        (
            {"type": "event", "name": "e", "filters": [{"property": "a", "operator": "gt", "value": "x"}]},
            "conditions.filters[0].operator",
            "gt does",
        ),  # fmt: skip
        ({"type": "page_view", "url": {"operator": "regex", "value": "x"}}, "conditions.url.operator", "Input"),
        ({"type": "device", "platform": "windows"}, "conditions.platform", "Input"),
        (
            {"type": "object", "object_type": "orders", "filters": [{"field": "s", "operator": "lt", "value": True}]},
            "conditions.filters[0].operator",
            "boolean",
        ),  # fmt: skip
        ({"type": "segment", "segment_id": 0}, "conditions.segment_id", "greater than"),
        ({"type": "segment", "operator": "within", "segment_id": 1}, "conditions.operator", "Input"),
        ({"type": "sql", "query": "DROP TABLE users"}, "conditions.type", "one of"),
        ({"children": []}, "conditions.type", "required"),
        ({"type": "all", "children": [PRO] * 201}, "conditions.children", "200"),
    ],
)
def test_bad_nodes_are_refused_with_their_path(tree, field, reason):
    errors = errors_of(tree)
    assert any(e["field"] == field and reason.lower() in e["reason"].lower() for e in errors), errors


def test_paths_reach_into_nested_groups_and_aggregations():
    tree = {
        "type": "any",
        "children": [
            PRO,
            {"type": "all", "children": [PRO, {"type": "attribute", "name": "x", "operator": "gt", "value": "a"}]},
            {
                "type": "users",
                "quantifier": "any",
                "condition": {"type": "all", "children": [{"type": "tag", "value": ""}]},
            },
        ],
    }
    assert fields_of(tree, "account") == [
        "conditions.children[1].children[1].operator",
        "conditions.children[2].condition.children[0].value",
    ]


def test_every_bad_node_is_reported_at_once():
    tree = {"type": "all", "children": [{"type": "event"}, PRO, {"type": "tag", "operator": "maybe", "value": "x"}]}
    assert fields_of(tree) == ["conditions.children[0].name", "conditions.children[2].operator"]


@pytest.mark.parametrize(
    ("leaf", "subject_type"),
    [
        ({"type": "event", "name": "purchase"}, "account"),
        ({"type": "page_view"}, "account"),
        ({"type": "device"}, "account"),
        ({"type": "account_segment", "segment_id": 1}, "account"),
        ({"type": "users", "quantifier": "any", "condition": PRO}, "user"),
    ],
)
def test_leaves_foreign_to_the_subject_type_are_refused(leaf, subject_type):
    assert fields_of({"type": "all", "children": [leaf]}, subject_type) == ["conditions.children[0].type"]


def test_attribute_of_account_is_for_user_segments():
    assert fields_of({**PRO, "of": "account"}, "account") == ["conditions.of"]


def test_users_quantifier_count_rules():
    assert fields_of({"type": "users", "quantifier": "at_least", "condition": PRO}, "account") == ["conditions.count"]
    assert fields_of({"type": "users", "quantifier": "any", "count": 2, "condition": PRO}, "account") == [
        "conditions.count"
    ]


def test_event_leaves_inside_a_users_aggregation_are_fine_for_accounts():
    parse_conditions({"type": "users", "quantifier": "all", "condition": {"type": "event", "name": "x"}}, "account")


@pytest.mark.parametrize("data", [None, [], "all", 3])
def test_a_tree_must_be_an_object(data):
    assert fields_of(data) == ["conditions"]


def test_error_location_can_be_renamed():
    with pytest.raises(ConditionError) as caught:
        parse_conditions({"type": "tag"}, "user", location="body.conditions")
    assert caught.value.errors == [{"field": "body.conditions.value", "reason": "Field required"}]


# -- references ----------------------------------------------------------------------------------------------------


def test_references_are_checked_for_existence_and_subject_type():
    tree = {
        "type": "all",
        "children": [
            {"type": "segment", "segment_id": 1},
            {"type": "segment", "segment_id": 2},
            {"type": "segment", "segment_id": 3},
            {"type": "account_segment", "segment_id": 1},
            {"type": "account_segment", "segment_id": 2},
        ],
    }
    known = {1: SubjectType.USER, 2: SubjectType.ACCOUNT}
    errors = validate_references(parse_conditions(tree, "user"), known.get, subject_type="user")
    assert [e["field"] for e in errors] == [
        "conditions.children[1].segment_id",
        "conditions.children[2].segment_id",
        "conditions.children[3].segment_id",
    ]
    assert "account segment" in errors[0]["reason"] and "no segment 3" in errors[1]["reason"]


def test_references_inside_a_users_aggregation_name_user_segments():
    tree = {"type": "users", "quantifier": "any", "condition": {"type": "segment", "segment_id": 2}}
    node = parse_conditions(tree, "account")
    assert validate_references(node, {2: SubjectType.USER}.get, subject_type="account") == []
    errors = validate_references(node, {2: SubjectType.ACCOUNT}.get, subject_type="account")
    assert [e["field"] for e in errors] == ["conditions.condition.segment_id"]


def test_referenced_segment_ids_cover_every_reference():
    assert referenced_segment_ids(parse_conditions(EVERY_USER_LEAF, "user")) == {4, 9}
    assert referenced_segment_ids(parse_conditions(EVERY_ACCOUNT_LEAF, "account")) == {7}
    assert referenced_segment_ids(parse_conditions(PRO, "user")) == set()


# -- what a tree depends on ----------------------------------------------------------------------------------------


def test_dependencies_of_a_user_tree():
    assert dependencies(parse_conditions(EVERY_USER_LEAF, "user")) == {
        "attribute",
        "account:attribute",
        "account_link",
        "tag",
        "event:purchase",
        "page",
        "device",
        "object:orders",
        "segment:4",
        "segment:9",
    }


def test_dependencies_of_an_account_tree_prefix_the_user_side():
    assert dependencies(parse_conditions(EVERY_ACCOUNT_LEAF, "account")) == {
        "attribute",
        "tag",
        "object:subscriptions",
        "segment:7",
        "account_link",
        "user:attribute",
        "user:event:login",
    }


def test_time_relative_trees_and_their_smallest_unit():
    def node(tree):
        return parse_conditions(tree, "user")

    assert not is_time_relative(node(PRO))
    assert smallest_time_unit(node(PRO)) is None
    absolute = {"type": "event", "name": "e", "window": {"between": ["2026-01-01", "2026-02-01"]}}
    assert not is_time_relative(node(absolute))
    assert not is_time_relative(node({"type": "attribute", "name": "d", "operator": "before", "value": "2026-01-01"}))
    hours = {"type": "attribute", "name": "d", "operator": "more_than_ago", "value": {"amount": 3, "unit": "hours"}}
    assert is_time_relative(node(hours))
    assert smallest_time_unit(node({"type": "all", "children": [hours, {"type": "device", "last_seen": WEEK}]})) == (
        timedelta(hours=1)
    )
    minutes = {"type": "event", "name": "e", "filters": [{**hours, "property": "at", "name": None}]}
    del minutes["filters"][0]["name"], minutes["filters"][0]["type"]
    minutes["filters"][0]["value"] = {"amount": 90, "unit": "minutes"}
    assert smallest_time_unit(node(minutes)) == timedelta(minutes=1)
    inner = {"type": "users", "quantifier": "any", "condition": {"type": "page_view", "window": WEEK}}
    assert smallest_time_unit(parse_conditions(inner, "account")) == timedelta(days=1)


def test_walk_gives_paths_and_subject_types():
    node = parse_conditions(EVERY_ACCOUNT_LEAF, "account")
    seen = {path: subject for path, _, subject in walk(node, SubjectType.ACCOUNT)}
    assert seen["conditions.children[0]"] == SubjectType.ACCOUNT
    assert seen["conditions.children[4].condition.children[1]"] == SubjectType.USER


# -- dates ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-31", datetime(2026, 1, 31, tzinfo=UTC)),
        ("2026-01-31T12:30", datetime(2026, 1, 31, 12, 30, tzinfo=UTC)),
        ("2026-01-31 12:30:15.5", datetime(2026, 1, 31, 12, 30, 15, 500000, tzinfo=UTC)),
        ("2026-01-31T12:30:00Z", datetime(2026, 1, 31, 12, 30, tzinfo=UTC)),
        ("2026-01-31T12:30:00+02:00", datetime(2026, 1, 31, 10, 30, tzinfo=UTC)),
        ("2026-01-01T00:30:00+01:00", datetime(2025, 12, 31, 23, 30, tzinfo=UTC)),
        ("2024-02-29", datetime(2024, 2, 29, tzinfo=UTC)),
        ("2000-02-29", datetime(2000, 2, 29, tzinfo=UTC)),
        ("2026-02-29", None),
        ("1900-02-29", None),
        ("2026-04-31", None),
        ("2026-13-01", None),
        ("2026-01-01T24:00", None),
        ("2026-01-01T12:60", None),
        ("2026-01-01Z", None),
        ("2026-01-01T12:00:00+15:00", None),
        ("2026-01-01T12:00:00.1234567", None),
        ("0999-01-01", None),
        ("2026-01-01\n", None),
        ("26-01-01", None),
        ("now", None),
        ("2460000.5", None),
        ("", None),
    ],
)
def test_dates_have_one_strict_iso_form(text, expected):
    assert parse_date(text) == expected
