"""HQ syncing: segments and groups pushed to every child, matched by origin, in dependency order, through the
segment mapping; update-existing vs only-where-missing, conflicts, dry runs, stored reports, permissions."""

from __future__ import annotations

import pytest

from connector.segments.mapping import MissingMappingError, hq_segment_references, rewrite_segment_references
from tests.workspaces.conftest import Org

LOYAL = {"type": "attribute", "name": "orders", "operator": "gte", "value": 3}
GOLD = {"type": "attribute", "name": "tier", "operator": "eq", "value": "gold"}


def push(org: Org, who: str = "hq_admin", **body):
    return org.post(who, "hq", "/hq-syncs", body)


def pushed(org: Org, **body) -> dict:
    response = push(org, **body)
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def outcome(report: dict, child: str) -> list[tuple[str, str, str, str | None]]:
    (part,) = [c for c in report["children"] if c["workspace"] == child]
    return [(i["kind"], i["name"], i["status"], i["reason"]) for i in part["items"]]


def segment_named(org: Org, workspace: str, name: str) -> dict | None:
    found = [s for s in org.get("boss", workspace, "/segments").get_json()["data"] if s["name"] == name]
    return found[0] if found else None


def test_a_synced_segment_is_created_in_every_child_with_its_hq_badge_and_mapping(org):
    loyal = org.segment("hq", "Loyal", LOYAL, description="Three orders or more")

    report = pushed(org, segments=[loyal["id"]])

    for child in ("Paris", "Lyon"):
        assert outcome(report, child) == [("segment", "Loyal", "created", None)]
    copy = segment_named(org, "paris", "Loyal")
    assert copy["hq_origin"] == {"workspace_id": org.ids["hq"], "item_id": loyal["id"]}
    assert copy["conditions"] == loyal["conditions"] and copy["description"] == "Three orders or more"
    assert copy["edited_in_child"] is False
    mappings = org.get("paris_admin", "paris", "/mapped-values/segments").get_json()["data"]
    assert [(m["hq_segment_id"], m["segment_id"], m["hq_segment_name"]) for m in mappings] == [
        (loyal["id"], copy["id"], "Loyal")
    ]
    assert org.get("paris_admin", "paris", f"/segments/{copy['id']}").get_json()["hq_origin"] is not None


def test_running_the_same_sync_twice_changes_nothing_the_second_time(org):
    loyal = org.segment("hq", "Loyal", LOYAL)
    pushed(org, segments=[loyal["id"]])
    before = segment_named(org, "paris", "Loyal")

    again = pushed(org, segments=[loyal["id"]], mode="update_existing")

    assert outcome(again, "Paris") == [("segment", "Loyal", "skipped", "unchanged")]
    assert segment_named(org, "paris", "Loyal") == before


def test_update_existing_overrides_a_child_edit_and_only_where_missing_keeps_it(org):
    loyal = org.segment("hq", "Loyal", LOYAL)
    pushed(org, segments=[loyal["id"]])
    copy = segment_named(org, "paris", "Loyal")
    edited = org.patch("paris_admin", "paris", f"/segments/{copy['id']}", {"conditions": GOLD})
    assert edited.status_code == 200 and edited.get_json()["edited_in_child"] is True
    changed = {**LOYAL, "value": 5}
    assert org.patch("hq_admin", "hq", f"/segments/{loyal['id']}", {"conditions": changed}).status_code == 200

    kept = pushed(org, segments=[loyal["id"]], mode="only_where_missing")

    assert outcome(kept, "Paris") == [("segment", "Loyal", "skipped", "exists")]
    assert segment_named(org, "paris", "Loyal")["conditions"]["value"] == "gold"
    assert segment_named(org, "lyon", "Loyal")["conditions"]["value"] == 3

    overridden = pushed(org, segments=[loyal["id"]], mode="update_existing")

    assert outcome(overridden, "Paris") == [("segment", "Loyal", "updated", None)]
    assert outcome(overridden, "Lyon") == [("segment", "Loyal", "updated", None)]
    paris = segment_named(org, "paris", "Loyal")
    assert paris["conditions"]["value"] == 5 and paris["edited_in_child"] is False


def test_a_child_segment_of_the_same_name_is_a_conflict_not_an_overwrite(org):
    loyal = org.segment("hq", "Loyal", LOYAL)
    own = org.segment("paris", "Loyal", GOLD)

    report = pushed(org, segments=[loyal["id"]])

    ((kind, name, status, reason),) = outcome(report, "Paris")
    assert status == "conflict" and f"id {own['id']}" in reason
    assert outcome(report, "Lyon") == [("segment", "Loyal", "created", None)]
    assert segment_named(org, "paris", "Loyal") == own


def test_referenced_hq_segments_are_synced_first_and_references_point_at_the_childs_copies(org):
    base = org.segment("hq", "Base", LOYAL)
    derived = org.segment("hq", "Derived", {"type": "all", "children": [{"type": "segment", "segment_id": base["id"]}]})

    report = pushed(org, segments=[derived["id"]])

    assert outcome(report, "Paris") == [
        ("segment", "Base", "created", None),
        ("segment", "Derived", "created", None),
    ]
    paris_base, paris_derived = segment_named(org, "paris", "Base"), segment_named(org, "paris", "Derived")
    assert paris_derived["conditions"]["children"][0]["segment_id"] == paris_base["id"]
    assert paris_base["id"] != base["id"]


def test_a_referenced_segment_that_cannot_be_synced_fails_the_item_in_that_child_only(org):
    base = org.segment("hq", "Base", LOYAL)
    derived = org.segment("hq", "Derived", {"type": "segment", "segment_id": base["id"]})
    org.segment("paris", "Base", GOLD)  # unrelated: a conflict, so Paris has no copy of Base

    report = pushed(org, segments=[derived["id"]])

    (base_item, derived_item) = outcome(report, "Paris")
    assert base_item[2] == "conflict"
    assert derived_item[2] == "failed" and f"HQ segment {base['id']}" in derived_item[3]
    assert segment_named(org, "paris", "Derived") is None
    assert [i[2] for i in outcome(report, "Lyon")] == ["created", "created"]


def test_a_child_admin_may_remap_an_hq_segment_and_later_pushes_use_the_mapping(org):
    base = org.segment("hq", "Base", LOYAL)
    pushed(org, segments=[base["id"]])
    local = org.segment("paris", "Local best", GOLD)

    assert org.put("hq_editor", "paris", f"/mapped-values/segments/{base['id']}", {"segment_id": 1}).status_code == 404
    viewer = org.put("paris_viewer", "paris", f"/mapped-values/segments/{base['id']}", {"segment_id": local["id"]})
    assert viewer.status_code == 403
    assert len(org.get("paris_viewer", "paris", "/mapped-values/segments").get_json()["data"]) == 1
    response = org.put("paris_admin", "paris", f"/mapped-values/segments/{base['id']}", {"segment_id": local["id"]})
    assert response.status_code == 200, response.get_json()
    derived = org.segment("hq", "Derived", {"type": "segment", "segment_id": base["id"]})
    pushed(org, segments=[derived["id"]], mode="only_where_missing")

    assert segment_named(org, "paris", "Derived")["conditions"]["segment_id"] == local["id"]
    unknown = org.put("paris_admin", "paris", f"/mapped-values/segments/{base['id']}", {"segment_id": 10**12})
    assert unknown.status_code == 422 and unknown.get_json()["errors"][0]["field"] == "body.segment_id"


def test_a_dry_run_reports_without_writing(org):
    loyal = org.segment("hq", "Loyal", LOYAL)

    response = push(org, segments=[loyal["id"]], dry_run=True)

    assert response.status_code == 200
    report = response.get_json()
    assert report["dry_run"] is True and report["id"] is None
    assert outcome(report, "Paris") == [("segment", "Loyal", "created", None)]
    assert segment_named(org, "paris", "Loyal") is None
    assert org.get("paris_admin", "paris", "/mapped-values/segments").get_json()["data"] == []
    assert org.get("hq_admin", "hq", "/hq-syncs").get_json()["data"] == []


def test_reports_are_stored_and_each_child_reads_its_own_part(org):
    loyal = org.segment("hq", "Loyal", LOYAL)
    report = pushed(org, segments=[loyal["id"]])

    as_hq = org.get("hq_admin", "hq", f"/hq-syncs/{report['id']}").get_json()
    as_paris = org.get("paris_admin", "paris", "/hq-syncs").get_json()["data"]

    assert [c["workspace"] for c in as_hq["children"]] == ["Paris", "Lyon"]
    assert [[c["workspace"] for c in r["children"]] for r in as_paris] == [["Paris"]]
    assert as_paris[0]["children"][0]["counts"]["created"] == 1


def test_only_an_admin_of_the_hq_workspace_may_sync_from_it(org):
    loyal = org.segment("hq", "Loyal", LOYAL)

    assert push(org, who="hq_editor", segments=[loyal["id"]]).status_code == 403
    assert push(org, who="paris_admin", segments=[loyal["id"]]).status_code == 404
    no_children = org.post("paris_admin", "paris", "/hq-syncs", {"segments": [loyal["id"]]})
    assert no_children.status_code == 422
    unknown = push(org, segments=[loyal["id"], 10**12])
    assert unknown.status_code == 422 and unknown.get_json()["errors"][0]["field"] == "body.segments[1]"
    assert push(org, mode="sometimes", segments=[loyal["id"]]).status_code == 422
    assert segment_named(org, "paris", "Loyal") is None


def test_a_group_is_synced_alone_or_with_its_segments(org):
    group = org.post("boss", "hq", "/segment-groups", {"name": "Retention", "description": "Keep them"}).get_json()
    org.segment("hq", "Loyal", LOYAL, group_id=group["id"])

    alone = pushed(org, segment_groups=[group["id"]])
    assert outcome(alone, "Paris") == [("segment_group", "Retention", "created", None)]
    assert segment_named(org, "paris", "Loyal") is None

    both = pushed(org, segment_groups=[group["id"]], include_group_segments=True)
    assert outcome(both, "Paris") == [
        ("segment_group", "Retention", "skipped", "unchanged"),
        ("segment", "Loyal", "created", None),
    ]
    groups = org.get("paris_admin", "paris", "/segment-groups").get_json()["data"]
    assert [(g["name"], g["description"], g["segment_count"]) for g in groups] == [("Retention", "Keep them", 1)]
    assert groups[0]["hq_origin"] == {"workspace_id": org.ids["hq"], "item_id": group["id"]}
    assert segment_named(org, "paris", "Loyal")["group_id"] == groups[0]["id"]


def test_a_segment_synced_after_its_group_goes_into_the_childs_copy_of_the_group(org):
    group = org.post("boss", "hq", "/segment-groups", {"name": "Retention"}).get_json()
    pushed(org, segment_groups=[group["id"]])
    loyal = org.segment("hq", "Loyal", LOYAL, group_id=group["id"])

    pushed(org, segments=[loyal["id"]])

    paris_group = org.get("boss", "paris", "/segment-groups").get_json()["data"][0]
    assert segment_named(org, "paris", "Loyal")["group_id"] == paris_group["id"]


def test_a_group_edited_in_a_child_is_kept_by_only_where_missing(org):
    group = org.post("boss", "hq", "/segment-groups", {"name": "Retention"}).get_json()
    pushed(org, segment_groups=[group["id"]])
    paris_group = org.get("paris_admin", "paris", "/segment-groups").get_json()["data"][0]
    org.patch("paris_admin", "paris", f"/segment-groups/{paris_group['id']}", {"description": "Ours"})

    kept = pushed(org, segment_groups=[group["id"]], mode="only_where_missing")
    assert outcome(kept, "Paris") == [("segment_group", "Retention", "skipped", "exists")]
    assert org.get("boss", "paris", f"/segment-groups/{paris_group['id']}").get_json()["description"] == "Ours"

    pushed(org, segment_groups=[group["id"]], mode="update_existing")
    assert org.get("boss", "paris", f"/segment-groups/{paris_group['id']}").get_json()["description"] == ""


def test_a_new_segment_or_group_can_be_synced_to_every_child_at_creation(org):
    made = org.post("hq_admin", "hq", "/segments", {"name": "Loyal", "conditions": LOYAL, "sync_to_children": True})
    group = org.post("hq_admin", "hq", "/segment-groups", {"name": "Retention", "sync_to_children": True})

    assert made.status_code == 201 and group.status_code == 201
    assert outcome(made.get_json()["hq_sync"], "Lyon") == [("segment", "Loyal", "created", None)]
    assert outcome(group.get_json()["hq_sync"], "Lyon") == [("segment_group", "Retention", "created", None)]
    assert segment_named(org, "lyon", "Loyal")["hq_origin"]["item_id"] == made.get_json()["id"]
    refused = org.post("hq_editor", "hq", "/segments", {"name": "Nope", "conditions": LOYAL, "sync_to_children": True})
    assert refused.status_code == 403
    assert segment_named(org, "hq", "Nope") is None


def test_a_manual_segment_is_not_synced_and_says_why(org):
    manual = org.post("boss", "hq", "/segments", {"name": "Hand picked", "kind": "manual"}).get_json()

    report = pushed(org, segments=[manual["id"]])

    ((_, _, status, reason),) = outcome(report, "Paris")
    assert status == "failed" and "manual" in reason


# -- the mapping rewrite, on its own (playbooks and views will push their trees through it) --


def test_rewriting_puts_the_childs_segments_in_place_of_hq_segments_at_any_depth():
    tree = {
        "type": "all",
        "children": [
            {"type": "segment", "operator": "not_in", "segment_id": 1},
            {"type": "users", "quantifier": "any", "condition": {"type": "segment", "segment_id": 2}},
            {"type": "attribute", "name": "segment_id", "operator": "eq", "value": 1},
        ],
    }

    rewritten = rewrite_segment_references(tree, {1: 10, 2: 20}.get)

    assert rewritten["children"][0]["segment_id"] == 10
    assert rewritten["children"][1]["condition"]["segment_id"] == 20
    assert rewritten["children"][2] == tree["children"][2]
    assert tree["children"][0]["segment_id"] == 1  # the HQ tree is left as it was
    assert hq_segment_references(tree) == {1, 2}


def test_rewriting_fails_on_a_missing_mapping_naming_the_leaf_and_never_guesses():
    tree = {"type": "any", "children": [{"type": "segment", "segment_id": 1}, {"type": "segment", "segment_id": 7}]}

    with pytest.raises(MissingMappingError) as failure:
        rewrite_segment_references(tree, {1: 10}.get)

    assert failure.value.hq_segment_id == 7
    assert failure.value.path == "conditions.children[1].segment_id"
