"""Explanations: every node of a tree for one subject, matched or not, with what was observed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.segments.explain import explain
from connector.segments.trees import walk
from connector.segments.validation import parse_conditions
from tests.segments.factories import NOW, Data

WEEK = {"within_last": {"amount": 7, "unit": "days"}}
OFFER_BUT_NO_PURCHASE = {
    "type": "all",
    "children": [
        {
            "type": "page_view",
            "url": {"operator": "contains", "value": "/offers/premium"},
            "count": {"operator": "at_least", "value": 5},
            "window": WEEK,
        },
        {"type": "event", "name": "purchase", "operator": "not_performed", "window": WEEK},
        {"type": "any", "children": [{"type": "attribute", "name": "plan", "operator": "eq", "value": "pro"}]},
    ],
}


@pytest.fixture
def data(database) -> Data:
    return Data(database)


def explained(data: Data, tree: dict, subject_id: int, subject_type: str = "user", now=NOW) -> dict:
    node = parse_conditions(tree, subject_type)
    with data.database.session() as session:
        return explain(
            session, node, subject_type=subject_type, workspace_id=data.workspace_id, subject_id=subject_id, now=now
        )


def flatten(entry: dict) -> dict[str, dict]:
    nodes = {entry["path"]: entry}
    for child in entry.get("children", []):
        nodes.update(flatten(child))
    return nodes


def test_each_node_says_whether_it_matched_and_what_was_seen(data):
    ann = data.user(attributes={"plan": "free"})
    data.page_views(ann, "https://shop.example/offers/premium", [NOW - timedelta(days=d) for d in range(6)])
    data.page_views(ann, "https://shop.example/pricing", [NOW])
    data.event(ann, "purchase", at=NOW - timedelta(days=2))
    data.event(ann, "purchase", at=NOW - timedelta(days=20))

    result = explained(data, OFFER_BUT_NO_PURCHASE, ann)
    nodes = flatten(result)
    assert result["matched"] is False and result["type"] == "all"
    assert nodes["conditions.children[0]"] == {
        "path": "conditions.children[0]",
        "type": "page_view",
        "matched": True,
        "observed": {"count": 6},
    }
    assert nodes["conditions.children[1]"]["matched"] is False
    assert nodes["conditions.children[1]"]["observed"] == {"count": 1}
    assert nodes["conditions.children[2]"]["matched"] is False
    assert nodes["conditions.children[2].children[0]"]["observed"] == {"present": True, "value": "free"}


def test_matches_agree_with_the_segment_for_every_node(data):
    people = []
    for plan, views, bought in (("pro", 5, False), ("pro", 5, True), ("free", 2, False)):
        person = data.user(attributes={"plan": plan})
        data.page_views(person, "/offers/premium", [NOW - timedelta(hours=h) for h in range(views)])
        if bought:
            data.event(person, "purchase", at=NOW)
        people.append(person)
    node = parse_conditions(OFFER_BUT_NO_PURCHASE, "user")
    for path, item, _ in walk(node):
        members = data.matching(item.model_dump(mode="json"))
        for person in people:
            assert flatten(explained(data, OFFER_BUT_NO_PURCHASE, person))[path]["matched"] is (person in members)
    assert explained(data, OFFER_BUT_NO_PURCHASE, people[0])["matched"] is True


PAID = {"field": "status", "operator": "eq", "value": "paid"}


def test_observed_values_of_every_leaf_kind(data):
    acme = data.account(attributes={"plan": "pro"}, domain="acme.com")
    ann = data.user(email="ann@acme.com", accounts=[acme], tags=["vip"])
    data.device(ann, "ios", last_seen_at=NOW - timedelta(days=1))
    orders = data.object_type("orders")
    data.object(orders, user_id=ann, fields={"status": "paid"})
    data.object(orders, user_id=ann, fields={"status": "open"})
    vips = data.segment("user", members=[ann])
    big = data.segment("account", members=[acme])
    tree = {
        "type": "all",
        "children": [
            {"type": "attribute", "field": "email", "operator": "ends_with", "value": "@acme.com"},
            {"type": "attribute", "name": "plan", "of": "account", "operator": "eq", "value": "pro"},
            {"type": "attribute", "name": "missing", "operator": "exists"},
            {"type": "tag", "value": "vip"},
            {"type": "device", "platform": "android"},
            {
                "type": "object",
                "object_type": "orders",
                "filters": [{"field": "status", "operator": "eq", "value": "paid"}],
            },
            {"type": "segment", "segment_id": vips},
            {"type": "account_segment", "segment_id": big},
        ],
    }
    observed = [child["observed"] for child in explained(data, tree, ann)["children"]]
    matched = [child["matched"] for child in explained(data, tree, ann)["children"]]
    assert observed == [
        {"present": True, "value": "ann@acme.com"},
        {"accounts": [{"account_id": acme, "present": True, "value": "pro"}]},
        {"present": False, "value": None},
        {"has_tag": True},
        {"count": 0, "devices": [{"platform": "ios", "last_seen_at": (NOW - timedelta(days=1)).isoformat()}]},
        {"count": 1},
        {"member": True},
        {"accounts": [acme], "accounts_in_segment": [acme]},
    ]
    assert matched == [True, True, False, True, False, True, True, True]


def test_account_explanations_count_matching_users(data):
    pro = data.user(attributes={"plan": "pro"})
    free = data.user(attributes={"plan": "free"})
    acme = data.account(users=[pro, free], name="Acme")
    tree = {
        "type": "any",
        "children": [
            {
                "type": "users",
                "quantifier": "all",
                "condition": {"type": "attribute", "name": "plan", "operator": "eq", "value": "pro"},
            },
            {"type": "attribute", "field": "name", "operator": "eq", "value": "Acme"},
        ],
    }
    result = explained(data, tree, acme, "account")
    assert result["matched"] is True
    assert result["children"][0] == {
        "path": "conditions.children[0]",
        "type": "users",
        "matched": False,
        "observed": {"users": 2, "matching": 1},
    }
    assert result["children"][1]["observed"] == {"present": True, "value": "Acme"}


def test_a_subject_of_another_workspace_matches_nothing(data, database):
    stranger = Data(database).user(attributes={"plan": "pro"})
    tree = {"type": "all", "children": [{"type": "attribute", "name": "plan", "operator": "eq", "value": "pro"}]}
    result = explained(data, tree, stranger)
    assert result == {
        "path": "conditions",
        "type": "all",
        "matched": False,
        "children": [{"path": "conditions.children[0]", "type": "attribute", "matched": False, "observed": {}}],
    }
