"""Fixtures of the web UI tests: members with passwords, a live server on a free port, and headless Chromium.

The browser is Debian's ``chromium`` (installed by ``make test`` / ``.ci/run`` when missing and root), driven by
Playwright for Python through ``executable_path`` (no browser is ever downloaded). Without it the browser tests
are skipped locally and fail under ``CI=true``. Every page a journey visits is screenshotted to ``var/screenshots/``
(git-ignored) and checked with axe-core (bundled by ``axe-playwright-python``): no serious or critical violation.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from connector import logins
from connector.models import Member, Role
from connector.tenancy import create_member
from connector.testing.hubspot_sandbox import HubSpotSandbox
from tests.conftest import IN_CI, Tenant

CHROMIUM = os.environ.get("CONNECTOR_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
PASSWORD = "correct horse battery staple"
SANDBOX_TOKEN = "ui-sandbox-token-5d1c"


def set_password(database, email: str, password: str = PASSWORD) -> None:
    with database.session() as session:
        member = session.scalars(select(Member).where(Member.email == email)).one()
        logins.set_password(session, member, password)


def add_member(database, tenant: Tenant, email: str, role: Role, password: str = PASSWORD) -> None:
    from connector.models import Company, Workspace

    with database.session() as session:
        workspace = session.get(Workspace, tenant.workspace_id)
        member = create_member(session, session.get(Company, tenant.company_id), email, roles={workspace: role})
        logins.set_password(session, member, password)


@pytest.fixture
def editor(database, tenant) -> Tenant:
    """The ``acme`` tenant whose admin (``admin@acme.example``) has the password ``PASSWORD``."""
    set_password(database, "admin@acme.example")
    return tenant


def add_hubspot_sync(client, tenant: Tenant, sandbox: HubSpotSandbox, name: str = "everyone", **sync) -> dict:
    """A HubSpot destination on the sandbox and a sync of users' emails to its contacts, made over the API; returns
    the sync's document. ``sync`` adds to or overrides the sync's fields (``segment_ids``, …)."""
    destination = client.post(
        tenant.url("/destinations"),
        json={
            "name": f"{name} destination",
            "type": "hubspot",
            "config": {"access_token": SANDBOX_TOKEN, "base_url": sandbox.url},
        },
        headers=tenant.headers,
    ).get_json()
    document = {
        "name": name,
        "destination_id": destination["id"],
        "subject_type": "users",
        "destination_object": "contacts",
        "mappings": [{"source": {"kind": "field", "name": "email"}, "destination": "email"}],
        "identity": {"destination": "email"},
        **sync,
    }
    return client.post(tenant.url("/syncs"), json=document, headers=tenant.headers).get_json()


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def sign_in(client, email: str = "admin@acme.example", password: str = PASSWORD):
    token = csrf_token(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


# -- live server and browser -----------------------------------------------------------------------------------------


@dataclass
class LiveServer:
    url: str


@pytest.fixture
def live_server(app) -> Iterator[LiveServer]:
    """The app served over HTTP on a free port, in a thread, for the length of one test."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="ui-live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def _chromium():
    if not os.path.exists(CHROMIUM):
        message = f"no Chromium at {CHROMIUM} (apt-get install chromium; `make test` does it as root)"
        if IN_CI:
            pytest.fail(message + " (CI=true: the browser tests are required)", pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture
def page(_chromium, request):
    """A fresh browser tab at 1280x800 (cookies of its own)."""
    context = _chromium.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def sandbox() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(port=0, token=SANDBOX_TOKEN) as server:
        yield server


class Pages:
    """Screenshot and accessibility check of every page a journey visits."""

    def __init__(self, page, prefix: str) -> None:
        from axe_playwright_python.sync_playwright import Axe

        self.page, self.prefix, self.axe, self.seen = page, prefix, Axe(), 0

    def check(self, name: str) -> None:
        self.page.wait_for_load_state("networkidle")
        self.seen += 1
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{self.prefix}-{self.seen:02d}-{name}.png"), full_page=True)
        results = self.axe.run(self.page)
        serious = [
            f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
            for v in results.response["violations"]
            if v.get("impact") in ("serious", "critical")
        ]
        assert not serious, f"accessibility violations on {name}: {serious}"


@pytest.fixture
def pages(page, request, database_url) -> Pages:
    backend = "pg" if database_url.startswith("postgresql") else "sqlite"
    return Pages(page, f"{request.node.originalname}-{backend}")
