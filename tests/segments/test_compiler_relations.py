"""Accounts and their users, segment references, restriction to some subjects, and the workspace wall."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from connector.models import User
from tests.segments.factories import NOW, Data

PRO = {"type": "attribute", "name": "plan", "operator": "eq", "value": "pro"}


@pytest.fixture
def data(database) -> Data:
    return Data(database)


def users(quantifier: str, condition: dict = PRO, count: int | None = None) -> dict:
    leaf = {"type": "users", "quantifier": quantifier, "condition": condition}
    return leaf if count is None else {**leaf, "count": count}


@pytest.fixture
def companies(data):
    """Accounts by how many of their users are on the pro plan: all_pro (2 of 2), mixed (1 of 3), none_pro (0 of
    1), empty (no users)."""
    pro = [data.user(attributes={"plan": "pro"}) for _ in range(3)]
    free = [data.user(attributes={"plan": "free"}) for _ in range(3)]
    return {
        "all_pro": data.account(users=pro[:2]),
        "mixed": data.account(users=[pro[2], *free[:2]]),
        "none_pro": data.account(users=free[2:]),
        "empty": data.account(),
    }


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        (users("any"), {"all_pro", "mixed"}),
        (users("none"), {"none_pro", "empty"}),
        # "all" needs at least one user: an account without users is not "all users are pro".
        (users("all"), {"all_pro"}),
        (users("at_least", count=2), {"all_pro"}),
        (users("at_least", count=1), {"all_pro", "mixed"}),
        (users("at_least", count=0), {"all_pro", "mixed", "none_pro", "empty"}),
        (users("at_most", count=1), {"mixed", "none_pro", "empty"}),
        (users("at_most", count=0), {"none_pro", "empty"}),
        (users("all", {"type": "all", "children": []}), {"all_pro", "mixed", "none_pro"}),
        ({"type": "none", "children": [users("all")]}, {"mixed", "none_pro", "empty"}),
    ],
)
def test_users_aggregation_quantifiers(data, companies, tree, expected):
    names = {v: k for k, v in companies.items()}
    assert {names[i] for i in data.matching(tree, "account")} == expected


def test_users_aggregation_with_activity_inside(data):
    buyer = data.user()
    data.events(buyer, "purchase", [NOW - timedelta(days=1), NOW - timedelta(days=2)])
    once = data.user()
    data.event(once, "purchase", at=NOW - timedelta(days=1))
    idle = data.user()
    data.device(idle, "ios")
    acme = data.account(users=[buyer, idle])
    globex = data.account(users=[once])
    initech = data.account(users=[idle])
    frequent = {
        "type": "event",
        "name": "purchase",
        "count": {"operator": "at_least", "value": 2},
        "window": {"within_last": {"amount": 7, "unit": "days"}},
    }
    assert data.matching(users("any", frequent), "account") == {acme}
    assert data.matching(users("any", {**frequent, "count": {"operator": "at_least", "value": 1}}), "account") == {
        acme,
        globex,
    }
    assert data.matching(users("none", {"type": "device"}), "account") == {globex}
    # Restricted to some accounts, grouped sub-queries see only those accounts' users, with the same answers.
    assert data.matching(users("any", frequent), "account", subject_ids=[acme, initech]) == {acme}
    assert data.matching(users("at_least", frequent, count=1), "account", subject_ids=[globex]) == set()


def test_segment_references_read_stored_membership(data, database):
    ann, bob, cy = data.user(), data.user(), data.user()
    acme = data.account()
    vips = data.segment("user", members=[ann, bob])
    accounts = data.segment("account", members=[acme])
    other = Data(database)
    foreign = other.segment("user", members=[cy])  # another workspace's segment naming our user
    assert data.matching({"type": "segment", "segment_id": vips}) == {ann, bob}
    assert data.matching({"type": "segment", "operator": "not_in", "segment_id": vips}) == {cy}
    # A segment of the other subject type or of another workspace has no members here.
    assert data.matching({"type": "segment", "segment_id": accounts}) == set()
    assert data.matching({"type": "segment", "segment_id": foreign}) == set()
    assert data.matching({"type": "segment", "segment_id": 999_999}) == set()
    assert data.matching({"type": "segment", "segment_id": accounts}, "account") == {acme}


def test_account_segment_matches_users_through_their_accounts(data):
    ann, bob, cy = data.user(), data.user(), data.user()
    acme = data.account(users=[ann])
    globex = data.account(users=[ann, bob])
    big = data.segment("account", members=[acme])
    users_segment = data.segment("user", members=[cy])
    assert data.matching({"type": "account_segment", "segment_id": big}) == {ann}
    assert data.matching({"type": "account_segment", "operator": "not_in", "segment_id": big}) == {bob, cy}
    assert data.matching({"type": "account_segment", "segment_id": users_segment}) == set()
    assert globex


def test_restricting_to_subjects_returns_only_those(data):
    ann = data.user(attributes={"plan": "pro"})
    bob = data.user(attributes={"plan": "pro"})
    cy = data.user(attributes={"plan": "free"})
    for who in (ann, bob, cy):
        data.events(who, "login", [NOW] * 3)
    thrice = {"type": "event", "name": "login", "count": {"operator": "exactly", "value": 3}}
    tree = {"type": "all", "children": [PRO, thrice]}
    assert data.matching(tree) == {ann, bob}
    assert data.matching(tree, subject_ids=[bob, cy]) == {bob}
    assert data.matching(tree, subject_ids=iter([ann])) == {ann}
    assert data.matching(tree, subject_ids=[]) == set()
    assert data.matching(tree, subject_ids=select(User.id).where(User.id != ann)) == {bob}
    assert data.matching({"type": "all", "children": []}, subject_ids=[cy, 10**9]) == {cy}


def test_nothing_of_another_workspace_matches(data, database):
    other = Data(database)
    stranger = other.user(attributes={"plan": "pro"}, tags=["vip"])
    other.event(stranger, "purchase")
    ann = data.user(attributes={"plan": "pro"})
    everyone = {"type": "all", "children": []}
    assert data.matching(everyone) == {ann}
    assert data.matching(PRO) == {ann}
    assert data.matching(everyone, subject_ids=[stranger]) == set()
    assert data.matching({"type": "event", "name": "purchase", "operator": "not_performed"}) == {ann}
