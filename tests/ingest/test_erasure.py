"""Erasing a person or an account (GDPR): their data, memberships, history and computed values go, mirror syncs
clear or remove the remote record at their next run and then forget it, and an audit record without personal data
remains."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from connector.ingest.erasure import erase_subjects
from connector.models import (
    AccountUser,
    ComputedValue,
    Device,
    Erasure,
    Event,
    ObjectRecord,
    Segment,
    SegmentMembership,
    SegmentMembershipEvent,
    SubjectType,
    User,
    UserTag,
)
from tests.conftest import make_tenant
from tests.ingest.helpers import count, ok, post_batch


def segment(client, tenant, name: str, conditions: dict, subject_type: str = "user") -> int:
    response = client.post(
        tenant.url("/segments?wait=true"),
        headers=tenant.headers,
        json={"name": name, "subject_type": subject_type, "conditions": conditions},
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


@pytest.fixture
def ann(client, tenant, database) -> int:
    """Ann, with everything a person can have: attributes, tags, events, a device, an order, an account, segments."""
    ok(post_batch(client, tenant, "identify", [{"external_id": "ann", "email": "ann@x.com", "tags": ["vip"]}]))
    ok(post_batch(client, tenant, "identify", [{"external_id": "bob", "email": "bob@x.com"}]))
    ok(post_batch(client, tenant, "group", [{"external_id": "acme-co", "users": [{"external_id": "ann"}]}]))
    ok(post_batch(client, tenant, "track", [{"external_id": "ann", "name": "signed_in", "message_id": "m1"}]))
    ok(post_batch(client, tenant, "device", [{"external_id": "ann", "platform": "ios", "vendor_device_id": "D1"}]))
    ok(post_batch(client, tenant, "objects", [{"type": "order", "external_id": "o1", "user_external_id": "ann"}]))
    segment(client, tenant, "VIP", {"type": "tag", "value": "vip"})
    segment(
        client,
        tenant,
        "Accounts with a VIP",
        {"type": "users", "quantifier": "any", "condition": {"type": "tag", "value": "vip"}},
        "account",
    )
    with database.session() as session:
        return session.scalar(select(User.id).where(User.external_id == "ann"))


def test_erasing_a_person_removes_their_data_and_leaves_an_audit_record_without_it(client, tenant, database, ann):
    assert count(database, SegmentMembership) == 2  # Ann in VIP, her account in "Accounts with a VIP"
    response = client.delete(tenant.url(f"/users/{ann}?reason=GDPR%20request%2042"), headers=tenant.headers)
    assert response.status_code == 200, response.get_json()
    audit = response.get_json()
    assert (audit["subject_type"], audit["subject_id"], audit["reason"]) == ("user", ann, "GDPR request 42")
    assert audit["counts"]["events"] == 1 and audit["counts"]["memberships"] == 1

    user_segments = SegmentMembershipEvent.segment_id.in_(select(Segment.id).where(Segment.subject_type == "user"))
    for model, *where in [
        (User, User.id == ann),
        (UserTag, UserTag.user_id == ann),
        (Event, Event.user_id == ann),
        (Device, Device.user_id == ann),
        (AccountUser, AccountUser.user_id == ann),
        (ObjectRecord, ObjectRecord.external_id == "o1"),
        (SegmentMembershipEvent, SegmentMembershipEvent.subject_id == ann, user_segments),
        (ComputedValue, ComputedValue.subject_id == ann, ComputedValue.subject_type == SubjectType.USER),
    ]:
        assert count(database, model, *where) == 0, model.__name__
    # Her account no longer has a VIP: it left its segment, as the segment engine decides.
    assert count(database, SegmentMembership) == 0
    assert count(database, User) == 1  # Bob stays

    with database.session() as session:
        (kept,) = session.scalars(select(Erasure)).all()
        stored = json.dumps(
            {"reason": kept.reason, "counts": kept.counts, "id": kept.subject_id, "type": kept.subject_type.value}
        )
    assert "ann" not in stored.replace("GDPR", "").lower()
    assert client.get(tenant.url(f"/users/{ann}"), headers=tenant.headers).status_code == 404


def test_erasing_an_account_keeps_its_people(client, tenant, database, ann):
    with database.session() as session:
        account = session.scalar(select(AccountUser.account_id))
    response = client.delete(tenant.url(f"/accounts/{account}"), headers=tenant.headers)
    assert response.status_code == 200, response.get_json()
    assert count(database, AccountUser) == 0 and count(database, User) == 2
    assert count(database, Event, Event.account_id.is_not(None)) == 0


def test_erasure_is_for_workspace_admins_within_their_workspace(client, tenant, database, ann):
    editor = make_tenant(database, "editors", role="editor")
    other = make_tenant(database, "globex")
    assert client.delete(other.url(f"/users/{ann}"), headers=other.headers).status_code == 404
    assert client.delete(editor.url(f"/users/{ann}"), headers=editor.headers).status_code in (403, 404)
    missing = client.delete(tenant.url("/users/999999"), headers=tenant.headers)
    assert missing.status_code == 404 and missing.content_type == "application/problem+json"
    assert count(database, User, User.id == ann) == 1 and count(database, Erasure) == 0


def test_erasing_several_people_at_once_counts_each_and_skips_other_workspaces(client, tenant, database, ann):
    ok(
        post_batch(
            client, tenant, "track", [{"external_id": "bob", "name": "a", "message_id": f"b{i}"} for i in range(3)]
        )
    )
    other = make_tenant(database, "globex")
    ok(post_batch(client, other, "identify", [{"external_id": "carl"}]))
    with database.session() as session:
        bob = session.scalar(select(User.id).where(User.external_id == "bob"))
        carl = session.scalar(select(User.id).where(User.external_id == "carl"))
        erasures, changes = erase_subjects(session, tenant.workspace_id, "user", [ann, bob, carl, 999999])
        by_subject = {e.subject_id: e.counts for e in erasures}
        assert set(by_subject) == {ann, bob}
        assert (by_subject[ann]["events"], by_subject[bob]["events"]) == (1, 3)
        assert (by_subject[ann]["memberships"], by_subject[bob]["memberships"]) == (1, 0)
        assert changes.account_ids  # Ann's account: its user-based segment reads her
    assert count(database, User, User.workspace_id == tenant.workspace_id) == 0
    assert count(database, User, User.id == carl) == 1
