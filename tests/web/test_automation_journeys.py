"""Automation journeys in headless Chromium against a live server (both databases): a sequence, a segment's daily
action, a view with a ``segment`` not-in leaf, and a playbook that fires when someone enters its segment. Every
page is screenshotted and checked with axe-core (``Pages.check``)."""

from __future__ import annotations

import re
import time

import pytest

from connector.scheduling.automation import process_once
from tests.web.test_journeys import field, seed, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SEQUENCE = {"name": "Welcome", "channels": ["email", "sms"], "steps": [{"name": "Hello", "delay_minutes": 0}]}


def _api(client, tenant, method: str, path: str, **kwargs):
    return client.open(tenant.url(path), method=method, headers=tenant.headers, **kwargs)


def test_editor_creates_a_sequence_and_enrols_a_person_by_hand(page, pages, live_server, client, editor):
    seed(client, editor)
    person = _api(client, editor, "GET", "/users?limit=1").get_json()["data"][0]
    sign_in(page, live_server)
    page.click("nav >> text=Sequences")
    pages.check("sequences-empty")
    page.click("text=New sequence")
    page.fill("#name", "Onboarding")
    page.check('[name="channel-sms"]')
    field(page, "steps-0-name").fill("Welcome")
    field(page, "steps-0-delay").fill("0")
    field(page, "steps-1-name").fill("Tips")
    field(page, "steps-1-delay").fill("-1")
    page.fill("#webhook_secret", "a-secret-value")
    pages.check("sequence-form")
    page.click("text=Save sequence")
    page.wait_for_selector("p.error#steps-error")
    pages.check("sequence-form-refused")
    field(page, "steps-1-delay").fill("1440")
    page.click("text=Save sequence")
    page.wait_for_url(re.compile(r".*/w/acme/sequences/\d+$"))
    pages.check("sequence")
    page.fill("#user_ids", str(person["id"]))
    page.click("button:has-text('Enrol')")
    page.wait_for_selector("#notice:has-text('Enrolled 1')")
    assert page.locator("#enrolments tbody tr").count() == 1
    pages.check("sequence-enrolled")
    [sequence] = _api(client, editor, "GET", "/sequences").get_json()["data"]
    assert sequence["steps"] == [{"name": "Welcome", "delay_minutes": 0}, {"name": "Tips", "delay_minutes": 1440}]
    assert sequence["channels"] == ["email", "sms"] and sequence["webhook_secret"] is None


def test_editor_sets_a_segments_daily_action_from_its_page(page, pages, live_server, client, editor):
    newsletter = seed(client, editor)
    _api(client, editor, "POST", "/sequences", json=SEQUENCE)
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/w/acme/segments/{newsletter}")
    page.click("text=Daily action")
    pages.check("segment-action-empty")
    page.fill("#time", "09:30")
    page.fill("#timezone", "Europe/Berlin")
    page.select_option("#fallback_channel", "sms")
    page.click("text=Save action")
    page.wait_for_selector("#notice:has-text('Saved.')")
    pages.check("segment-action")
    assert re.search(r"\d{4}-\d\d-\d\d 09:30 Europe/Berlin", page.inner_text("#next-run"))
    action = _api(client, editor, "GET", f"/segments/{newsletter}/action").get_json()
    assert (action["time"], action["timezone"], action["fallback_channel"]) == ("09:30", "Europe/Berlin", "sms")
    assert action["next_run_at"] is not None


def test_editor_builds_a_view_with_a_segment_not_in_leaf_and_its_count_is_the_apis(
    page, pages, live_server, client, editor
):
    newsletter = seed(client, editor)
    sign_in(page, live_server)
    page.click("nav >> text=Views")
    pages.check("views-empty")
    page.click("text=New view of people")
    page.fill("#name", "Not in the newsletter")
    page.click('button[value="add:n:segment"]')
    field(page, "n.0.operator").select_option("not_in")
    field(page, "n.0.segment_id").select_option(str(newsletter))
    page.fill("#columns", "id\nemail\nattributes.country")
    page.select_option("#sort_by", "email")
    pages.check("view-form")
    page.click("text=Save view")
    page.wait_for_url(re.compile(r".*/w/acme/views/\d+$"))
    pages.check("view")
    view_id = int(page.url.rsplit("/", 1)[1])
    count = _api(client, editor, "GET", f"/views/{view_id}/count").get_json()["count"]
    assert count == 3
    assert page.get_attribute("#view-count", "data-count") == str(count)
    emails = page.locator("#view-rows tbody tr td:nth-child(2)").all_inner_texts()
    assert emails == ["ana@acme.example", "cy@acme.example", "ed@acme.example"]


def test_editor_creates_a_playbook_and_sees_a_firing_after_a_person_enters_its_segment(
    page, pages, live_server, client, editor, app, database
):
    newsletter = seed(client, editor)
    sequence = _api(client, editor, "POST", "/sequences", json=SEQUENCE).get_json()
    sign_in(page, live_server)
    page.click("nav >> text=Playbooks")
    pages.check("playbooks-empty")
    page.click("text=New playbook on people")
    page.fill("#name", "Welcome subscribers")
    page.select_option("#trigger_kind", "enters")
    page.select_option("#segment_id", str(newsletter))
    page.select_option("#actions-0-type", "enrol")
    page.select_option("#actions-0-sequence_id", str(sequence["id"]))
    pages.check("playbook-form")
    page.click("text=Save playbook")
    page.wait_for_url(re.compile(r".*/w/acme/playbooks/\d+$"))
    page.wait_for_selector("text=No firings yet")
    pages.check("playbook")

    tagged = {"external_id": "u1", "tags": ["newsletter"]}
    assert _api(client, editor, "POST", "/identify", json={"batch": [tagged]}).status_code == 200
    # The scheduler's pass, as it runs: history rows are read once they settle (a second old).
    deadline = time.monotonic() + 30
    while process_once(database, app.config["SETTINGS"].secret_key)["history"] == 0:
        assert time.monotonic() < deadline, "the entry was never read from the membership history"
        time.sleep(0.3)
    page.reload()
    page.wait_for_selector("#firings")
    pages.check("playbook-fired")
    rows = page.locator("#firings tbody tr")
    assert rows.count() == 1
    assert rows.locator("td.status-succeeded").count() == 1
    enrolments = _api(client, editor, "GET", f"/enrolments?sequence_id={sequence['id']}").get_json()["data"]
    assert [e["source"] for e in enrolments] == ["playbook"]
