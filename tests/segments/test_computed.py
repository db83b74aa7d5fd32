"""Computed properties: the framework, ``Segments`` and ``event_count``."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import Select, func, literal, select

from connector.computed import (
    EVENT_COUNT,
    SEGMENTS,
    ComputedProperty,
    computed_properties,
    get_computed,
    refresh_computed,
    register,
)
from connector.computed import properties as registry
from connector.computed.properties import json_value
from connector.models import ComputedValue, User
from connector.segments import service
from tests.segments.factories import Data
from tests.segments.support import PRO, computed_rows, segments_of


@pytest.fixture
def data(database) -> Data:
    return Data(database)


def create(database, data, name, conditions, subject_type="user") -> int:
    with database.session() as session:
        return service.create_segment(
            session, data.workspace_id, name=name, subject_type=subject_type, conditions=conditions
        ).id


def test_segments_are_sorted_names_and_nobody_has_an_empty_row(database, data):
    ann = data.user(attributes={"plan": "pro"})
    bob = data.user(attributes={"plan": "free"})
    zeta = create(database, data, "zeta", {"type": "all"})
    create(database, data, "Alpha", PRO)
    create(database, data, "beta", PRO)

    assert segments_of(database, ann) == ["Alpha", "beta", "zeta"]
    assert segments_of(database, bob) == ["zeta"]
    assert set(computed_rows(database)) == {ann, bob}

    with database.session() as session:
        session.get(User, bob).attributes = {}
        service.update_segment(session, service.get_segment(session, data.workspace_id, zeta), conditions=PRO)
    assert bob not in computed_rows(database)
    assert segments_of(database, bob) == []


def test_users_and_accounts_are_kept_apart(database, data):
    ann = data.user(attributes={"plan": "pro"})
    acme = data.account(attributes={"plan": "pro"})
    assert ann == acme  # the same number names two subjects; the subject type tells them apart
    create(database, data, "Pro people", PRO)
    create(database, data, "Pro accounts", PRO, "account")
    assert segments_of(database, ann) == ["Pro people"]
    assert segments_of(database, acme, "account") == ["Pro accounts"]


def test_get_computed_fills_defaults_and_stays_in_its_workspace(database, data):
    ann = data.user()
    other = Data(database)
    theirs = other.user(attributes={"plan": "pro"})
    create(database, other, "Pro", PRO)
    with database.session() as session:
        values = get_computed(session, "user", [ann, theirs], workspace_id=data.workspace_id)
    assert values == {ann: {EVENT_COUNT: 0, SEGMENTS: []}, theirs: {EVENT_COUNT: 0, SEGMENTS: []}}
    values[ann][SEGMENTS].append("mutated")
    with database.session() as session:
        assert get_computed(session, "user", [ann])[ann][SEGMENTS] == []


def test_event_count_is_recomputed_for_the_changed_users_only(database, data):
    ann, bob = data.user(), data.user()
    data.event(ann, "purchase")
    data.page_view(ann, "https://x.com/")
    data.event(bob, "purchase")
    with database.session() as session:
        refresh_computed(session, data.workspace_id, "user", [ann])
        values = get_computed(session, "user", [ann, bob], [EVENT_COUNT])
    assert values == {ann: {EVENT_COUNT: 2}, bob: {EVENT_COUNT: 0}}


def test_unchanged_values_are_not_rewritten(database, data):
    ann = data.user(attributes={"plan": "pro"})
    create(database, data, "Pro", PRO)
    with database.session() as session:
        before = session.scalar(select(ComputedValue.updated_at).where(ComputedValue.subject_id == ann))
        refresh_computed(session, data.workspace_id, "user", None, properties=[registry.computed_property(SEGMENTS)])
        after = session.scalar(select(ComputedValue.updated_at).where(ComputedValue.subject_id == ann))
    assert after == before


@dataclass(frozen=True)
class AttributeCount(ComputedProperty):
    """How many attributes a user has (a property defined outside the package)."""

    def compute(self, session, workspace_id, subject_type, subject_ids) -> Select:
        value = json_value(session, literal(1))
        query = select(User.id.label("subject_id"), value.label("value")).where(User.workspace_id == workspace_id)
        if subject_ids is not None:
            query = query.where(User.id.in_(subject_ids))
        return query


def test_a_new_property_plugs_into_the_registry(database, data, monkeypatch):
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    prop = register(AttributeCount("has_profile", frozenset({"user"}), frozenset({"attribute"}), default=0))
    with pytest.raises(ValueError):
        register(AttributeCount("has_profile", frozenset({"user"}), frozenset()))
    assert prop in computed_properties("user") and prop not in computed_properties("account")
    assert prop.depends_on({"attribute"}) and not prop.depends_on({"tag"})

    ann = data.user()
    with database.session() as session:
        refresh_computed(session, data.workspace_id, "user", properties=[prop])
        assert get_computed(session, "user", [ann], ["has_profile"]) == {ann: {"has_profile": 1}}
        assert session.scalar(select(func.count()).select_from(ComputedValue)) == 1


def test_wildcard_dependencies():
    event_count = registry.computed_property(EVENT_COUNT)
    assert event_count.depends_on({"event:purchase"}) and event_count.depends_on({"page"})
    assert not event_count.depends_on({"attribute", "device"})
