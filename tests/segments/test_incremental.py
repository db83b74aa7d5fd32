"""Incremental evaluation after ingestion: through the real ingestion API, and by ``apply_changes`` directly.

The last test checks the property that matters most: after any sequence of ingestions, membership kept current
incrementally is exactly what a full re-evaluation from scratch gives.
"""

from __future__ import annotations

import itertools
import threading
import time
from datetime import timedelta

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from connector.changes import ChangeSet
from connector.computed import EVENT_COUNT, SEGMENTS, computed_property, get_computed, refresh_computed
from connector.models import ComputedValue, SegmentMembership, utcnow
from connector.segments import service
from connector.segments.incremental import apply_changes
from connector.segments.run import refresh_segments
from tests.conftest import make_tenant
from tests.segments.factories import NOW, Data
from tests.segments.support import PRO, history, members, segments_of

RECENT_BUYERS = {
    "type": "event",
    "name": "purchase",
    "count": {"operator": "at_least", "value": 2},
    "window": {"within_last": {"amount": 7, "unit": "days"}},
}


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def create(database, workspace_id, name, conditions, subject_type="user") -> int:
    with database.session() as session:
        return service.create_segment(
            session, workspace_id, name=name, subject_type=subject_type, conditions=conditions
        ).id


def post(client, tenant, endpoint, *items):
    response = client.post(tenant.url(endpoint), headers=tenant.headers, json={"batch": list(items)})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def user_id(database, external_id) -> int:
    from connector.models import User

    with database.session() as session:
        return session.scalar(select(User.id).where(User.external_id == external_id))


# -- through the ingestion API --------------------------------------------------------------------------------------


def test_track_makes_a_person_enter_before_the_request_returns(client, tenant, database, clock):
    buyers = create(database, tenant.workspace_id, "Recent buyers", RECENT_BUYERS)
    at = (NOW - timedelta(days=1)).isoformat()

    post(client, tenant, "/track", {"external_id": "ann", "name": "purchase", "occurred_at": at})
    ann = user_id(database, "ann")
    assert members(database, buyers) == set()
    post(client, tenant, "/track", {"external_id": "ann", "name": "purchase", "occurred_at": at})

    assert members(database, buyers) == {ann}
    assert segments_of(database, ann) == ["Recent buyers"]
    with database.session() as session:
        assert get_computed(session, "user", [ann], [EVENT_COUNT])[ann][EVENT_COUNT] == 2


def test_identify_moves_people_in_and_out(client, tenant, database, clock):
    pro = create(database, tenant.workspace_id, "Pro", PRO)
    post(client, tenant, "/identify", {"external_id": "ann", "attributes": {"plan": "pro"}})
    ann = user_id(database, "ann")
    post(client, tenant, "/identify", {"external_id": "ann", "attributes": {"plan": "free"}})
    post(client, tenant, "/identify", {"external_id": "ann", "attributes": {"plan": "pro"}})

    assert history(database, pro) == [(ann, "entered"), (ann, "exited"), (ann, "entered")]
    assert segments_of(database, ann) == ["Pro"]


def test_new_people_enter_segments_about_what_they_have_not_done(client, tenant, database, clock):
    never_bought = create(
        database,
        tenant.workspace_id,
        "Never bought",
        {"type": "event", "name": "purchase", "operator": "not_performed"},
    )
    post(client, tenant, "/page", {"email": "new@x.com", "url": "https://x.com/"})
    assert members(database, never_bought) == {_by_email(database, "new@x.com")}


def _by_email(database, email) -> int:
    from connector.models import User

    with database.session() as session:
        return session.scalar(select(User.id).where(User.email == email))


def test_account_changes_reach_user_segments_and_user_changes_reach_account_segments(client, tenant, database, clock):
    at_gold = create(
        database,
        tenant.workspace_id,
        "At gold accounts",
        {"type": "attribute", "of": "account", "name": "tier", "operator": "eq", "value": "gold"},
    )
    buying_accounts = create(
        database,
        tenant.workspace_id,
        "Accounts with buyers",
        {"type": "users", "quantifier": "any", "condition": {"type": "event", "name": "purchase"}},
        "account",
    )
    gold_accounts = create(
        database,
        tenant.workspace_id,
        "Gold accounts",
        {"type": "attribute", "name": "tier", "operator": "eq", "value": "gold"},
        "account",
    )
    people_of_gold = create(
        database,
        tenant.workspace_id,
        "People of gold accounts",
        {"type": "account_segment", "segment_id": gold_accounts},
    )

    post(
        client,
        tenant,
        "/group",
        {"external_id": "acme", "attributes": {"tier": "silver"}, "users": [{"external_id": "ann"}]},
    )
    ann = user_id(database, "ann")
    assert members(database, at_gold) == set()
    post(client, tenant, "/group", {"external_id": "acme", "attributes": {"tier": "gold"}})
    assert members(database, at_gold) == {ann}
    assert members(database, people_of_gold) == {ann}

    post(client, tenant, "/track", {"external_id": "ann", "name": "purchase"})
    (acme,) = members(database, gold_accounts)
    assert members(database, buying_accounts) == {acme}
    assert segments_of(database, acme, "account") == ["Accounts with buyers", "Gold accounts"]


def test_an_aggregation_over_users_reading_their_accounts_follows_account_changes(database, clock):
    """An account segment whose users' condition reads *their* accounts: a change to one account reaches every
    account of its users (ann is at acme and globex; acme turning gold makes globex match too)."""
    data = Data(database)
    ann = data.user()
    acme = data.account(attributes={"tier": "silver"}, users=[ann])
    globex = data.account(attributes={"tier": "silver"}, users=[ann])
    lonely = data.account(attributes={"tier": "gold"})
    with_gold_people = create(
        database,
        data.workspace_id,
        "Accounts with people at gold accounts",
        {
            "type": "users",
            "quantifier": "any",
            "condition": {"type": "attribute", "of": "account", "name": "tier", "operator": "eq", "value": "gold"},
        },
        "account",
    )
    assert members(database, with_gold_people) == set()

    with database.session() as session:
        from connector.models import Account

        session.get(Account, acme).attributes = {"tier": "gold"}
    with database.session() as session:
        apply_changes(session, data.workspace_id, ChangeSet(set(), {acme}, {"attribute"}))

    assert members(database, with_gold_people) == {acme, globex}
    assert lonely not in members(database, with_gold_people)  # gold, but no users


def test_referencing_segments_follow_incrementally(client, tenant, database, clock):
    pro = create(database, tenant.workspace_id, "Pro", PRO)
    not_pro = create(
        database, tenant.workspace_id, "Not pro", {"type": "segment", "operator": "not_in", "segment_id": pro}
    )
    post(client, tenant, "/identify", {"external_id": "ann", "attributes": {"plan": "free"}})
    ann = user_id(database, "ann")
    assert members(database, not_pro) == {ann}
    post(client, tenant, "/identify", {"external_id": "ann", "attributes": {"plan": "pro"}})
    assert members(database, not_pro) == set()
    assert segments_of(database, ann) == ["Pro"]


def test_devices_objects_and_tags_are_followed(client, tenant, database, clock):
    ios = create(database, tenant.workspace_id, "iOS", {"type": "device", "platform": "ios"})
    payers = create(
        database,
        tenant.workspace_id,
        "Payers",
        {"type": "object", "object_type": "order", "filters": [{"field": "status", "operator": "eq", "value": "paid"}]},
    )
    vips = create(database, tenant.workspace_id, "VIP", {"type": "tag", "value": "vip"})
    post(client, tenant, "/device", {"external_id": "ann", "platform": "ios", "vendor_device_id": "d1"})
    post(
        client,
        tenant,
        "/objects",
        {"type": "order", "external_id": "o1", "fields": {"status": "paid"}, "user_external_id": "ann"},
    )
    post(client, tenant, "/identify", {"external_id": "ann", "tags": ["vip"]})
    ann = user_id(database, "ann")
    assert members(database, ios) == members(database, payers) == members(database, vips) == {ann}
    post(client, tenant, "/objects", {"type": "order", "external_id": "o1", "fields": {"status": "refunded"}})
    assert members(database, payers) == set()
    assert segments_of(database, ann) == ["VIP", "iOS"]


# -- apply_changes directly ------------------------------------------------------------------------------------------


def test_only_segments_reading_what_changed_are_evaluated(database, clock):
    data = Data(database)
    ann = data.user(attributes={"plan": "pro"})
    pro = create(database, data.workspace_id, "Pro", PRO)
    buyers = create(database, data.workspace_id, "Buyers", {"type": "event", "name": "purchase"})
    data.event(ann, "purchase")

    with database.session() as session:
        evaluation = apply_changes(session, data.workspace_id, ChangeSet({ann}, set(), {"event:purchase"}))
        unrelated = apply_changes(session, data.workspace_id, ChangeSet({ann}, set(), {"event:signup"}))

    assert set(evaluation.counts) == {buyers}
    assert evaluation.changed == {"user": {ann}}
    assert unrelated.counts == {}
    assert members(database, buyers) == {ann} and members(database, pro) == {ann}


def test_a_segment_is_evaluated_only_for_the_people_who_changed_in_a_way_it_reads(database, clock):
    """In one batch Ann bought and Bob only logged in: "Buyers" is asked about Ann alone. (Bob's purchase was written
    behind the engine's back, so only an evaluation of Bob would make him a member.)"""
    data = Data(database)
    ann, bob = data.user(), data.user()
    buyers = create(database, data.workspace_id, "Buyers", {"type": "event", "name": "purchase"})
    data.event(ann, "purchase")
    data.event(bob, "purchase")
    changes = ChangeSet()
    changes.add_users([ann], "event:purchase")
    changes.add_users([bob], "event:login")

    with database.session() as session:
        evaluation = apply_changes(session, data.workspace_id, changes)

    assert evaluation.counts == {buyers: (1, 0)}
    assert members(database, buyers) == {ann}


def test_a_kind_recorded_without_its_subjects_stands_for_everyone_changed(database, clock):
    data = Data(database)
    ann, bob = data.user(), data.user()
    buyers = create(database, data.workspace_id, "Buyers", {"type": "event", "name": "purchase"})
    data.event(ann, "purchase")
    data.event(bob, "purchase")

    with database.session() as session:
        apply_changes(session, data.workspace_id, ChangeSet({ann, bob}, set(), {"event:purchase"}))

    assert members(database, buyers) == {ann, bob}


def test_change_sets_keep_who_changed_in_which_way_through_a_merge():
    first, second = ChangeSet(), ChangeSet()
    first.add_users([1, 2], "event:purchase")
    first.add_accounts([7], "attribute")
    second.add_users([3], "event:login", "subject")
    second.add_users([2], "event:login")

    merged = first.merge(second)

    assert merged.users_changed({"event:purchase"}) == {1, 2}
    assert merged.users_changed({"event:login", "subject"}) == {2, 3}
    assert merged.users_changed({"attribute"}) == set()  # only an account changed its attributes
    assert merged.accounts_changed({"attribute", "event:login"}) == {7}
    assert merged.users_changed({"tag"}) == set()


def test_two_ingestions_about_the_same_person_see_each_other(database, clock):
    """Each ingestion evaluates the person after the other one committed (the person's row is locked while
    evaluating), so two purchases arriving together still make a two-purchase buyer."""
    from connector.ingest.events import track

    data = Data(database)
    ann = data.user(external_id="ann")
    buyers = create(database, data.workspace_id, "Recent buyers", RECENT_BUYERS)
    item = {"external_id": "ann", "name": "purchase", "occurred_at": (NOW - timedelta(hours=1)).isoformat()}

    def second_ingestion():
        with database.session() as session:
            apply_changes(session, data.workspace_id, track(session, data.workspace_id, [item]).changes)

    with database.session() as session:
        apply_changes(session, data.workspace_id, track(session, data.workspace_id, [item]).changes)
        other = threading.Thread(target=second_ingestion)
        other.start()
        time.sleep(0.5)  # the other ingestion reaches the person's lock (or, on SQLite, its BEGIN) and waits
    other.join(timeout=30)

    assert members(database, buyers) == {ann}


def test_large_change_sets_take_the_set_based_paths(database, clock, monkeypatch):
    """Past a few ids a scope goes through a scratch table, and past more a segment is refreshed whole; the
    outcome is the same (limits lowered here so a handful of people cross them)."""
    from connector.segments import incremental, run

    monkeypatch.setattr(run, "BOUND_IDS", 2)
    monkeypatch.setattr(incremental, "FULL_REFRESH_ABOVE", 4)
    data = Data(database)
    people = [data.user(attributes={"plan": "pro"}) for _ in range(6)]
    acme = data.account(users=people[:3])
    pro = create(database, data.workspace_id, "Pro", PRO)
    buyers = create(database, data.workspace_id, "Buyers", {"type": "event", "name": "purchase"})
    pro_buyers = create(
        database,
        data.workspace_id,
        "Pro buyers",
        {
            "type": "all",
            "children": [{"type": "segment", "segment_id": pro}, {"type": "segment", "segment_id": buyers}],
        },
    )
    with_pro_buyers = create(
        database,
        data.workspace_id,
        "Accounts with pro buyers",
        {"type": "users", "quantifier": "any", "condition": {"type": "segment", "segment_id": pro_buyers}},
        "account",
    )
    for person in people[:3]:
        data.event(person, "purchase")

    with database.session() as session:
        three = apply_changes(session, data.workspace_id, ChangeSet(set(people[:3]), set(), {"event:purchase"}))
    assert three.counts[buyers] == (3, 0) and three.counts[pro_buyers] == (3, 0)
    assert members(database, with_pro_buyers) == {acme}

    for person in people[3:]:
        data.event(person, "purchase")
    with database.session() as session:
        six = apply_changes(session, data.workspace_id, ChangeSet(set(people), set(), {"event:purchase"}))
    assert six.counts[buyers] == (3, 0) and six.changed is None
    assert members(database, pro_buyers) == set(people)
    assert segments_of(database, people[5]) == ["Buyers", "Pro", "Pro buyers"]
    assert segments_of(database, acme, "account") == ["Accounts with pro buyers"]


def test_empty_change_set_does_nothing(database):
    data = Data(database)
    with database.session() as session:
        assert apply_changes(session, data.workspace_id, ChangeSet()) is None


# -- incremental and full evaluation always agree ----------------------------------------------------------------------

PEOPLE = ["p1", "p2", "p3"]
ACCOUNTS = ["a1", "a2"]
AGES = [timedelta(hours=1), timedelta(days=3), timedelta(days=10)]

operations = st.one_of(
    st.builds(
        lambda who, plan, tag: ("/identify", {"external_id": who, "attributes": {"plan": plan}, "tags": tag}),
        st.sampled_from(PEOPLE),
        st.sampled_from(["pro", "free", None]),
        st.sampled_from([[], ["vip"]]),
    ),
    st.builds(
        lambda who: ("/identify", {"external_id": who, "remove_tags": ["vip"]}), st.sampled_from(PEOPLE)
    ),
    st.builds(
        lambda who, name, age: ("/track", {"external_id": who, "name": name, "occurred_at": (NOW - age).isoformat()}),
        st.sampled_from(PEOPLE),
        st.sampled_from(["purchase", "signup"]),
        st.sampled_from(AGES),
    ),
    st.builds(
        lambda who, age: (
            "/page", {"external_id": who, "url": "https://x.com/offers/1", "occurred_at": (NOW - age).isoformat()}
        ),
        st.sampled_from(PEOPLE),
        st.sampled_from(AGES),
    ),
    st.builds(
        lambda who, platform: (
            "/device", {"external_id": who, "platform": platform, "vendor_device_id": f"{who}-{platform}"}
        ),
        st.sampled_from(PEOPLE),
        st.sampled_from(["ios", "android"]),
    ),
    st.builds(
        lambda account, tier, who: (
            "/group", {"external_id": account, "attributes": {"tier": tier}, "users": [{"external_id": w} for w in who]}
        ),
        st.sampled_from(ACCOUNTS),
        st.sampled_from(["gold", "silver"]),
        st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=2, unique=True),
    ),
    st.builds(
        lambda who, account: ("/identify", {"external_id": who, "remove_accounts": [account]}),
        st.sampled_from(PEOPLE),
        st.sampled_from(ACCOUNTS),
    ),
    st.builds(
        lambda n, who, status: (
            "/objects", {"type": "order", "external_id": f"o{n}", "fields": {"status": status}, "user_external_id": who}
        ),
        st.integers(1, 3),
        st.sampled_from(PEOPLE),
        st.sampled_from(["paid", "refunded"]),
    ),
)  # fmt: skip

_tenants = itertools.count(1)


def _define_segments(database, workspace_id) -> list[int]:
    week = {"within_last": {"amount": 7, "unit": "days"}}
    ids = []
    ids.append(create(database, workspace_id, "Pro", PRO))
    ids.append(
        create(
            database, workspace_id, "Recent buyers", {**RECENT_BUYERS, "count": {"operator": "at_least", "value": 1}}
        )
    )
    ids.append(
        create(
            database,
            workspace_id,
            "Offer viewers",
            {"type": "page_view", "url": {"operator": "contains", "value": "/offers/"}, "window": week},
        )
    )
    ids.append(
        create(
            database,
            workspace_id,
            "Mobile",
            {
                "type": "any",
                "children": [{"type": "device", "platform": "ios"}, {"type": "device", "platform": "android"}],
            },
        )
    )
    ids.append(
        create(
            database,
            workspace_id,
            "Payers",
            {
                "type": "object",
                "object_type": "order",
                "filters": [{"field": "status", "operator": "eq", "value": "paid"}],
            },
        )
    )
    ids.append(
        create(
            database,
            workspace_id,
            "At gold",
            {"type": "attribute", "of": "account", "name": "tier", "operator": "eq", "value": "gold"},
        )
    )
    ids.append(
        create(
            database,
            workspace_id,
            "Gold accounts",
            {"type": "attribute", "name": "tier", "operator": "eq", "value": "gold"},
            "account",
        )
    )
    ids.append(create(database, workspace_id, "People of gold", {"type": "account_segment", "segment_id": ids[-1]}))
    ids.append(
        create(
            database,
            workspace_id,
            "Accounts with two pro people",
            {
                "type": "users",
                "quantifier": "at_least",
                "count": 2,
                "condition": {"type": "segment", "segment_id": ids[0]},
            },
            "account",
        )
    )
    ids.append(
        create(
            database,
            workspace_id,
            "Pro VIPs who never signed up",
            {
                "type": "all",
                "children": [
                    {"type": "segment", "segment_id": ids[0]},
                    {"type": "tag", "value": "vip"},
                    {"type": "none", "children": [{"type": "event", "name": "signup"}]},
                ],
            },
        )
    )
    return ids  # fmt: skip


def _state(database, segment_ids):
    with database.session() as session:
        membership = set(
            session.execute(
                select(SegmentMembership.segment_id, SegmentMembership.subject_id).where(
                    SegmentMembership.segment_id.in_(segment_ids)
                )
            ).all()
        )
        values = {
            (t, i, tuple(v))
            for t, i, v in session.execute(
                select(ComputedValue.subject_type, ComputedValue.subject_id, ComputedValue.value).where(
                    ComputedValue.name == SEGMENTS
                )
            )
        }
    return membership, values


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(operations, min_size=1, max_size=8))
def test_incremental_and_full_evaluation_always_agree(client, database, steps):
    with time_machine.travel(NOW, tick=False):
        tenant = make_tenant(database, f"prop-{next(_tenants)}")
        segment_ids = _define_segments(database, tenant.workspace_id)
        for endpoint, item in steps:
            post(client, tenant, endpoint, item)
        incremental = _state(database, segment_ids)

        with database.session() as session:
            evaluation = refresh_segments(session, tenant.workspace_id)
            for subject_type in ("user", "account"):
                refresh_computed(session, tenant.workspace_id, subject_type, properties=[computed_property(SEGMENTS)])

        assert evaluation.entered == evaluation.exited == 0, evaluation.counts
        assert _state(database, segment_ids) == incremental
        assert utcnow() == NOW
