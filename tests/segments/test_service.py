"""The segment services: validation, usage checks, renames and deletes, subject type changes, groups."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from connector.models import SegmentMembershipEvent
from connector.segments import groups, service
from tests.segments.factories import Data
from tests.segments.support import PRO, history, members, segments_of


@pytest.fixture
def data(database) -> Data:
    return Data(database)


def create(database, data, name, conditions=None, subject_type="user", kind="dynamic", **extra) -> int:
    with database.session() as session:
        return service.create_segment(
            session, data.workspace_id, name=name, subject_type=subject_type, kind=kind, conditions=conditions, **extra
        ).id


def update(database, data, segment_id, **changes):
    with database.session() as session:
        segment = service.get_segment(session, data.workspace_id, segment_id)
        return service.update_segment(session, segment, **changes)


def delete(database, data, segment_id):
    with database.session() as session:
        service.delete_segment(session, service.get_segment(session, data.workspace_id, segment_id))


def errors_of(excinfo) -> list[tuple[str, str]]:
    return [(e["field"], e["reason"]) for e in excinfo.value.errors]


def test_names_are_unique_per_workspace_only(database, data):
    create(database, data, "Pro", PRO)
    with pytest.raises(service.NameTakenError):
        create(database, data, "  Pro ", PRO)
    create(database, Data(database), "Pro", PRO)


def test_every_error_is_reported_at_once(database, data):
    with pytest.raises(service.InvalidSegmentError) as excinfo:
        create(database, data, "Bad", {"type": "nope"}, description="bell\x07", group_id=12345)
    fields = [field for field, _ in errors_of(excinfo)]
    assert fields == ["description", "group_id", "conditions.type"]


def test_a_group_of_another_workspace_is_refused(database, data):
    with database.session() as session:
        theirs = groups.create_group(session, Data(database).workspace_id, "Theirs")
    with pytest.raises(service.InvalidSegmentError) as excinfo:
        create(database, data, "Pro", PRO, group_id=theirs.id)
    assert errors_of(excinfo)[0][0] == "group_id"


def test_a_segment_cannot_reference_itself(database, data):
    pro = create(database, data, "Pro", PRO)
    with pytest.raises(service.InvalidSegmentError) as excinfo:
        update(database, data, pro, conditions={"type": "segment", "segment_id": pro})
    assert errors_of(excinfo) == [
        ("conditions.segment_id", "segments would reference each other in a circle: Pro -> Pro")
    ]


def test_a_longer_cycle_is_named_from_the_segment_being_saved(database, data):
    a = create(database, data, "A", PRO)
    b = create(database, data, "B", {"type": "segment", "segment_id": a})
    c = create(database, data, "C", {"type": "segment", "segment_id": b})
    with pytest.raises(service.InvalidSegmentError) as excinfo:
        update(database, data, a, conditions={"type": "none", "children": [{"type": "segment", "segment_id": c}]})
    assert errors_of(excinfo) == [
        ("conditions.children[0].segment_id", "segments would reference each other in a circle: A -> C -> B -> A")
    ]


def test_kind_cannot_change(database, data):
    pro = create(database, data, "Pro", PRO)
    with pytest.raises(service.InvalidSegmentError) as excinfo:
        update(database, data, pro, kind="manual")
    assert errors_of(excinfo)[0][0] == "kind"


def test_rename_updates_every_members_segments_property(database, data):
    ann, bob = data.user(attributes={"plan": "pro"}), data.user(attributes={"plan": "free"})
    pro = create(database, data, "Pro", PRO)
    create(database, data, "Everyone", {"type": "all"})

    update(database, data, pro, name="Paying")

    assert segments_of(database, ann) == ["Everyone", "Paying"]
    assert segments_of(database, bob) == ["Everyone"]


def test_rename_together_with_a_new_definition(database, data):
    ann, bob = data.user(attributes={"plan": "pro"}), data.user(attributes={"plan": "pro", "seats": 5})
    pro = create(database, data, "Pro", PRO)
    update(
        database,
        data,
        pro,
        name="Big pro",
        conditions={
            "type": "all",
            "children": [PRO, {"type": "attribute", "name": "seats", "operator": "gt", "value": 1}],
        },
    )
    assert segments_of(database, bob) == ["Big pro"]
    assert segments_of(database, ann) == []


def test_delete_removes_the_name_from_former_members(database, data):
    ann = data.user(attributes={"plan": "pro"})
    pro = create(database, data, "Pro", PRO)
    create(database, data, "Everyone", {"type": "all"})

    delete(database, data, pro)

    assert segments_of(database, ann) == ["Everyone"]
    with database.session() as session:
        assert (
            session.scalars(select(SegmentMembershipEvent).where(SegmentMembershipEvent.segment_id == pro)).all() == []
        )


def test_usage_finders_plug_in(database, data, monkeypatch):
    pro = create(database, data, "Pro", PRO)

    def playbooks(session, segment):
        return [service.Usage("playbook", 7, "Welcome flow")] if segment.id == pro else []

    monkeypatch.setattr(service, "_usage_finders", [*service._usage_finders, playbooks])
    with pytest.raises(service.SegmentInUseError) as excinfo:
        delete(database, data, pro)
    assert excinfo.value.usages == [service.Usage("playbook", 7, "Welcome flow")]
    assert "used by playbook 'Welcome flow'" in str(excinfo.value)


def test_subject_type_change_refused_while_referenced(database, data):
    pro = create(database, data, "Pro", PRO)
    create(database, data, "Pro again", {"type": "segment", "segment_id": pro})
    with pytest.raises(service.SegmentInUseError):
        update(database, data, pro, subject_type="account", conditions={"type": "all"})


def test_subject_type_change_moves_members_to_the_other_type(database, data):
    ann = data.user(attributes={"plan": "pro"})
    acme = data.account(attributes={"plan": "pro"})
    pro = create(database, data, "Pro", PRO)

    update(database, data, pro, subject_type="account")

    assert members(database, pro) == {acme}
    assert history(database, pro) == [(ann, "entered"), (ann, "exited"), (acme, "entered")]
    assert segments_of(database, ann) == []
    assert segments_of(database, acme, "account") == ["Pro"]


def test_subject_type_change_with_conditions_the_new_type_cannot_have(database, data):
    buyers = create(database, data, "Buyers", {"type": "event", "name": "purchase"})
    with pytest.raises(service.InvalidSegmentError) as excinfo:
        update(database, data, buyers, subject_type="account")
    assert errors_of(excinfo)[0][0] == "conditions.type"


def test_manual_segment_rename_and_type_change(database, data):
    ann = data.user()
    vips = create(database, data, "VIPs", kind="manual")
    from connector.models import User
    from connector.segments.membership import change_members

    with database.session() as session:
        change_members(session, vips, add=select(User.id).where(User.id == ann))
    update(database, data, vips, name="Very important")
    assert segments_of(database, ann) == ["Very important"]

    update(database, data, vips, subject_type="account")
    assert members(database, vips) == set()
    assert segments_of(database, ann) == []


def test_groups(database, data):
    with database.session() as session:
        group = groups.create_group(session, data.workspace_id, "Lifecycle")
        with pytest.raises(service.NameTakenError):
            groups.create_group(session, data.workspace_id, "Lifecycle")
    pro = create(database, data, "Pro", PRO, group_id=group.id)
    with database.session() as session:
        assert [(g.name, n) for g, n in groups.list_groups(session, data.workspace_id)] == [("Lifecycle", 1)]
        groups.delete_group(session, groups.get_group(session, data.workspace_id, group.id))
    with database.session() as session:
        assert service.get_segment(session, data.workspace_id, pro).group_id is None
        with pytest.raises(service.SegmentNotFoundError):
            groups.get_group(session, data.workspace_id, group.id)
