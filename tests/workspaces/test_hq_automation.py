"""HQ push of views and playbooks: every segment leaf (and an enter/exit trigger) rewritten through each child's
segment mapping, a missing mapping failing that child's item, matched by origin, same-name conflicts,
update-existing vs only-where-missing after a child edit, dry runs, re-runs, permissions; and shared segments used
by a target's views, playbooks and segment actions refused to un-share or delete."""

from __future__ import annotations

import json

from connector.models import Playbook
from connector.security import SecretBox
from tests.workspaces.conftest import Org
from tests.workspaces.test_hq import LOYAL, outcome, push, pushed, segment_named
from tests.workspaces.test_sharing import PROBLEM, share, stand_in, vip  # noqa: F401 (fixture)

SEQUENCE = {"name": "Welcome", "channels": ["email"], "steps": [{"name": "hello", "delay_minutes": 0}]}


def in_segment(segment_id: int, operator: str = "in") -> dict:
    return {"type": "segment", "operator": operator, "segment_id": segment_id}


def create(org: Org, workspace: str, what: str, body: dict, who: str = "boss") -> dict:
    response = org.post(who, workspace, f"/{what}", body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def named(org: Org, workspace: str, what: str, name: str) -> dict | None:
    found = [item for item in org.get("boss", workspace, f"/{what}").get_json()["data"] if item["name"] == name]
    return found[0] if found else None


def view_body(name: str, segment_id: int) -> dict:
    return {
        "name": name,
        "conditions": {"type": "all", "children": [in_segment(segment_id, "not_in")]},
        "columns": ["id", "email"],
        "sort": {"by": "email", "direction": "desc"},
    }


def playbook_body(name: str, trigger_segment: int, condition_segment: int, **extra) -> dict:
    return {
        "name": name,
        "trigger": {"kind": "enters", "segment_id": trigger_segment},
        "conditions": in_segment(condition_segment),
        "actions": [{"type": "add_tag", "tag": "welcomed"}],
        **extra,
    }


def test_a_view_is_pushed_with_its_segment_leaves_pointing_at_each_childs_mapped_segment(org):
    loyal = org.segment("hq", "Loyal", LOYAL)
    view = create(org, "hq", "views", view_body("Not loyal", loyal["id"]))

    report = pushed(org, segments=[loyal["id"]], views=[view["id"]])

    for child in ("Paris", "Lyon"):
        assert outcome(report, child) == [("segment", "Loyal", "created", None), ("view", "Not loyal", "created", None)]
    for child in ("paris", "lyon"):
        copy = named(org, child, "views", "Not loyal")
        assert copy["conditions"]["children"][0]["segment_id"] == segment_named(org, child, "Loyal")["id"]
        assert copy["conditions"]["children"][0]["operator"] == "not_in"
        assert (copy["columns"], copy["sort"]) == (view["columns"], view["sort"])
        assert copy["hq_origin"] == {"workspace_id": org.ids["hq"], "item_id": view["id"]}
        assert copy["edited_in_child"] is False
    assert view["hq_origin"] is None
    paris_view = named(org, "paris", "views", "Not loyal")
    assert org.get("paris_viewer", "paris", f"/views/{paris_view['id']}").get_json()["hq_origin"] is not None


def test_a_playbook_is_pushed_with_its_trigger_and_conditions_mapped_and_its_webhook_secret(org, database, app):
    loyal = org.segment("hq", "Loyal", LOYAL)
    vips = org.segment("hq", "VIPs", {"type": "attribute", "name": "tier", "operator": "eq", "value": "gold"})
    hook = {"type": "webhook", "url": "https://hooks.example/in", "secret": "s3cret-value"}
    body = playbook_body("Welcome loyal", loyal["id"], vips["id"])
    playbook = create(org, "hq", "playbooks", {**body, "actions": [*body["actions"], hook]})

    report = pushed(org, segments=[loyal["id"], vips["id"]], playbooks=[playbook["id"]])

    assert outcome(report, "Lyon")[-1] == ("playbook", "Welcome loyal", "created", None)
    copy = named(org, "lyon", "playbooks", "Welcome loyal")
    assert copy["trigger"] == {"kind": "enters", "segment_id": segment_named(org, "lyon", "Loyal")["id"]}
    assert copy["conditions"]["segment_id"] == segment_named(org, "lyon", "VIPs")["id"]
    assert copy["actions"][1]["secret"] == "********"
    assert copy["hq_origin"] == {"workspace_id": org.ids["hq"], "item_id": playbook["id"]}
    with database.session() as session:
        stored = session.get(Playbook, copy["id"])
        assert SecretBox(app.config["SETTINGS"].secret_key).decrypt(stored.secrets_encrypted) == {"1": "s3cret-value"}


def test_running_the_same_push_twice_changes_nothing_the_second_time(org):
    loyal = org.segment("hq", "Loyal", LOYAL)
    view = create(org, "hq", "views", view_body("Not loyal", loyal["id"]))
    playbook = create(org, "hq", "playbooks", playbook_body("Welcome", loyal["id"], loyal["id"]))
    request = {"segments": [loyal["id"]], "views": [view["id"]], "playbooks": [playbook["id"]]}
    pushed(org, **request)
    before = (named(org, "paris", "views", "Not loyal"), named(org, "paris", "playbooks", "Welcome"))

    again = pushed(org, **request)

    assert outcome(again, "Paris") == [
        ("segment", "Loyal", "skipped", "unchanged"),
        ("view", "Not loyal", "skipped", "unchanged"),
        ("playbook", "Welcome", "skipped", "unchanged"),
    ]
    assert (named(org, "paris", "views", "Not loyal"), named(org, "paris", "playbooks", "Welcome")) == before


def test_a_child_edit_is_kept_by_only_where_missing_and_overridden_by_update_existing(org):
    loyal = org.segment("hq", "Loyal", LOYAL)
    view = create(org, "hq", "views", view_body("Not loyal", loyal["id"]))
    playbook = create(org, "hq", "playbooks", playbook_body("Welcome", loyal["id"], loyal["id"]))
    request = {"segments": [loyal["id"]], "views": [view["id"]], "playbooks": [playbook["id"]]}
    pushed(org, **request)
    paris_loyal = segment_named(org, "paris", "Loyal")["id"]
    paris_view = named(org, "paris", "views", "Not loyal")
    paris_playbook = named(org, "paris", "playbooks", "Welcome")
    edited_view = org.put("paris_admin", "paris", f"/views/{paris_view['id']}", {**view_body("Ours", paris_loyal)})
    edited_playbook = org.put(
        "paris_admin",
        "paris",
        f"/playbooks/{paris_playbook['id']}",
        {**playbook_body("Welcome", paris_loyal, paris_loyal), "actions": [{"type": "add_tag", "tag": "ours"}]},
    )
    assert edited_view.status_code == 200 and edited_view.get_json()["edited_in_child"] is True
    assert edited_playbook.status_code == 200 and edited_playbook.get_json()["edited_in_child"] is True

    kept = pushed(org, **request, mode="only_where_missing")

    assert [i[2:] for i in outcome(kept, "Paris")] == [("skipped", "exists")] * 3
    assert org.get("boss", "paris", f"/views/{paris_view['id']}").get_json()["name"] == "Ours"
    assert org.get("boss", "paris", f"/playbooks/{paris_playbook['id']}").get_json()["actions"][0]["tag"] == "ours"

    overridden = pushed(org, **request, mode="update_existing")

    assert outcome(overridden, "Paris")[1:] == [
        ("view", "Not loyal", "updated", None),
        ("playbook", "Welcome", "updated", None),
    ]
    assert [i[2] for i in outcome(overridden, "Lyon")] == ["skipped"] * 3
    view_now = org.get("boss", "paris", f"/views/{paris_view['id']}").get_json()
    playbook_now = org.get("boss", "paris", f"/playbooks/{paris_playbook['id']}").get_json()
    assert (view_now["name"], view_now["edited_in_child"]) == ("Not loyal", False)
    assert (playbook_now["actions"][0]["tag"], playbook_now["edited_in_child"]) == ("welcomed", False)


def test_a_child_view_or_playbook_of_the_same_name_is_a_conflict_not_an_overwrite(org):
    loyal = org.segment("hq", "Loyal", LOYAL)
    view = create(org, "hq", "views", view_body("Not loyal", loyal["id"]))
    playbook = create(org, "hq", "playbooks", playbook_body("Welcome", loyal["id"], loyal["id"]))
    local = org.segment("paris", "Local", LOYAL)
    own_view = create(org, "paris", "views", view_body("Not loyal", local["id"]))
    own_playbook = create(org, "paris", "playbooks", playbook_body("Welcome", local["id"], local["id"]))

    report = pushed(org, segments=[loyal["id"]], views=[view["id"]], playbooks=[playbook["id"]])

    (_, view_item, playbook_item) = outcome(report, "Paris")
    assert view_item[2] == "conflict" and f"id {own_view['id']}" in view_item[3]
    assert playbook_item[2] == "conflict" and f"id {own_playbook['id']}" in playbook_item[3]
    assert named(org, "paris", "views", "Not loyal") == own_view
    assert named(org, "paris", "playbooks", "Welcome") == own_playbook
    assert [i[2] for i in outcome(report, "Lyon")] == ["created"] * 3


def test_a_missing_mapping_fails_that_childs_item_and_is_never_guessed_by_name(org):
    loyal = org.segment("hq", "Loyal", LOYAL)
    view = create(org, "hq", "views", view_body("Not loyal", loyal["id"]))
    playbook = create(org, "hq", "playbooks", playbook_body("Welcome", loyal["id"], loyal["id"]))
    org.segment("paris", "Loyal", LOYAL)  # same name, unrelated: a conflict, so Paris maps nothing

    report = pushed(org, segments=[loyal["id"]], views=[view["id"]], playbooks=[playbook["id"]])

    (segment_item, view_item, playbook_item) = outcome(report, "Paris")
    assert segment_item[2] == "conflict"
    assert view_item[2] == "failed"
    assert view_item[3] == (
        f"conditions.children[0].segment_id names HQ segment {loyal['id']}, which has no mapped segment in this "
        "workspace"
    )
    assert playbook_item[2] == "failed" and playbook_item[3].startswith(
        f"trigger.segment_id names HQ segment {loyal['id']}"
    )
    assert named(org, "paris", "views", "Not loyal") is None and named(org, "paris", "playbooks", "Welcome") is None
    assert [i[2] for i in outcome(report, "Lyon")] == ["created"] * 3

    alone = pushed(org, views=[view["id"]])  # without its segment, Lyon's mapping still serves
    assert outcome(alone, "Lyon") == [("view", "Not loyal", "skipped", "unchanged")]
    assert outcome(alone, "Paris")[0][2] == "failed"


def test_a_playbook_naming_an_hq_sequence_fails_with_the_reason(org):
    loyal = org.segment("hq", "Loyal", LOYAL)
    sequence = create(org, "hq", "sequences", SEQUENCE)
    action = {"type": "enrol", "sequence_id": sequence["id"], "fallback_channel": "email"}
    playbook = create(org, "hq", "playbooks", {**playbook_body("Enrol", loyal["id"], loyal["id"]), "actions": [action]})

    report = pushed(org, segments=[loyal["id"]], playbooks=[playbook["id"]])

    assert outcome(report, "Paris")[1] == (
        "playbook",
        "Enrol",
        "failed",
        f"actions[0].sequence_id names HQ sequence {sequence['id']}, which HQ syncs do not push",
    )
    assert named(org, "paris", "playbooks", "Enrol") is None


def test_a_dry_run_reports_views_and_playbooks_without_writing(org):
    loyal = org.segment("hq", "Loyal", LOYAL)
    view = create(org, "hq", "views", view_body("Not loyal", loyal["id"]))
    playbook = create(org, "hq", "playbooks", playbook_body("Welcome", loyal["id"], loyal["id"]))

    response = push(org, segments=[loyal["id"]], views=[view["id"]], playbooks=[playbook["id"]], dry_run=True)

    assert response.status_code == 200
    assert [i[2] for i in outcome(response.get_json(), "Paris")] == ["created"] * 3
    for child in ("paris", "lyon"):
        assert org.get("boss", child, "/views").get_json()["data"] == []
        assert org.get("boss", child, "/playbooks").get_json()["data"] == []
        assert segment_named(org, child, "Loyal") is None
    assert org.get("hq_admin", "hq", "/hq-syncs").get_json()["data"] == []


def test_only_an_hq_admin_may_push_views_and_playbooks_and_unknown_ids_name_the_field(org):
    loyal = org.segment("hq", "Loyal", LOYAL)
    view = create(org, "hq", "views", view_body("Not loyal", loyal["id"]))
    playbook = create(org, "hq", "playbooks", playbook_body("Welcome", loyal["id"], loyal["id"]))

    assert push(org, who="hq_editor", views=[view["id"]]).status_code == 403
    assert push(org, who="paris_admin", playbooks=[playbook["id"]]).status_code == 404
    paris_own = org.post("paris_admin", "paris", "/hq-syncs", {"views": [view["id"]]})
    assert paris_own.status_code == 422
    unknown = push(org, views=[view["id"], 10**12])
    assert unknown.status_code == 422 and unknown.mimetype == PROBLEM
    assert unknown.get_json()["errors"][0]["field"] == "body.views[1]"
    other = push(org, playbooks=[10**12])
    assert other.status_code == 422 and other.get_json()["errors"][0]["field"] == "body.playbooks[0]"
    assert push(org, views="all").status_code == 422
    for child in ("paris", "lyon"):
        assert org.get("boss", child, "/views").get_json()["data"] == []


# -- shared segments used by a target's automation ------------------------------------------------------------------


def test_a_shared_segment_used_by_target_views_playbooks_and_segment_actions_cannot_be_unshared_or_deleted(
    org,
    vip,  # noqa: F811 (fixture)
):
    share(org, vip["id"], "project-b", "project-c")
    in_b, in_c = stand_in(org, "project-b"), stand_in(org, "project-c")
    create(org, "project-b", "views", view_body("VIP view", in_b["id"]))
    create(org, "project-b", "playbooks", playbook_body("VIP playbook", in_b["id"], in_b["id"]))
    sequence = create(org, "project-c", "sequences", SEQUENCE)
    action = {"sequence_id": sequence["id"], "time": "09:00", "timezone": "UTC", "fallback_channel": "email"}
    assert org.put("boss", "project-c", f"/segments/{in_c['id']}/action", action).status_code in (200, 201)

    unshare = share(org, vip["id"], who="ab_admin")
    assert unshare.status_code == 409 and unshare.mimetype == PROBLEM
    assert sorted((u["kind"], u["name"]) for u in unshare.get_json()["usages"]) == [
        ("playbook", "VIP playbook"),
        ("view", "VIP view"),
    ]

    deleted = org.delete("ab_admin", "project-a", f"/segments/{vip['id']}")
    assert deleted.status_code == 409 and deleted.mimetype == PROBLEM
    body = deleted.get_json()
    assert sorted((u["workspace"], u["kind"], u["name"]) for u in body["usages"]) == [
        ("Project B", "playbook", "VIP playbook"),
        ("Project B", "view", "VIP view"),
    ]
    assert body["hidden_usage_count"] == 1
    assert "Project C" not in json.dumps(body)

    everything = org.delete("boss", "project-a", f"/segments/{vip['id']}").get_json()
    assert ("Project C", "segment_action") in {(u["workspace"], u["kind"]) for u in everything["usages"]}
    assert org.get("boss", "project-a", f"/segments/{vip['id']}").status_code == 200
    assert stand_in(org, "project-b")["id"] == in_b["id"]
