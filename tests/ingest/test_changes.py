"""What each ingestion service reports as changed: the segment engine re-evaluates exactly from this."""

import pytest

from connector.ingest.accounts import group
from connector.ingest.batches import BatchRejectedError
from connector.ingest.devices import record_devices
from connector.ingest.events import page, track
from connector.ingest.objects import upsert_objects
from connector.ingest.users import identify
from connector.models import User
from tests.ingest.helpers import count


def run(database, service, workspace_id, items, **kwargs):
    with database.session() as session:
        return service(session, workspace_id, items, **kwargs)


def test_identify_reports_new_subjects_attributes_tags_and_links(database, tenant):
    ws = tenant.workspace_id
    first = run(database, identify, ws, [{"external_id": "u1", "tags": ["a"], "accounts": ["acme"]}])
    (user_id,) = first.changes.user_ids
    assert first.changes.kinds == {"subject", "tag", "account_link"}
    assert len(first.changes.account_ids) == 1

    same = run(database, identify, ws, [{"external_id": "u1", "tags": ["a"], "accounts": ["acme"]}])
    assert not same.changes and same.changes.kinds == set()

    changed = run(database, identify, ws, [{"external_id": "u1", "attributes": {"plan": "pro"}}])
    assert changed.changes.user_ids == {user_id}
    assert changed.changes.kinds == {"attribute"}


def test_track_and_page_report_event_names(database, tenant):
    ws = tenant.workspace_id
    result = run(
        database,
        track,
        ws,
        [{"external_id": "u1", "name": "Order", "message_id": "m1"}, {"external_id": "u2", "name": "Cart"}],
    )
    assert len(result.changes.user_ids) == 2
    assert result.changes.kinds == {"subject", "event:Order", "event:Cart"}
    again = run(database, track, ws, [{"external_id": "u1", "name": "Order", "message_id": "m1"}])
    assert not again.changes  # a duplicate changes nothing
    viewed = run(database, page, ws, [{"external_id": "u1", "url": "https://x.io"}])
    assert viewed.changes.kinds == {"page"}


def test_group_reports_accounts_and_their_new_users(database, tenant):
    result = run(database, group, tenant.workspace_id, [{"external_id": "acme", "users": [{"email": "a@x.io"}]}])
    assert result.changes.kinds == {"subject", "account_link"}
    assert len(result.changes.account_ids) == 1 and len(result.changes.user_ids) == 1


def test_a_device_moving_reports_both_users(database, tenant):
    ws = tenant.workspace_id
    run(database, record_devices, ws, [{"external_id": "u1", "platform": "ios", "vendor_device_id": "d"}])
    moved = run(database, record_devices, ws, [{"external_id": "u2", "platform": "ios", "vendor_device_id": "d"}])
    assert len(moved.changes.user_ids) == 2
    assert moved.changes.kinds == {"subject", "device"}


def test_objects_report_their_type_for_linked_subjects(database, tenant):
    ws = tenant.workspace_id
    result = run(
        database,
        upsert_objects,
        ws,
        [{"type": "order", "external_id": "o1", "user_external_id": "u1", "account_external_id": "acme"}],
    )
    assert result.changes.kinds == {"subject", "object:order"}
    assert len(result.changes.user_ids) == 1 and len(result.changes.account_ids) == 1
    linked_later = run(
        database,
        upsert_objects,
        ws,
        [{"type": "invoice", "external_id": "i1", "fields": {"customer": "u9"}, "user_link_field": "customer"}],
    )
    assert not linked_later.changes
    identified = run(database, identify, ws, [{"external_id": "u9"}])
    assert identified.changes.kinds == {"subject", "object:invoice"}


def test_services_never_commit_a_rejected_batch(database, tenant):
    with pytest.raises(BatchRejectedError) as rejected:
        run(database, identify, tenant.workspace_id, [{"external_id": "u1"}, {"email": "x"}])
    assert [r.index for r in rejected.value.invalid] == [1]
    assert count(database, User) == 0
