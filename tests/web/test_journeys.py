"""The main journeys of the web UI in headless Chromium against a live server (both databases).

Each journey covers several pages; every page is screenshotted and checked with axe-core (``Pages.check``).
"""

from __future__ import annotations

import re

import pytest

from connector.models import Role, Workspace, WorkspaceMembership
from tests.web.conftest import PASSWORD, SANDBOX_TOKEN, add_member

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PEOPLE = [
    {"external_id": "u1", "email": "ana@acme.example", "attributes": {"plan": "pro", "country": "FR"}},
    {"external_id": "u2", "email": "ben@acme.example", "attributes": {"plan": "pro", "country": "DE"}},
    {"external_id": "u3", "email": "cy@acme.example", "attributes": {"plan": "pro", "country": "US"}},
    {"external_id": "u4", "email": "di@acme.example", "attributes": {"plan": "free", "country": "FR"}},
    {"external_id": "u5", "email": "ed@acme.example", "attributes": {"plan": "pro", "country": "ES"}},
]
NEWSLETTER = ["ben@acme.example", "di@acme.example"]


def seed(client, tenant) -> int:
    """The people above (Ben and Di take the newsletter) and a "Newsletter" segment; its id."""
    account = {"external_id": "acct-1", "name": "Initech", "domain": "initech.example"}
    assert client.post(tenant.url("/group"), json={"batch": [account]}, headers=tenant.headers).status_code == 200
    items = [{**p, "tags": ["newsletter"] if p["email"] in NEWSLETTER else []} for p in PEOPLE]
    items[0]["accounts"] = ["acct-1"]  # Ana works at Initech
    response = client.post(tenant.url("/identify"), json={"batch": items}, headers=tenant.headers)
    assert response.status_code == 200, response.get_json()
    body = {"name": "Newsletter", "conditions": {"type": "tag", "operator": "has", "value": "newsletter"}}
    response = client.post(tenant.url("/segments?wait=true"), json=body, headers=tenant.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def sign_in(page, server, email: str = "admin@acme.example", pages=None) -> None:
    page.goto(server.url + "/login")
    if pages is not None:
        pages.check("login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/w/acme/segments$"))


def field(page, name: str):
    return page.locator(f'[name="{name}"]')


def test_editor_builds_a_nested_segment_whose_preview_matches_the_api_then_explores_it(
    page, pages, live_server, client, editor
):
    newsletter = seed(client, editor)
    sign_in(page, live_server, pages=pages)
    pages.check("segments")

    page.click("text=New segment of people")
    page.fill("#name", "Pro in newsletter or France")
    page.click('button[value="add:n:attribute"]')
    field(page, "n.0.name").fill("plan")
    field(page, "n.0.value").fill("pro")
    page.click('button[value="add:n:any"]')
    page.click('button[value="add:n.1:segment"]')
    field(page, "n.1.0.segment_id").select_option(str(newsletter))
    page.click('button[value="add:n.1:attribute"]')
    field(page, "n.1.1.name").fill("country")
    field(page, "n.1.1.value").fill("FR")
    field(page, "n.1.1.value").press("Tab")

    tree = {
        "type": "all",
        "children": [
            {"type": "attribute", "name": "plan", "operator": "eq", "value": "pro"},
            {
                "type": "any",
                "children": [
                    {"type": "segment", "operator": "in", "segment_id": newsletter},
                    {"type": "attribute", "name": "country", "operator": "eq", "value": "FR"},
                ],
            },
        ],
    }
    expected = client.post(editor.url("/segments/preview"), json={"conditions": tree}, headers=editor.headers)
    count = expected.get_json()["count"]
    assert count == 2  # Ana (France) and Ben (newsletter)
    page.wait_for_selector(f'#preview-count[data-count="{count}"]')
    pages.check("segment-builder")

    page.click('button[value="save"]')
    page.wait_for_url(re.compile(r".*/w/acme/segments/\d+$"))
    segment_id = int(page.url.rsplit("/", 1)[1])
    saved = client.get(editor.url(f"/segments/{segment_id}"), headers=editor.headers).get_json()
    assert saved["conditions"]["children"][1]["children"][0] == {
        "type": "segment",
        "operator": "in",
        "segment_id": newsletter,
    }
    assert page.inner_text("#member-count") == str(saved["member_count"]) == "2"
    pages.check("segment")
    page.click("text=Edit conditions")
    page.wait_for_selector('#preview-count[data-count="2"]')
    assert page.inner_text("#would-add") == "0" and page.inner_text("#would-leave") == "0"
    field(page, "n.1.1.value").fill("ES")  # Ed (pro, Spain) would enter, Ana (pro, France) would leave
    field(page, "n.1.1.value").press("Tab")
    page.wait_for_selector(
        '#preview-count[data-count="2"] >> xpath=//ancestor::aside//span[@id="would-add" and text()="1"]'
    )
    assert page.inner_text("#would-leave") == "1"
    pages.check("segment-edit")
    page.go_back()

    page.fill("#person", "di@acme.example")
    page.click("text=Explain")
    page.wait_for_selector("#explain-verdict")
    assert "is not in" in page.inner_text("#explain-verdict")
    page.fill("#search", "ana")
    page.click("#members + * button, form[role=search] button")
    page.wait_for_function("!document.querySelector('#members').innerText.includes('ben@acme.example')")
    assert "ana@acme.example" in page.inner_text("#members")
    pages.check("segment-explain-and-search")

    page.click("nav >> text=People")
    field(page, "segment").select_option(str(segment_id))
    field(page, "not_segment").select_option(str(newsletter))
    page.click("form[role=search] button")
    page.wait_for_load_state()
    listed = page.inner_text("table")
    assert "ana@acme.example" in listed and "ben@acme.example" not in listed
    pages.check("people")
    page.click("text=Accounts")
    pages.check("accounts")
    page.go_back()
    page.click("table >> text=" + str(page.locator("table tbody tr td a").first.inner_text()))
    page.wait_for_selector("#segments-property")
    assert "Pro in newsletter or France" in page.inner_text("#segments-property")
    assert "Pro in newsletter or France" in page.inner_text("main")  # the enter history names it
    pages.check("person")
    page.click("text=Initech")
    page.wait_for_selector("h1:has-text('Initech')")
    assert "ana@acme.example" in page.inner_text("main")
    pages.check("account")


def test_a_manual_segment_from_a_csv_reports_its_two_bad_rows_and_cannot_be_deleted_while_used(
    page, pages, live_server, client, editor
):
    seed(client, editor)
    sign_in(page, live_server)
    page.goto(live_server.url + "/w/acme/segments/new?kind=manual")
    page.fill("#name", "VIP list")
    csv = b"email\nana@acme.example\nben@acme.example\nnot-an-email\nghost@nowhere.example\n"
    page.set_input_files("#file", files=[{"name": "vip.csv", "mimeType": "text/csv", "buffer": csv}])
    pages.check("manual-segment-new")
    page.click('button[value="save"]')
    page.wait_for_selector("#upload-report")
    rows = page.locator("#rejected-rows tbody tr")
    assert rows.count() == 2
    assert "not-an-email" in rows.nth(0).inner_text() and "ghost@nowhere.example" in rows.nth(1).inner_text()
    assert "2 added" in page.inner_text("#upload-report")
    assert page.inner_text("#member-count") == "2"
    pages.check("manual-segment-report")
    export = page.locator("a:has-text('Download members')").get_attribute("href")
    segment_id = int(re.search(r"/segments/(\d+)/", export).group(1))

    uses = {"name": "VIPs in France", "conditions": {"type": "segment", "operator": "in", "segment_id": segment_id}}
    assert client.post(editor.url("/segments?wait=true"), json=uses, headers=editor.headers).status_code == 201
    page.goto(live_server.url + f"/w/acme/segments/{segment_id}")
    page.click("button:has-text('Delete segment')")
    page.wait_for_selector("#usages")
    assert "VIPs in France" in page.inner_text("#usages")
    pages.check("segment-delete-refused")
    page.fill("#new-name", "VIP customers")
    page.click("button:has-text('Rename')")
    page.wait_for_selector("h1:has-text('VIP customers')")
    assert (
        client.get(editor.url(f"/segments/{segment_id}"), headers=editor.headers).get_json()["name"] == "VIP customers"
    )


def test_hubspot_destination_and_a_segment_sync_dry_run_then_run_match_what_the_sandbox_received(
    page, pages, live_server, client, editor, sandbox
):
    newsletter = seed(client, editor)
    sign_in(page, live_server)
    page.click("nav >> text=Destinations")
    pages.check("destinations-empty")
    page.click("text=Add HubSpot")
    page.fill("#name", "HubSpot sandbox")
    field(page, "config.access_token").fill("a-wrong-token")
    field(page, "config.base_url").fill(sandbox.url)
    # One request a second: the run lasts a few seconds, long enough to watch it progress.
    field(page, "config.rate_limit_requests").fill("1")
    field(page, "config.rate_limit_seconds").fill("1")
    pages.check("destination-new")
    page.click('button[value="save"]')
    page.wait_for_selector("text=Saved.")
    page.click("#test-connection")
    page.wait_for_selector("#check-result")
    assert "failed" in page.inner_text("#check-result")
    error = page.locator('[id="config.access_token-error"]')
    assert "access token" in error.inner_text()
    pages.check("destination-check-failed")
    field(page, "config.access_token").fill(SANDBOX_TOKEN)
    page.click('button[value="check"]')
    page.wait_for_selector("#check-result.ok")
    assert field(page, "config.access_token").input_value() == ""
    assert "stored" in field(page, "config.access_token").get_attribute("placeholder")
    assert SANDBOX_TOKEN not in page.content()
    pages.check("destination-check-ok")
    page.click("nav >> text=Destinations")
    assert "HubSpot sandbox" in page.inner_text("table")
    pages.check("destinations")

    page.click("nav >> text=Syncs")
    pages.check("syncs-empty")
    page.click("text=New sync")
    page.fill("#name", "Newsletter to HubSpot")
    page.select_option("#destination_id", label="HubSpot sandbox (hubspot)")
    page.wait_for_selector("#dest-fields option[value=email]", state="attached")
    assert "everyone" in page.inner_text("fieldset:has-text('Who is sent')")
    page.check(f"#seg-{newsletter}")
    field(page, "m1.destination").fill("connector_segments")
    assert field(page, "m1.as").input_value() == "multi_select"
    pages.check("sync-new")
    page.click('button[value="save"]')
    page.wait_for_url(re.compile(r".*/syncs/\d+$"))
    assert "Newsletter" in page.inner_text("dl.facts")
    pages.check("sync")

    page.click("text=Dry run")
    page.wait_for_selector("#dry-run")
    assert page.inner_text("#dry-add") == str(len(NEWSLETTER))
    assert sandbox.records("contacts") == []
    pages.check("sync-dry-run")

    page.click("text=Run now")
    page.wait_for_url(re.compile(r".*/runs/\d+$"))
    page.evaluate("window.notReloaded = true")
    assert page.inner_text("#run-status") == "running"
    pages.check("run-running")
    page.wait_for_selector("#run-status.status-succeeded", timeout=60_000)
    assert page.evaluate("window.notReloaded === true")  # the status came in place, the page stayed
    contacts = sandbox.records("contacts")
    assert sorted(c["properties"]["email"] for c in contacts) == sorted(NEWSLETTER)
    assert all("newsletter" in c["properties"]["connector_segments"].lower() for c in contacts)
    assert page.inner_text('[data-count="added"]') == str(len(contacts))
    assert page.inner_text('[data-count="rejected"]') == "0"
    pages.check("run")
    page.click("text=Newsletter to HubSpot")
    assert page.locator("#runs tbody tr").count() == 2  # the dry run and the run
    pages.check("sync-history")
    page.click("text=Edit")
    assert field(page, "m1.destination").input_value() == "connector_segments"
    assert "connector_segments" in page.inner_text("fieldset:has-text('Fields') p.hint")  # a real checkbox property now
    pages.check("sync-edit")
    page.click("nav >> text=Syncs")
    assert "succeeded" in page.inner_text("table")
    pages.check("syncs")


def test_a_viewer_cannot_edit_and_posts_without_csrf_or_role_are_refused(
    page, pages, live_server, client, database, editor
):
    segment_id = seed(client, editor)
    add_member(database, editor, "viewer@acme.example", Role.VIEWER)
    with database.session() as session:
        company_id = session.get(Workspace, editor.workspace_id).company_id
        other = Workspace(company_id=company_id, name="Acme EU", slug="acme-eu", parent_id=editor.workspace_id)
        session.add(other)
        session.flush()
        viewer_id = session.execute(
            WorkspaceMembership.__table__.select().where(WorkspaceMembership.workspace_id == editor.workspace_id)
        ).all()
        member_ids = [row.member_id for row in viewer_id]
        for member_id in member_ids:
            session.add(WorkspaceMembership(workspace_id=other.id, member_id=member_id, role=Role.VIEWER))

    sign_in(page, live_server, "viewer@acme.example")
    assert page.locator("text=New segment").count() == 0
    pages.check("viewer-segments")
    page.goto(live_server.url + f"/w/acme/segments/{segment_id}")
    assert page.locator("text=Delete segment").count() == 0
    assert page.locator("text=Rename").count() == 0
    pages.check("viewer-segment")
    token = page.locator('input[name="csrf_token"]').first.input_value()
    forged = page.request.post(live_server.url + f"/w/acme/segments/{segment_id}/delete", form={"csrf_token": token})
    assert forged.status == 403
    without_token = page.request.post(live_server.url + f"/w/acme/segments/{segment_id}/delete")
    assert without_token.status == 400
    assert client.get(editor.url(f"/segments/{segment_id}"), headers=editor.headers).status_code == 200

    page.goto(live_server.url + "/w/acme/segments/987654")
    assert "Not found" in page.inner_text("h1")
    pages.check("not-found")
    page.go_back()
    page.select_option("#ws-switch", "acme-eu")
    page.wait_for_url(re.compile(r".*/w/acme-eu/segments$"))
    assert "(HQ)" in page.inner_text("#ws-switch")
    pages.check("workspace-switched")
