"""Events, page views, devices, objects and tags, compiled and run on SQLite and PostgreSQL.

Times are fixed: ``NOW`` is passed to the compiler, and windows are checked at their edges (an event exactly
seven days old is inside "the last 7 days", one a second older is not).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.segments.factories import NOW, Data

WEEK = {"within_last": {"amount": 7, "unit": "days"}}
SECOND = timedelta(seconds=1)


@pytest.fixture
def data(database) -> Data:
    return Data(database)


def event(name="purchase", operator="performed", count=None, window=None, filters=None) -> dict:
    leaf = {"type": "event", "name": name, "operator": operator}
    if count is not None:
        leaf["count"] = {"operator": count[0], "value": count[1]}
    if window is not None:
        leaf["window"] = window
    if filters is not None:
        leaf["filters"] = filters
    return leaf


def test_event_counts_at_the_window_edges(data):
    # once: exactly at the edge; twice: at the edge and now; old: a second too early; future: a second from now.
    once = data.user()
    data.event(once, "purchase", at=NOW - timedelta(days=7))
    twice = data.user()
    data.events(twice, "purchase", [NOW - timedelta(days=7), NOW])
    old = data.user()
    data.event(old, "purchase", at=NOW - timedelta(days=7) - SECOND)
    future = data.user()
    data.event(future, "purchase", at=NOW + SECOND)
    never = data.user()
    everyone = {once, twice, old, future, never}

    assert data.matching(event(window=WEEK)) == {once, twice}
    assert data.matching(event(count=("at_least", 2), window=WEEK)) == {twice}
    assert data.matching(event(count=("at_most", 1), window=WEEK)) == everyone - {twice}
    assert data.matching(event(count=("exactly", 1), window=WEEK)) == {once}
    assert data.matching(event(count=("exactly", 0), window=WEEK)) == {old, future, never}
    assert data.matching(event(count=("at_least", 0), window=WEEK)) == everyone
    assert data.matching(event(operator="not_performed", window=WEEK)) == {old, future, never}
    assert data.matching(event(operator="not_performed", count=("at_least", 2), window=WEEK)) == everyone - {twice}
    assert data.matching(event()) == {once, twice, old, future}
    assert data.matching(event(count=("at_least", 2))) == {twice}
    # A second later the edge event has left the window.
    later = NOW + SECOND
    assert data.matching(event(window=WEEK), now=later) == {twice, future}


def test_window_units_and_between_windows(data):
    ann = data.user()
    data.event(ann, "login", at=NOW - timedelta(minutes=30))
    bob = data.user()
    data.event(bob, "login", at=NOW - timedelta(hours=5))

    def within(amount, unit):
        return event("login", window={"within_last": {"amount": amount, "unit": unit}})

    assert data.matching(within(30, "minutes")) == {ann}
    assert data.matching(within(29, "minutes")) == set()
    assert data.matching(within(5, "hours")) == {ann, bob}
    assert data.matching(within(4, "hours")) == {ann}
    # between is [start, end): an event at the start counts, one at the end does not.
    start, end = NOW - timedelta(hours=5), NOW - timedelta(minutes=30)
    between = {"between": [start.isoformat(), end.isoformat()]}
    assert data.matching(event("login", window=between)) == {bob}
    naive = {"between": [start.replace(tzinfo=None).isoformat(), (end + SECOND).replace(tzinfo=None).isoformat()]}
    assert data.matching(event("login", window=naive)) == {ann, bob}


def test_event_filters_test_properties_with_attribute_operators(data):
    big = data.user()
    data.event(big, "purchase", properties={"amount": 150, "currency": "EUR"})
    small = data.user()
    data.event(small, "purchase", properties={"amount": 50, "currency": "EUR"})
    text = data.user()
    data.event(text, "purchase", properties={"amount": "150", "currency": "EUR"})
    mixed = data.user()
    data.event(mixed, "purchase", properties={"amount": 150, "currency": "USD"})
    data.event(mixed, "purchase", properties={"amount": 10, "currency": "EUR"})

    over_100 = {"property": "amount", "operator": "gt", "value": 100}
    euro = {"property": "currency", "operator": "eq", "value": "EUR"}
    assert data.matching(event(filters=[over_100])) == {big, mixed}
    # Every filter holds for the same event: mixed has a big USD purchase and a small EUR one, not a big EUR one.
    assert data.matching(event(filters=[over_100, euro])) == {big}
    assert data.matching(event(filters=[{"property": "amount", "operator": "exists"}], count=("at_least", 2))) == {
        mixed
    }
    assert data.matching(event(operator="not_performed", filters=[over_100])) == {small, text}


def test_only_track_events_of_the_workspace_count(data, database):
    ann = data.user()
    data.page_view(ann, "/purchase", name="purchase")  # a page view named like the event
    other = Data(database)
    stranger = other.user()
    other.event(stranger, "purchase")
    assert data.matching(event()) == set()
    assert other.matching(event()) == {stranger}


def test_page_views_match_urls_and_count_in_the_window(data):
    urls = {
        "premium": "https://shop.example/offers/premium",
        "premium_query": "https://shop.example/offers/premium?utm=mail",
        "upper": "https://shop.example/Offers/Premium",
        "pricing": "https://shop.example/pricing",
        "metachars": "https://shop.example/a%b_c\\d",
        "relative": "/offers/premium",
    }
    ids = {}
    for label, url in urls.items():
        ids[label] = data.user()
        data.page_view(ids[label], url, at=NOW - timedelta(days=1))
    ids["no_url"] = data.user()
    data.page_view(ids["no_url"], None)
    names = {v: k for k, v in ids.items()}

    def viewing(operator, value, **extra):
        tree = {"type": "page_view", "url": {"operator": operator, "value": value}, **extra}
        return {names[i] for i in data.matching(tree)}

    assert viewing("equals", "/offers/premium") == {"relative"}
    assert viewing("contains", "/offers/premium") == {"premium", "premium_query", "relative"}
    assert viewing("starts_with", "https://shop.example/offers") == {"premium", "premium_query"}
    assert viewing("matches", "https://shop.example/offers/*") == {"premium", "premium_query"}
    assert viewing("matches", "*/?ffers/premium") == {"premium", "relative"}
    assert viewing("matches", "*premium") == {"premium", "relative"}
    # %, _ and \ are literal in every URL operator; * and ? are the only wildcards of matches.
    assert viewing("contains", "%") == {"metachars"}
    assert viewing("contains", "a%b_c\\d") == {"metachars"}
    assert viewing("matches", "*a%b_c\\d") == {"metachars"}
    assert viewing("matches", "*_*") == {"metachars"}
    assert viewing("matches", "*[*") == set()
    assert viewing("contains", "_") == {"metachars"}
    assert viewing("starts_with", "/offers/premium", window={"within_last": {"amount": 1, "unit": "hours"}}) == set()
    assert {names[i] for i in data.matching({"type": "page_view"})} == set(ids)
    assert {names[i] for i in data.matching({"type": "page_view", "operator": "not_viewed"})} == set()


def test_viewed_premium_offer_but_did_not_buy(data):
    """The example: viewed a page containing /offers/premium at least 5 times in the last 7 days and did not
    perform purchase in the last 7 days. People leave by buying, or as their views slide out of the window."""
    tree = {
        "type": "all",
        "children": [
            {
                "type": "page_view",
                "url": {"operator": "contains", "value": "/offers/premium"},
                "count": {"operator": "at_least", "value": 5},
                "window": WEEK,
            },
            {"type": "event", "name": "purchase", "operator": "not_performed", "window": WEEK},
        ],
    }
    offer = "https://shop.example/offers/premium?ref=mail"
    keen = data.user()
    data.page_views(keen, offer, [NOW - timedelta(days=d) for d in (0, 1, 2, 3, 6)])
    buyer = data.user()
    data.page_views(buyer, offer, [NOW - timedelta(hours=h) for h in range(5)])
    data.event(buyer, "purchase", at=NOW - timedelta(hours=1))
    old_buyer = data.user()
    data.page_views(old_buyer, offer, [NOW - timedelta(hours=h) for h in range(5)])
    data.event(old_buyer, "purchase", at=NOW - timedelta(days=8))
    browser = data.user()
    data.page_views(browser, offer, [NOW] * 4)
    data.page_views(browser, "https://shop.example/pricing", [NOW] * 3)

    assert data.matching(tree) == {keen, old_buyer}
    # A day and a second later keen's oldest view (6 days ago) is out of the window: 4 views left.
    assert data.matching(tree, now=NOW + timedelta(days=1, seconds=1)) == {old_buyer}
    # keen buys: out at once, and the restricted (incremental) evaluation agrees.
    data.event(keen, "purchase", at=NOW)
    assert data.matching(tree) == {old_buyer}
    assert data.matching(tree, subject_ids=[keen, old_buyer]) == {old_buyer}


def test_devices_by_platform_and_last_seen(data):
    phone = data.user()
    data.device(phone, "ios", last_seen_at=NOW - timedelta(days=2))
    stale = data.user()
    data.device(stale, "android", last_seen_at=NOW - timedelta(days=40))
    both = data.user()
    data.device(both, "web", last_seen_at=NOW)
    data.device(both, "ios", last_seen_at=NOW - timedelta(days=90))
    nothing = data.user()

    def device(operator="has", platform=None, last_seen=None):
        return {"type": "device", "operator": operator, "platform": platform, "last_seen": last_seen}

    recent = {"within_last": {"amount": 30, "unit": "days"}}
    assert data.matching(device()) == {phone, stale, both}
    assert data.matching(device("has_not")) == {nothing}
    assert data.matching(device(platform="ios")) == {phone, both}
    assert data.matching(device(platform="ios", last_seen=recent)) == {phone}
    assert data.matching(device("has_not", platform="ios", last_seen=recent)) == {stale, both, nothing}
    assert data.matching(device(last_seen=recent)) == {phone, both}


def test_objects_linked_to_users_and_accounts(data, database):
    orders = data.object_type("orders")
    tickets = data.object_type("tickets")
    ann, bob, cy = data.user(), data.user(), data.user()
    acme, globex = data.account(), data.account()
    data.object(orders, user_id=ann, fields={"status": "paid", "total": 120})
    data.object(orders, user_id=ann, fields={"status": "open", "total": 80})
    data.object(orders, user_id=bob, fields={"status": "paid", "total": 20}, account_id=acme)
    data.object(tickets, user_id=cy, fields={"status": "paid"})
    data.object(orders, account_id=acme, fields={"status": "paid", "total": 900})
    other = Data(database)
    other_orders = other.object_type("orders")
    other.object(other_orders, user_id=cy, fields={"status": "paid"})  # another workspace's type of the same name

    def objects(object_type="orders", operator="has", count=None, filters=None):
        leaf = {"type": "object", "object_type": object_type, "operator": operator, "filters": filters or []}
        return leaf if count is None else {**leaf, "count": {"operator": count[0], "value": count[1]}}

    paid = {"field": "status", "operator": "eq", "value": "paid"}
    assert data.matching(objects()) == {ann, bob}
    assert data.matching(objects(filters=[paid])) == {ann, bob}
    assert data.matching(objects(filters=[paid, {"field": "total", "operator": "gt", "value": 100}])) == {ann}
    assert data.matching(objects(count=("at_least", 2))) == {ann}
    assert data.matching(objects(count=("exactly", 1))) == {bob}
    assert data.matching(objects(operator="has_not")) == {cy}
    assert data.matching(objects("tickets")) == {cy}
    assert data.matching(objects("refunds")) == set()
    assert data.matching(objects("refunds", "has_not")) == {ann, bob, cy}
    assert data.matching(objects(), "account") == {acme}
    assert data.matching(objects(count=("at_least", 2)), "account") == {acme}
    assert data.matching(objects(operator="has_not"), "account") == {globex}


def test_tags_are_exact_and_walled(data, database):
    vip = data.user(tags=["vip"])
    upper = data.user(tags=["VIP", "beta"])
    none = data.user()
    acme = data.account(tags=["vip"])
    plain = data.account()
    Data(database).user(tags=["vip"])
    assert data.matching({"type": "tag", "value": "vip"}) == {vip}
    assert data.matching({"type": "tag", "operator": "has_not", "value": "vip"}) == {upper, none}
    assert data.matching({"type": "tag", "value": "vip"}, "account") == {acme}
    assert data.matching({"type": "tag", "operator": "has_not", "value": "vip"}, "account") == {plain}
