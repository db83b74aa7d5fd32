"""Segment groups: a name and a description, segments moved in and out, a group read with its segments, and a
deleted group's segments kept, ungrouped."""

from __future__ import annotations

from tests.workspaces.conftest import Org


def group(org: Org, name: str, description: str = "") -> dict:
    response = org.post("boss", "paris", "/segment-groups", {"name": name, "description": description})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_group_has_a_name_and_a_description_and_both_can_change(org):
    made = group(org, "Retention", "Customers we keep")
    assert (made["name"], made["description"], made["hq_origin"]) == ("Retention", "Customers we keep", None)

    renamed = org.patch("boss", "paris", f"/segment-groups/{made['id']}", {"name": "Loyalty"}).get_json()
    described = org.patch("boss", "paris", f"/segment-groups/{made['id']}", {"description": "Updated"}).get_json()

    assert (renamed["name"], renamed["description"]) == ("Loyalty", "Customers we keep")
    assert (described["name"], described["description"]) == ("Loyalty", "Updated")
    assert described["edited_in_child"] is False  # not synced from HQ: nothing to mark


def test_segments_move_in_and_out_and_the_group_lists_its_segments(org):
    first, second = group(org, "First"), group(org, "Second")
    a = org.segment("paris", "A")
    b = org.segment("paris", "B", group_id=first["id"])

    moved = org.post("boss", "paris", f"/segment-groups/{second['id']}/segments", {"add": [a["id"], b["id"]]})

    assert moved.status_code == 200 and moved.get_json() == {"moved_in": [a["id"], b["id"]], "moved_out": []}
    listed = org.get("boss", "paris", f"/segment-groups/{second['id']}").get_json()
    assert [s["name"] for s in listed["segments"]] == ["A", "B"] and listed["segment_count"] == 2
    assert org.get("boss", "paris", f"/segment-groups/{first['id']}").get_json()["segments"] == []

    out = org.post("boss", "paris", f"/segment-groups/{second['id']}/segments", {"remove": [a["id"]]})

    assert out.get_json()["moved_out"] == [a["id"]]
    assert org.get("boss", "paris", f"/segments/{a['id']}").get_json()["group_id"] is None


def test_moving_unknown_or_foreign_segments_is_refused_naming_them_and_moves_nothing(org):
    target = group(org, "Target")
    mine = org.segment("paris", "Mine")
    foreign = org.segment("lyon", "Foreign")

    response = org.post(
        "boss", "paris", f"/segment-groups/{target['id']}/segments", {"add": [mine["id"], foreign["id"]]}
    )

    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert [e["field"] for e in response.get_json()["errors"]] == ["body.add[1]"]
    assert org.get("boss", "paris", f"/segments/{mine['id']}").get_json()["group_id"] is None
    not_in = org.post("boss", "paris", f"/segment-groups/{target['id']}/segments", {"remove": [mine["id"]]})
    assert [e["field"] for e in not_in.get_json()["errors"]] == ["body.remove[0]"]
    stranger = org.post("paris_admin", "lyon", f"/segment-groups/{target['id']}/segments", {"add": []})
    assert stranger.status_code == 404


def test_deleting_a_group_keeps_its_segments_ungrouped(org):
    made = group(org, "Temporary")
    kept = org.segment("paris", "Kept", group_id=made["id"])

    assert org.delete("boss", "paris", f"/segment-groups/{made['id']}").status_code == 204

    assert org.get("boss", "paris", f"/segments/{kept['id']}").get_json()["group_id"] is None
