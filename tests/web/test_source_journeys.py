"""Journeys through the sources, list sync and alerts pages in headless Chromium against a live server (both
databases); every page is screenshotted and checked with axe-core (``Pages.check``)."""

from __future__ import annotations

import re
import sqlite3

import pytest

from connector.models import Alert, AlertKind
from connector.sources.reader import FILE_DIRS_ENV
from tests.web.conftest import add_hubspot_sync
from tests.web.test_journeys import field, seed, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_an_sqlite_source_with_a_users_model_is_tested_run_and_its_people_appear(
    page, pages, live_server, client, editor, tmp_path, monkeypatch
):
    monkeypatch.setenv(FILE_DIRS_ENV, str(tmp_path))
    path = tmp_path / "warehouse.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE people (id TEXT, email TEXT, plan TEXT, updated_at TEXT)")
        connection.executemany(
            "INSERT INTO people VALUES (?, ?, ?, ?)",
            [
                ("w1", "wan@acme.example", "pro", "2026-01-01 00:00:01"),
                ("w2", "wu@acme.example", "free", "2026-01-01 00:00:02"),
                ("w3", "not-an-email", "pro", "2026-01-01 00:00:03"),
            ],
        )
    sign_in(page, live_server)
    page.click("nav >> text=Sources")
    pages.check("sources-empty")
    page.click("text=Add a source")
    page.fill("#name", "Warehouse")
    page.fill("#url", f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}")
    pages.check("source-new")
    page.click('button[value="save"]')
    page.wait_for_selector("text=Saved.")
    page.click("#test-connection")
    page.wait_for_selector("#check-result.error")
    assert page.locator("#url-error").inner_text() != ""
    pages.check("source-check-failed")
    page.fill("#url", f"sqlite:///{path}")
    page.click('button[value="check"]')
    page.wait_for_selector("#check-result.ok")
    assert page.locator("#url").input_value() == ""
    assert "stored" in page.locator("#url").get_attribute("placeholder")
    pages.check("source-check-ok")

    page.click("text=Add a model")
    page.fill("#name", "users")
    page.select_option("#kind", "users")
    page.fill("#query", "SELECT id, email, plan, updated_at FROM people")
    field(page, "mapping.external_id").fill("id")
    field(page, "mapping.email").fill("email")
    page.fill("#cursor_column", "updated_at")
    pages.check("model-new")
    page.click('button[value="save"]')
    page.wait_for_selector("#check-result.ok")
    assert "plan" in page.inner_text("#check-result")
    pages.check("model-checked")

    page.click("text=Run now")
    page.wait_for_url(re.compile(r".*/runs/\d+$"))
    page.wait_for_selector("#run-status:not(.status-running)", timeout=60_000)
    assert page.inner_text("#run-status") == "partial"  # one row was refused
    assert page.inner_text('[data-count="rows_read"]') == "3"
    assert page.inner_text('[data-count="created"]') == "2"
    assert page.inner_text('[data-count="invalid"]') == "1"
    assert "w3" in page.inner_text("#run-errors")
    pages.check("source-run")
    page.click("h1 >> text=users")
    assert page.locator("#runs tbody tr").count() == 1
    pages.check("model-runs")

    page.click("nav >> text=People")
    page.wait_for_selector("text=wan@acme.example")
    assert "wu@acme.example" in page.content()
    pages.check("people-from-source")


def test_a_list_sync_turned_on_in_the_ui_keeps_the_segment_s_list_in_the_sandbox(
    page, pages, live_server, client, editor, sandbox
):
    newsletter = seed(client, editor)
    sync = add_hubspot_sync(client, editor, sandbox, "Newsletter list", segment_ids=[newsletter])
    sign_in(page, live_server)
    page.goto(live_server.url + f"/w/acme/syncs/{sync['id']}")
    page.click("#lists-link")
    assert "not created yet" in page.inner_text("#lists")
    pages.check("lists-off")
    page.check("#enabled")
    page.click("#lists-form button[type=submit]")
    page.wait_for_selector("text=Saved.")
    pages.check("lists-on")

    page.click("h1 >> text=Newsletter list")
    page.click("text=Run now")
    page.wait_for_url(re.compile(r".*/runs/\d+$"))
    page.wait_for_selector("#run-status.status-succeeded", timeout=60_000)
    page.click("h1 >> text=Newsletter list")
    page.click("#lists-link")
    remote = sandbox.lists()["Newsletter"]
    assert page.inner_text(f'[data-list-id="{newsletter}"]') == str(remote["listId"])
    assert page.inner_text(f'[data-members="{newsletter}"]') == "2" == str(len(remote["members"]))
    assert "succeeded" in page.inner_text("#last-run")
    pages.check("lists-filled")


def test_an_open_alert_shows_a_badge_and_is_listed_with_its_sync(
    page, pages, live_server, client, database, editor, sandbox
):
    sync = add_hubspot_sync(client, editor, sandbox, "Nightly")
    sign_in(page, live_server)
    page.click("nav >> text=Alerts")
    assert page.locator("#alerts-badge").count() == 0
    pages.check("alerts-none")
    with database.session() as session:
        session.add(
            Alert(
                workspace_id=editor.workspace_id,
                sync_id=sync["id"],
                kind=AlertKind.OVERDUE,
                message="the run due at 02:00 has not started",
            )
        )
    page.reload()
    assert page.inner_text("#alerts-badge").startswith("1")
    assert "has not started" in page.inner_text("#open-alerts")
    pages.check("alerts-open")
    page.click("#open-alerts >> text=Nightly")
    page.wait_for_url(re.compile(rf".*/syncs/{sync['id']}$"))
