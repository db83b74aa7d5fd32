"""Journeys across workspaces in headless Chromium against a live server (both databases): the HQ sync dialog and
its reports, the HQ badge and "edited in this workspace" in a child, mapped values, segment groups, and sharing a
segment with its "shared" stand-in and evaluations in the target. Every page is screenshotted and checked with axe.
"""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import PASSWORD, set_password
from tests.web.test_workspace_pages import EMAILS
from tests.workspaces import conftest as workspaces
from tests.workspaces.conftest import Org

pytestmark = [pytest.mark.slow, pytest.mark.browser]
org = workspaces.org  # the company with an HQ, two children and three projects

LOYAL = {"type": "attribute", "name": "orders", "operator": "gte", "value": 3}


def sign_in(page, server, database, who: str) -> None:
    set_password(database, EMAILS[who])
    page.context.clear_cookies()
    page.goto(server.url + "/login")
    page.fill("#email", EMAILS[who])
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/w/[^/]+/segments$"))


def named(org: Org, workspace: str, name: str) -> dict | None:
    found = [s for s in org.get("boss", workspace, "/segments").get_json()["data"] if s["name"] == name]
    return found[0] if found else None


def counts(page, section: str, child: str) -> str:
    return page.locator(f"{section} section[aria-label='{child}'] h3 .counts").inner_text()


def test_hq_admin_syncs_with_a_dry_run_then_only_where_missing_keeps_a_child_edit_and_the_child_sees_badges(
    page, pages, live_server, database, org
):
    loyal = org.segment("hq", "Loyal", LOYAL)
    sign_in(page, live_server, database, "hq_admin")
    page.goto(live_server.url + "/w/hq/segment-groups")
    pages.check("hq-groups-empty")
    page.fill("#name", "Retention")
    page.check("#sync_to_children")
    page.click("button:has-text('Create group')")
    page.wait_for_selector("#sync-report")
    assert counts(page, "#sync-report", "Paris") == "1 created, 0 updated, 0 skipped, 0 conflict, 0 failed"
    assert counts(page, "#sync-report", "Lyon").startswith("1 created")
    pages.check("hq-group-created-and-synced")

    page.click("nav >> text=HQ syncs")
    page.check(f"input[name=segments][value='{loyal['id']}']")
    page.check("input[name=dry_run]")
    pages.check("hq-sync-dialog")
    page.click("button:has-text('Sync to all child workspaces')")
    page.wait_for_selector("#sync-report")
    assert "Dry run report" in page.inner_text("#sync-report")
    assert counts(page, "#sync-report", "Paris").startswith("1 created")
    assert named(org, "paris", "Loyal") is None
    pages.check("hq-sync-dry-run")

    page.uncheck("input[name=dry_run]")  # the dialog keeps the choices
    page.click("button:has-text('Sync to all child workspaces')")
    page.wait_for_selector("#sync-report h2:has-text('Sync report')")
    copy = named(org, "paris", "Loyal")
    assert copy["hq_origin"] == {"workspace_id": org.ids["hq"], "item_id": loyal["id"]}

    edited = {**LOYAL, "value": 10}
    assert org.patch("paris_admin", "paris", f"/segments/{copy['id']}", {"conditions": edited}).status_code == 200
    assert org.patch("hq_admin", "hq", f"/segments/{loyal['id']}", {"description": "HQ's"}).status_code == 200
    page.check(f"input[name=segments][value='{loyal['id']}']")
    page.check("input[value=only_where_missing]")
    page.click("button:has-text('Sync to all child workspaces')")
    page.wait_for_selector("#sync-report h2:has-text('Sync report')")
    paris_row = page.locator("#sync-report section[aria-label='Paris'] tbody tr").first.inner_text()
    assert "skipped" in paris_row and "has it already" in paris_row
    assert page.locator("ul.reports > li").count() == 3
    assert named(org, "paris", "Loyal")["conditions"]["value"] == 10
    pages.check("hq-sync-only-where-missing")

    page.goto(live_server.url + "/w/hq/segments/new")
    page.fill("#name", "Everyone")
    page.check("#sync_to_children")
    page.click('button[value="save"]')
    page.wait_for_url(re.compile(r".*/w/hq/hq-syncs\?opened=\d+"))
    assert page.locator("ul.reports details[open] section[aria-label='Lyon'] tbody").inner_text().count("created") == 1
    assert named(org, "lyon", "Everyone")["hq_origin"] is not None
    pages.check("hq-segment-created-and-synced")

    own = org.segment("paris", "Loyal here")
    sign_in(page, live_server, database, "paris_admin")
    row = page.locator("tbody tr", has_text="Loyal").first
    assert "HQ" in row.inner_text() and "edited in this workspace" in row.inner_text()
    pages.check("child-segments-with-hq-badges")
    page.click("table >> text=Everyone")
    page.wait_for_selector("h1 .badge.hq")
    pages.check("child-segment-with-hq-badge")
    page.click("nav >> text=Groups")
    assert "HQ" in page.locator("#groups tbody tr", has_text="Retention").inner_text()
    pages.check("child-groups-with-hq-badge")

    page.click("nav >> text=HQ syncs")
    assert page.locator("ul.reports > li").count() == 4
    assert "Lyon" not in page.inner_text("ul.reports")  # a child sees its own part only
    pages.check("child-hq-syncs")

    page.click("nav >> text=Mapped values")
    pages.check("child-mapped-values")
    page.select_option(f"#map-{loyal['id']}", str(own["id"]))
    page.locator(f"#mapping-{loyal['id']} button").click()
    page.wait_for_selector(f"#mapping-{loyal['id']} .ok")
    mapped = {
        m["hq_segment_id"]: m["segment_id"]
        for m in org.get("boss", "paris", "/mapped-values/segments").get_json()["data"]
    }
    assert mapped[loyal["id"]] == own["id"]


def test_editor_creates_a_group_moves_segments_in_and_out_renames_it_and_deleting_it_keeps_its_segments(
    page, pages, live_server, database, org
):
    first, second = org.segment("paris", "Churn risk"), org.segment("paris", "Win back")
    sign_in(page, live_server, database, "paris_admin")
    page.click("nav >> text=Groups")
    assert "No segment groups yet" in page.inner_text("main")
    pages.check("groups-empty")
    page.fill("#name", "Retention")
    page.fill("#description", "People we may lose")
    page.click("button:has-text('Create group')")
    page.wait_for_selector("h1:has-text('Retention')")
    assert "No segment in this group yet" in page.inner_text("main")
    pages.check("group-empty")

    page.check(f"#add-{first['id']}")
    page.check(f"#add-{second['id']}")
    page.click("button:has-text('Move ticked segments')")
    page.wait_for_selector("#group-segments")
    assert page.locator("#group-segments tbody tr").count() == 2
    pages.check("group-with-segments")

    page.fill("#group-name", "Retention 2026")
    page.fill("#group-description", "Churn and win-back")
    page.click("#edit-form button")
    page.wait_for_selector("h1:has-text('Retention 2026')")
    page.check(f"#remove-{second['id']}")
    page.click("button:has-text('Move ticked segments')")
    page.wait_for_selector(f"#add-{second['id']}")
    assert page.locator("#group-segments tbody tr").count() == 1
    group_id = org.get("boss", "paris", f"/segments/{first['id']}").get_json()["group_id"]
    group = org.get("boss", "paris", f"/segment-groups/{group_id}").get_json()
    assert (group["name"], group["description"]) == ("Retention 2026", "Churn and win-back")
    assert [s["name"] for s in group["segments"]] == ["Churn risk"]

    page.click("button:has-text('Delete group')")
    page.wait_for_url(re.compile(r".*/w/paris/segment-groups$"))
    assert org.get("boss", "paris", "/segment-groups").get_json()["data"] == []
    assert org.get("boss", "paris", f"/segments/{first['id']}").get_json()["group_id"] is None


def test_an_admin_of_both_projects_shares_a_segment_and_the_target_sees_it_shared_with_its_evaluations(
    page, pages, live_server, database, org
):
    org.ingest("project-a", "identify", [{"external_id": "src-1", "attributes": {"plan": "vip"}}])
    org.ingest("project-a", "device", [{"external_id": "src-1", "platform": "android", "vendor_device_id": "AND-1"}])
    org.ingest("project-b", "identify", [{"external_id": "t-1"}, {"external_id": "t-2"}])
    org.ingest("project-b", "device", [{"external_id": "t-1", "platform": "android", "vendor_device_id": "AND-1"}])
    vip = org.segment("project-a", "VIP", {"type": "attribute", "name": "plan", "operator": "eq", "value": "vip"})
    shared_with_c = {"workspaces": [org.ids["project-c"]]}
    assert org.put("boss", "project-a", f"/segments/{vip['id']}/sharing", shared_with_c).status_code == 200

    sign_in(page, live_server, database, "ab_admin")
    page.goto(live_server.url + f"/w/project-a/segments/{vip['id']}")
    page.click(".tabs >> text=Sharing")
    assert "Also shared with 1 workspace you cannot see" in page.inner_text("#hidden-shares")
    assert not page.is_checked("#share-project-b")
    pages.check("sharing-tab")
    page.check("#share-project-b")
    page.click("button:has-text('Save sharing')")
    page.wait_for_selector("#sharing-saved")
    assert page.is_checked("#share-project-b")

    page.select_option("#ws-switch", "project-b")
    page.wait_for_url(re.compile(r".*/w/project-b/segments$"))
    row = page.locator("tbody tr", has_text="Project A / VIP")
    assert "shared" in row.inner_text() and row.locator("td.num").inner_text() == "1"
    pages.check("target-segments-with-shared-badge")
    row.locator("a").click()
    page.wait_for_selector("h1 .badge.shared")
    assert page.is_visible("#shared-hint") and page.locator("#new-name").count() == 0  # managed at the source
    assert "vip" not in page.inner_text("main").replace("VIP", "")  # nothing of the source's definition
    pages.check("target-shared-segment")
    page.click(".tabs >> text=Evaluations")
    page.wait_for_selector("#evaluations")
    assert page.locator("#evaluations tbody tr").first.locator("td.num").inner_text() == "1"
    pages.check("target-shared-evaluations")
