"""Shared segments: members matched by device id in the target, kept current from both sides, usable like local
segments, shared only by members who administer both workspaces, and refused to un-share or delete while used."""

from __future__ import annotations

import json

import pytest

from tests.workspaces.conftest import Org

VIP = {"type": "attribute", "name": "plan", "operator": "eq", "value": "source-secret-plan"}
PROBLEM = "application/problem+json"


def user(external_id: str, email: str | None = None, **attributes) -> dict:
    item = {"external_id": external_id, "attributes": attributes}
    if email:
        item["email"] = email
    return item


def device(external_id: str, platform: str, vendor_id: str) -> dict:
    return {"external_id": external_id, "platform": platform, "vendor_device_id": vendor_id}


def user_ids(org: Org, workspace: str) -> dict[str, int]:
    response = org.get("boss", workspace, "/users?limit=500")
    assert response.status_code == 200, response.get_json()
    return {u["external_id"]: u["id"] for u in response.get_json()["data"]}


def member_ids(org: Org, workspace: str, segment_id: int) -> set[int]:
    response = org.get("boss", workspace, f"/segments/{segment_id}/members?limit=500")
    assert response.status_code == 200, response.get_json()
    return {m["id"] for m in response.get_json()["data"]}


def share(org: Org, segment_id: int, *targets: str, who: str = "boss", source: str = "project-a"):
    return org.put(who, source, f"/segments/{segment_id}/sharing", {"workspaces": [org.ids[t] for t in targets]})


def stand_in(org: Org, workspace: str, name: str = "Project A / VIP") -> dict:
    listed = org.get("boss", workspace, "/segments").get_json()["data"]
    (found,) = [s for s in listed if s["name"] == name]
    return found


@pytest.fixture
def vip(org: Org) -> dict:
    """In project-a: s1 (VIP, android AND-1 and a device of its own), s2 (not VIP, ios IOS-2); segment VIP."""
    org.ingest(
        "project-a",
        "identify",
        [
            user("src-1", "s1@source.example", plan="source-secret-plan"),
            user("src-2", "s2@source.example", plan="free"),
        ],
    )
    org.ingest(
        "project-a",
        "device",
        [
            device("src-1", "android", "AND-1"),
            device("src-1", "ios", "SRC-ONLY-DEVICE"),
            device("src-2", "ios", "IOS-2"),
        ],
    )
    org.ingest("project-a", "track", [{"external_id": "src-1", "name": "source_secret_event"}])
    return org.segment("project-a", "VIP", VIP, description="source-secret-description")


def test_a_target_user_is_a_member_when_any_of_its_devices_matches_a_source_member(org, vip):
    org.ingest("project-b", "identify", [user("t-1"), user("t-2"), user("t-3")])
    org.ingest(
        "project-b",
        "device",
        [
            device("t-1", "ios", "IOS-NOT-IN-SOURCE"),
            device("t-1", "android", "AND-1"),  # the VIP's Android ID
            device("t-2", "ios", "IOS-2"),  # a device of a source user who is not a member
            device("t-3", "web", "AND-1"),  # same id on another platform: not the same device
        ],
    )

    response = share(org, vip["id"], "project-b")

    assert response.status_code == 200, response.get_json()
    target = user_ids(org, "project-b")
    shared = stand_in(org, "project-b")
    assert shared["kind"] == "shared" and shared["member_count"] == 1
    assert member_ids(org, "project-b", shared["id"]) == {target["t-1"]}
    t1 = org.get("boss", "project-b", f"/users/{target['t-1']}").get_json()
    assert "Project A / VIP" in t1["segments"]


def test_membership_follows_device_changes_on_either_side_and_source_membership(org, vip):
    org.ingest("project-b", "identify", [user("t-1"), user("t-2"), user("t-4")])
    org.ingest("project-b", "device", [device("t-4", "ios", "IOS-LATER")])
    share(org, vip["id"], "project-b")
    shared = stand_in(org, "project-b")
    target = user_ids(org, "project-b")
    assert member_ids(org, "project-b", shared["id"]) == set()

    # A device added in the target.
    org.ingest("project-b", "device", [device("t-1", "android", "AND-1")])
    assert member_ids(org, "project-b", shared["id"]) == {target["t-1"]}

    # A device added in the source, to a member: the target user who has it enters.
    org.ingest("project-a", "device", [device("src-1", "ios", "IOS-LATER")])
    assert member_ids(org, "project-b", shared["id"]) == {target["t-1"], target["t-4"]}

    # The source membership changes: a new member's match enters, a leaving member's matches leave.
    org.ingest("project-b", "device", [device("t-2", "ios", "IOS-2")])
    assert member_ids(org, "project-b", shared["id"]) == {target["t-1"], target["t-4"]}
    org.ingest("project-a", "identify", [user("src-2", plan="source-secret-plan"), user("src-1", plan="free")])
    assert member_ids(org, "project-b", shared["id"]) == {target["t-2"]}

    evaluations = org.get("boss", "project-b", f"/segments/{shared['id']}/evaluations").get_json()["data"]
    assert evaluations[0]["member_count"] == 1
    assert [e["member_count"] for e in evaluations][::-1][:3] == [1, 2, 1]


def test_a_device_that_moves_to_a_non_member_in_the_source_takes_its_target_match_out(org, vip):
    org.ingest("project-b", "identify", [user("t-1")])
    org.ingest("project-b", "device", [device("t-1", "android", "AND-1")])
    share(org, vip["id"], "project-b")
    shared = stand_in(org, "project-b")
    assert len(member_ids(org, "project-b", shared["id"])) == 1

    org.ingest("project-a", "device", [device("src-2", "android", "AND-1")])  # resold to a non-member

    assert member_ids(org, "project-b", shared["id"]) == set()


def test_redefining_the_source_segment_carries_its_new_members_into_the_target(org, vip):
    org.ingest("project-b", "identify", [user("t-1"), user("t-2")])
    org.ingest("project-b", "device", [device("t-1", "android", "AND-1"), device("t-2", "ios", "IOS-2")])
    share(org, vip["id"], "project-b")
    shared = stand_in(org, "project-b")
    target = user_ids(org, "project-b")

    everyone = {"type": "all", "children": []}
    redefined = org.patch("boss", "project-a", f"/segments/{vip['id']}?wait=true", {"conditions": everyone})
    assert redefined.status_code == 200

    assert member_ids(org, "project-b", shared["id"]) == {target["t-1"], target["t-2"]}
    refreshed = org.post("boss", "project-b", f"/segments/{shared['id']}/refresh", None)
    assert refreshed.status_code == 200 and refreshed.get_json()["entered"] == 0


def test_a_shared_segment_works_in_conditions_user_filters_exports_and_syncs(org, vip, tmp_path):
    org.ingest("project-b", "identify", [user("t-1", "t1@target.example"), user("t-2", "t2@target.example")])
    org.ingest("project-b", "device", [device("t-1", "android", "AND-1")])
    share(org, vip["id"], "project-b")
    shared = stand_in(org, "project-b")
    target = user_ids(org, "project-b")

    outside = org.segment("project-b", "Not VIP", {"type": "segment", "operator": "not_in", "segment_id": shared["id"]})
    assert member_ids(org, "project-b", outside["id"]) == {target["t-2"]}
    listed = org.get("boss", "project-b", f"/users?segment={shared['id']}").get_json()["data"]
    assert [u["external_id"] for u in listed] == ["t-1"]
    export = org.get("boss", "project-b", f"/segments/{shared['id']}/members.csv").get_data(as_text=True)
    assert "t1@target.example" in export and "source.example" not in export

    destination = org.post(
        "boss", "project-b", "/destinations", {"name": "disk", "type": "file", "config": {"directory": str(tmp_path)}}
    ).get_json()
    sync = org.post(
        "boss",
        "project-b",
        "/syncs",
        {
            "name": "VIPs to disk",
            "destination_id": destination["id"],
            "subject_type": "users",
            "destination_object": "contacts",
            "segment_ids": [shared["id"]],
            "mappings": [
                {"source": {"kind": "field", "name": "email"}, "destination": "email"},
                {"source": {"kind": "computed", "name": "Segments"}, "destination": "segments", "as": "multi_select"},
            ],
            "identity": {"destination": "email"},
        },
    )
    assert sync.status_code == 201, sync.get_json()
    run = org.post("boss", "project-b", f"/syncs/{sync.get_json()['id']}/runs?wait=true", None)
    assert run.status_code in (200, 201), run.get_json()
    lines = [json.loads(line) for line in (tmp_path / "contacts.jsonl").read_text().splitlines()]
    assert [(line["identity"], line["properties"]["segments"]) for line in lines] == [
        ("t1@target.example", "Project A / VIP")
    ]


def test_the_sharing_read_lists_visible_workspaces_and_counts_the_hidden_shares(org, vip):
    assert share(org, vip["id"], "project-b", "project-c").status_code == 200

    response = org.get("ab_admin", "project-a", f"/segments/{vip['id']}/sharing")

    assert response.status_code == 200
    body = response.get_json()
    assert [(w["slug"], w["shared"]) for w in body["workspaces"]] == [("project-b", True)]
    assert body["hidden_shared_count"] == 1
    everything = org.get("boss", "project-a", f"/segments/{vip['id']}/sharing").get_json()
    assert everything["hidden_shared_count"] == 0
    assert {w["slug"] for w in everything["workspaces"] if w["shared"]} == {"project-b", "project-c"}


def test_only_a_member_who_administers_both_workspaces_may_share(org, vip):
    # Cannot see the target: refused naming the field, nothing shared.
    response = share(org, vip["id"], "project-b", who="a_admin")
    assert response.status_code == 422 and response.mimetype == PROBLEM
    assert response.get_json()["errors"][0]["field"] == "body.workspaces[0]"
    # Sees the target but only as a viewer.
    assert share(org, vip["id"], "project-b", who="b_viewer").status_code == 403
    # Not a member of the source workspace at all.
    assert share(org, vip["id"], "project-b", who="paris_admin").status_code == 404
    # An admin of both.
    assert share(org, vip["id"], "project-b", who="ab_admin").status_code == 200
    # Hidden shares stay when a member who cannot see them changes the visible ones.
    assert share(org, vip["id"], "project-b", "project-c").status_code == 200
    assert share(org, vip["id"], who="ab_admin").status_code == 200
    body = org.get("boss", "project-a", f"/segments/{vip['id']}/sharing").get_json()
    assert {w["slug"] for w in body["workspaces"] if w["shared"]} == {"project-c"}


def test_renaming_the_shared_segment_renames_it_in_the_target_and_in_segments(org, vip):
    org.ingest("project-b", "identify", [user("t-1")])
    org.ingest("project-b", "device", [device("t-1", "android", "AND-1")])
    share(org, vip["id"], "project-b")

    assert org.patch("boss", "project-a", f"/segments/{vip['id']}", {"name": "Gold"}).status_code == 200

    renamed = stand_in(org, "project-b", "Project A / Gold")
    assert renamed["member_count"] == 1
    t1 = org.get("boss", "project-b", f"/users/{user_ids(org, 'project-b')['t-1']}").get_json()
    assert "Project A / Gold" in t1["segments"] and "Project A / VIP" not in t1["segments"]


def test_a_shared_segment_cannot_be_edited_deleted_or_created_in_the_target(org, vip):
    share(org, vip["id"], "project-b")
    shared = stand_in(org, "project-b")

    edit = org.patch("boss", "project-b", f"/segments/{shared['id']}", {"conditions": {"type": "all", "children": []}})
    assert edit.status_code == 422
    assert org.delete("boss", "project-b", f"/segments/{shared['id']}").status_code == 409
    made = org.post("boss", "project-b", "/segments", {"name": "Fake", "kind": "shared", "conditions": {}})
    assert made.status_code == 422
    assert stand_in(org, "project-b")["conditions"] == shared["conditions"]


def test_unsharing_or_deleting_a_segment_used_in_a_target_is_refused_naming_the_visible_uses(org, vip):
    share(org, vip["id"], "project-b", "project-c")
    in_b = stand_in(org, "project-b")
    in_c = stand_in(org, "project-c")
    org.segment("project-b", "Uses VIP", {"type": "segment", "segment_id": in_b["id"]})
    org.segment("project-c", "Hidden use", {"type": "segment", "segment_id": in_c["id"]})

    unshare = share(org, vip["id"], who="ab_admin")
    assert unshare.status_code == 409
    assert [(u["kind"], u["name"]) for u in unshare.get_json()["usages"]] == [("segment", "Uses VIP")]

    deleted = org.delete("ab_admin", "project-a", f"/segments/{vip['id']}")
    assert deleted.status_code == 409 and deleted.mimetype == PROBLEM
    body = deleted.get_json()
    assert [(u["workspace"], u["name"]) for u in body["usages"]] == [("Project B", "Uses VIP")]
    assert body["hidden_usage_count"] == 1
    assert "Hidden use" not in json.dumps(body)
    assert org.get("boss", "project-a", f"/segments/{vip['id']}").status_code == 200


def test_an_unused_shared_segment_is_deleted_with_its_stand_ins(org, vip):
    share(org, vip["id"], "project-b")
    shared = stand_in(org, "project-b")

    assert org.delete("boss", "project-a", f"/segments/{vip['id']}").status_code == 204

    assert org.get("boss", "project-b", f"/segments/{shared['id']}").status_code == 404


SOURCE_ONLY = (
    "s1@source.example",
    "s2@source.example",
    "src-1",
    "src-2",
    "source-secret-plan",
    "SRC-ONLY-DEVICE",
    "source-secret-description",
    "source_secret_event",
)


def test_only_membership_crosses_no_target_endpoint_or_export_shows_a_source_value(org, vip, app):
    org.ingest("project-b", "identify", [user("t-1", "t1@target.example", plan="gold")])
    org.ingest("project-b", "device", [device("t-1", "android", "AND-1")])
    share(org, vip["id"], "project-b")
    shared = stand_in(org, "project-b")
    t1 = user_ids(org, "project-b")["t-1"]
    source_ids = user_ids(org, "project-a")
    group = org.post("boss", "project-b", "/segment-groups", {"name": "G"}).get_json()
    org.post("boss", "project-b", f"/segment-groups/{group['id']}/segments", {"add": [shared["id"]]})

    prefix = "/api/v1/workspaces/<workspace>"
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith(prefix) and "GET" in r.methods]
    assert len(rules) > 20
    queries = [
        "",
        f"?subject_type=user&subject_id={t1}",
        f"?subject_id={t1}&attributes=plan,email",
        f"?segment={shared['id']}",
        f"?subject_type=user&subject_id={source_ids['src-1']}",
    ]
    walked, answered_with_target_data = 0, set()
    for rule in rules:
        for ids in (
            {"segment_id": shared["id"], "group_id": group["id"], "ref": t1, "subject_id": t1},
            {"segment_id": vip["id"], "ref": source_ids["src-1"], "subject_id": source_ids["src-1"]},
        ):
            path = rule.rule[len(prefix) :]
            for name in rule.arguments - {"workspace"}:
                value = ids.get(name, ids["segment_id"])
                path = path.replace(f"<int:{name}>", str(value)).replace(f"<{name}>", str(value))
            for query in queries:
                response = org.get("boss", "project-b", path + query)
                text = response.get_data(as_text=True)
                assert response.status_code < 500, (path, query, text)
                leaked = [value for value in SOURCE_ONLY if value in text]
                assert leaked == [], (path + query, leaked)
                walked += 1
                if response.status_code == 200 and ("t1@target.example" in text or "gold" in text):
                    answered_with_target_data.add(rule.rule)
    assert walked > 100
    # The walk reached the target's own data (members, exports, users), so it would have seen a leak there.
    assert {f"{prefix}/segments/<int:segment_id>/members.csv", f"{prefix}/users"} <= answered_with_target_data
