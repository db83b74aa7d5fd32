"""The condition builder's form fields describe a tree and back, for every kind of node."""

from __future__ import annotations

import pytest

from connector.models import SubjectType
from connector.segments.validation import parse_conditions
from connector.web import builder

USER_TREE = {
    "type": "all",
    "children": [
        {"type": "attribute", "name": "plan", "operator": "in", "value": ["pro", "enterprise"]},
        {"type": "attribute", "field": "email", "operator": "ends_with", "value": "@acme.com"},
        {"type": "attribute", "name": "seats", "operator": "between", "value": [3, 10], "value_type": "number"},
        {"type": "attribute", "name": "signed_up", "operator": "within_last", "value": {"amount": 7, "unit": "days"}},
        {"type": "attribute", "name": "vip", "operator": "eq", "value": True},
        {"type": "attribute", "name": "zip", "operator": "eq", "value": "02134", "value_type": "string"},
        {"type": "attribute", "name": "industry", "of": "account", "operator": "exists"},
        {"type": "tag", "operator": "has_not", "value": "churned"},
        {
            "type": "any",
            "children": [
                {
                    "type": "event",
                    "name": "purchase",
                    "operator": "performed",
                    "count": {"operator": "at_least", "value": 2},
                    "window": {"within_last": {"amount": 30, "unit": "days"}},
                    "filters": [{"property": "amount", "operator": "gt", "value": 100}],
                },
                {
                    "type": "page_view",
                    "operator": "viewed",
                    "url": {"operator": "matches", "value": "/offers/*"},
                    "count": {"operator": "exactly", "value": 1},
                },
                {"type": "none", "children": [{"type": "segment", "operator": "not_in", "segment_id": 4}]},
            ],
        },
        {
            "type": "device",
            "operator": "has",
            "platform": "ios",
            "last_seen": {"within_last": {"amount": 12, "unit": "hours"}},
        },
        {"type": "object", "object_type": "orders", "operator": "has", "count": {"operator": "at_most", "value": 3}},
        {
            "type": "message",
            "operator": "did_not",
            "event": "clicked",
            "sequence_id": 5,
            "step": 2,
            "count": {"operator": "at_least", "value": 1},
            "window": {"within_last": {"amount": 14, "unit": "days"}},
        },
        {"type": "account_segment", "operator": "in", "segment_id": 9},
    ],
}

ACCOUNT_TREE = {
    "type": "any",
    "children": [
        {"type": "attribute", "field": "domain", "operator": "eq", "value": "acme.com"},
        {
            "type": "users",
            "quantifier": "at_least",
            "count": 2,
            "condition": {"type": "all", "children": [{"type": "tag", "operator": "has", "value": "admin"}]},
        },
        {"type": "segment", "operator": "in", "segment_id": 3},
    ],
}


def as_form(node: dict, path: str = "n") -> dict[str, str]:
    """The fields the builder's template renders for ``node`` (what a browser would post back)."""
    fields = {f"{path}.type": node["type"]}
    if node["type"] in builder.GROUPS:
        for i, child in enumerate(node["children"]):
            fields.update(as_form(child, f"{path}.{i}"))
        return fields
    shown = builder.display(node)
    names = ("name", "field", "of", "operator", "value_type", "platform", "object_type", "quantifier", "event")
    for name in (*names, "sequence_id", "step"):
        if node.get(name) is not None:
            fields[f"{path}.{name}"] = str(node[name])
    if "value" in node:
        fields[f"{path}.value"] = shown["value"]
    if "segment_id" in node:
        fields[f"{path}.segment_id"] = str(node["segment_id"])
    if "count" in node:
        count = node["count"]
        fields[f"{path}.count"] = str(count["value"] if isinstance(count, dict) else count)
        if isinstance(count, dict):
            fields[f"{path}.count_operator"] = count["operator"]
    if shown["window"]:
        fields[f"{path}.window"] = shown["window"]
    if shown["filters"]:
        fields[f"{path}.filters"] = shown["filters"]
    if node.get("url"):
        fields[f"{path}.url_operator"] = node["url"]["operator"]
        fields[f"{path}.url"] = node["url"]["value"]
    if node["type"] == "users":
        fields.update(as_form(node["condition"], f"{path}.c"))
    return fields


@pytest.mark.parametrize(("tree", "subject_type"), [(USER_TREE, SubjectType.USER), (ACCOUNT_TREE, SubjectType.ACCOUNT)])
def test_every_node_kind_survives_the_round_trip_through_the_form(tree, subject_type):
    back = builder.tree_from_form(as_form(tree))
    expected = parse_conditions(tree, subject_type).model_dump(mode="json")
    assert parse_conditions(back, subject_type).model_dump(mode="json") == expected


def test_adding_and_removing_nodes_edits_the_tree_where_the_button_was():
    tree = builder.tree_from_form(as_form(USER_TREE))
    builder.apply(tree, "add:n.8:tag")
    assert tree["children"][8]["children"][-1] == {"type": "tag", "operator": "has", "value": ""}
    builder.apply(tree, "remove:n.8.0")
    assert [c["type"] for c in tree["children"][8]["children"]] == ["page_view", "none", "tag"]
    builder.apply(tree, "remove:n")  # the root stays
    builder.apply(tree, "add:n.99:tag")  # no such group: nothing happens
    assert len(tree["children"]) == len(USER_TREE["children"])


def test_error_paths_name_the_node_the_service_names():
    assert builder.error_path("n.8.2.0") == "conditions.children[8].children[2].children[0]"
    assert builder.error_path("n.1.c.0") == "conditions.children[1].condition.children[0]"


def test_values_are_typed_as_the_operator_and_type_say():
    form = {"n.type": "all", "n.0.type": "attribute", "n.0.name": "zip", "n.0.operator": "eq", "n.0.value": "02134"}
    assert builder.tree_from_form(form)["children"][0]["value"] == 2134
    form["n.0.value_type"] = "string"
    assert builder.tree_from_form(form)["children"][0]["value"] == "02134"
    form.update({"n.0.operator": "not_in", "n.0.value": "a, b ,c"})
    assert builder.tree_from_form(form)["children"][0]["value"] == ["a", "b", "c"]
