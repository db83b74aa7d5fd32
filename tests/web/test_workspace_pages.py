"""The cross-workspace pages through the test client (both databases): who may do what (the API's role checks),
errors beside the field, and that a refused form writes nothing."""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import csrf_token, set_password, sign_in
from tests.workspaces import conftest as workspaces
from tests.workspaces.conftest import Org

org = workspaces.org  # the company with an HQ, two children and three projects

LOYAL = {"type": "attribute", "name": "orders", "operator": "gte", "value": 3}
EMAILS = {
    "boss": "boss@brand.example",
    "hq_admin": "hq@brand.example",
    "hq_editor": "ed@brand.example",
    "paris_admin": "paris@brand.example",
    "paris_viewer": "pv@brand.example",
    "ab_admin": "ab@brand.example",
    "a_admin": "a@brand.example",
    "b_viewer": "bv@brand.example",
}


def as_member(client, database, who: str) -> None:
    set_password(database, EMAILS[who])
    client.post("/logout", data={"csrf_token": csrf_token(client.get("/login").get_data(as_text=True))})
    assert sign_in(client, EMAILS[who]).status_code == 302


def post_form(client, page: str, action: str, data: dict):
    token = csrf_token(client.get(page).get_data(as_text=True))
    return client.post(action, data={"csrf_token": token, **data})


def reports(org: Org, workspace: str = "hq") -> list[dict]:
    return org.get("boss", workspace, "/hq-syncs").get_json()["data"]


@pytest.fixture
def synced(org: Org) -> dict:
    """HQ's segment "Loyal", synced to Paris and Lyon; its Paris copy."""
    loyal = org.segment("hq", "Loyal", LOYAL)
    assert org.post("hq_admin", "hq", "/hq-syncs", {"segments": [loyal["id"]]}).status_code == 201
    (copy,) = [s for s in org.get("boss", "paris", "/segments").get_json()["data"] if s["name"] == "Loyal"]
    return {"hq": loyal, "paris": copy}


def test_an_hq_editor_sees_past_syncs_but_no_sync_form_and_its_post_is_refused_without_a_report(
    client, database, org, synced
):
    as_member(client, database, "hq_editor")
    page = client.get("/w/hq/hq-syncs")
    assert page.status_code == 200 and 'id="hq-sync-form"' not in page.get_data(as_text=True)
    assert 'id="past-' in page.get_data(as_text=True)

    response = post_form(client, "/w/hq/segments", "/w/hq/hq-syncs", {"segments": synced["hq"]["id"]})

    assert response.status_code == 403
    assert len(reports(org)) == 1


def test_a_dry_run_from_the_dialog_shows_the_per_child_report_and_writes_nothing(client, database, org):
    gold = org.segment("hq", "Gold", {"type": "attribute", "name": "tier", "operator": "eq", "value": "gold"})
    as_member(client, database, "hq_admin")

    response = post_form(
        client, "/w/hq/hq-syncs", "/w/hq/hq-syncs", {"segments": gold["id"], "mode": "update_existing", "dry_run": "on"}
    )

    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Dry run report" in html
    assert (
        re.search(r'id="new-child-\d+" aria-label="Paris"', html) and html.count('data-count="created">1 created') == 2
    )
    assert reports(org) == []
    assert [s["name"] for s in org.get("boss", "paris", "/segments").get_json()["data"]] == []


def test_the_sync_dialog_names_a_bad_mode_beside_it_and_syncs_nothing(client, database, org):
    gold = org.segment("hq", "Gold")
    as_member(client, database, "hq_admin")

    response = post_form(client, "/w/hq/hq-syncs", "/w/hq/hq-syncs", {"segments": gold["id"], "mode": "sometimes"})

    assert response.status_code == 422
    assert re.search(r'id="mode-error">choose update existing or only where missing<', response.get_data(as_text=True))
    assert reports(org) == []


def test_a_member_of_a_child_only_gets_not_found_for_the_hq_pages(client, database, org, synced):
    as_member(client, database, "paris_viewer")
    assert client.get("/w/hq/hq-syncs").status_code == 404
    assert client.get(f"/w/hq/segments/{synced['hq']['id']}/sharing").status_code == 404
    assert client.get("/w/hq/segment-groups").status_code == 404


def test_a_child_viewer_reads_mapped_values_but_may_not_change_them(client, database, org, synced):
    other = org.segment("paris", "Loyal here")
    as_member(client, database, "paris_viewer")
    page = client.get("/w/paris/mapped-values/segments")
    assert page.status_code == 200 and "Loyal" in page.get_data(as_text=True)
    assert f'id="map-{synced["hq"]["id"]}"' not in page.get_data(as_text=True)

    refused = post_form(
        client,
        "/w/paris/segments",
        f"/w/paris/mapped-values/segments/{synced['hq']['id']}",
        {"segment_id": other["id"]},
    )

    assert refused.status_code == 403
    mapped = org.get("boss", "paris", "/mapped-values/segments").get_json()["data"]
    assert [m["segment_id"] for m in mapped] == [synced["paris"]["id"]]


def test_a_child_admin_repoints_a_mapping_and_an_unknown_segment_is_named_beside_the_row(client, database, org, synced):
    other = org.segment("paris", "Loyal here")
    as_member(client, database, "paris_admin")
    page, action = "/w/paris/mapped-values/segments", f"/w/paris/mapped-values/segments/{synced['hq']['id']}"

    refused = post_form(client, page, action, {"segment_id": "999999"})
    assert refused.status_code == 422
    assert f'id="map-{synced["hq"]["id"]}-error">no segment 999999 in this workspace<' in refused.get_data(as_text=True)

    assert post_form(client, page, action, {"segment_id": other["id"]}).status_code == 302
    mapped = org.get("boss", "paris", "/mapped-values/segments").get_json()["data"]
    assert [m["segment_id"] for m in mapped] == [other["id"]]


def test_sharing_needs_the_admin_role_in_the_target_and_counts_the_shares_a_member_cannot_see(client, database, org):
    vip = org.segment("project-a", "VIP")
    assert org.put("boss", "project-a", f"/segments/{vip['id']}/sharing", {"workspaces": [org.ids["project-c"]]})
    sharing = f"/w/project-a/segments/{vip['id']}/sharing"

    as_member(client, database, "b_viewer")  # admin of project-a, viewer of project-b
    page = client.get(sharing).get_data(as_text=True)
    assert re.search(r'id="share-project-b"[^>]*disabled', page)
    assert re.search(r'id="hidden-shares">Also shared with <strong>1</strong> workspace ', page)
    refused = post_form(client, sharing, sharing, {"workspaces": org.ids["project-b"]})
    assert refused.status_code == 403 and "workspace_admin" in refused.get_data(as_text=True)

    as_member(client, database, "a_admin")  # sees project-a only
    refused = post_form(client, sharing, sharing, {"workspaces": org.ids["project-b"]})
    assert refused.status_code == 422 and "no workspace" in refused.get_data(as_text=True)

    state = org.get("boss", "project-a", f"/segments/{vip['id']}/sharing").get_json()
    assert sorted(w["slug"] for w in state["workspaces"] if w["shared"]) == ["project-c"]


def test_a_viewer_may_not_create_rename_move_or_delete_groups(client, database, org):
    group = org.post("boss", "paris", "/segment-groups", {"name": "Retention"}).get_json()
    as_member(client, database, "paris_viewer")
    listed = client.get("/w/paris/segment-groups").get_data(as_text=True)
    assert "Retention" in listed and 'id="group-form"' not in listed

    for action, data in [
        ("/w/paris/segment-groups", {"name": "Mine"}),
        (f"/w/paris/segment-groups/{group['id']}/edit", {"name": "Renamed"}),
        (f"/w/paris/segment-groups/{group['id']}/delete", {}),
    ]:
        assert post_form(client, "/w/paris/segment-groups", action, data).status_code == 403
    assert [g["name"] for g in org.get("boss", "paris", "/segment-groups").get_json()["data"]] == ["Retention"]


def test_an_hq_editor_creating_a_group_to_sync_is_refused_and_no_group_is_left_behind(client, database, org):
    org.post("boss", "hq", "/segment-groups", {"name": "Existing"})
    as_member(client, database, "hq_editor")

    response = post_form(
        client, "/w/hq/segment-groups", "/w/hq/segment-groups", {"name": "Seasonal", "sync_to_children": "on"}
    )

    assert response.status_code == 403
    assert [g["name"] for g in org.get("boss", "hq", "/segment-groups").get_json()["data"]] == ["Existing"]


def test_moving_out_a_segment_that_is_not_in_the_group_is_named_and_nothing_moves(client, database, org):
    group = org.post("boss", "paris", "/segment-groups", {"name": "Retention"}).get_json()
    loose = org.segment("paris", "Loose")
    as_member(client, database, "paris_admin")
    page = f"/w/paris/segment-groups/{group['id']}"

    response = post_form(client, page, f"{page}/segments", {"remove": loose["id"]})

    assert response.status_code == 422
    assert f"segment {loose['id']} is not in this group" in response.get_data(as_text=True)
    assert org.get("boss", "paris", f"/segments/{loose['id']}").get_json()["group_id"] is None


@pytest.fixture
def used_share(org: Org) -> dict:
    """Project A's "VIP" shared with Project B and C, whose stand-ins a segment of each uses."""
    vip = org.segment("project-a", "VIP")
    targets = {"workspaces": [org.ids["project-b"], org.ids["project-c"]]}
    assert org.put("boss", "project-a", f"/segments/{vip['id']}/sharing", targets).status_code == 200
    for slug, name in (("project-b", "Uses VIP"), ("project-c", "Hidden use")):
        (stand_in,) = [s for s in org.get("boss", slug, "/segments").get_json()["data"] if s["kind"] == "shared"]
        org.segment(slug, name, {"type": "segment", "segment_id": stand_in["id"]})
    return vip


def test_deleting_a_segment_used_where_it_is_shared_is_refused_naming_only_the_uses_the_member_can_see(
    client, database, org, used_share
):
    as_member(client, database, "ab_admin")
    page = f"/w/project-a/segments/{used_share['id']}"

    response = post_form(client, page, f"{page}/delete", {})

    html = response.get_data(as_text=True)
    assert response.status_code == 409
    assert re.search(r"<li>segment “Uses VIP” in Project B</li>", html) and "1 use(s) in workspaces you cannot" in html
    assert "Hidden use" not in html
    assert org.get("boss", "project-a", f"/segments/{used_share['id']}").status_code == 200


def test_unticking_a_share_that_the_target_uses_is_refused_and_the_share_stays(client, database, org, used_share):
    as_member(client, database, "ab_admin")
    sharing = f"/w/project-a/segments/{used_share['id']}/sharing"

    response = post_form(client, sharing, sharing, {})  # Project B unticked

    assert response.status_code == 409 and "Uses VIP" in response.get_data(as_text=True)
    state = org.get("boss", "project-a", f"/segments/{used_share['id']}/sharing").get_json()
    assert sorted(w["slug"] for w in state["workspaces"] if w["shared"]) == ["project-b", "project-c"]


def test_another_workspace_s_segment_has_no_sharing_or_evaluations_page_here(client, database, org):
    vip = org.segment("project-a", "VIP")
    as_member(client, database, "ab_admin")  # admin of project-a and project-b

    assert client.get(f"/w/project-b/segments/{vip['id']}/sharing").status_code == 404
    assert client.get(f"/w/project-b/segments/{vip['id']}/evaluations").status_code == 404
    token = csrf_token(client.get("/w/project-b/segments").get_data(as_text=True))
    sharing = f"/w/project-b/segments/{vip['id']}/sharing"
    assert client.post(sharing, data={"csrf_token": token, "workspaces": org.ids["project-c"]}).status_code == 404


def test_a_sync_from_a_workspace_without_children_is_refused_with_the_reason(client, database, org):
    vip = org.segment("project-a", "VIP")
    as_member(client, database, "a_admin")
    assert 'id="hq-sync-form"' not in client.get("/w/project-a/hq-syncs").get_data(as_text=True)

    response = post_form(
        client, "/w/project-a/hq-syncs", "/w/project-a/hq-syncs", {"segments": vip["id"], "mode": "update_existing"}
    )

    assert response.status_code == 422
    assert "no child workspaces to sync to" in response.get_data(as_text=True)
    assert reports(org, "project-a") == []
