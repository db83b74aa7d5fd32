"""Fixtures shared by the whole suite.

Every test that asks for ``database`` (or anything built on it: ``app``, ``client``, ``tenant``) runs once on
SQLite and once on PostgreSQL. The schema is built by ``alembic upgrade head`` once per backend per test session,
in a database of its own; after each test every table is emptied, so tests may use several connections, threads
and processes and still leave nothing behind.

PostgreSQL: ``CONNECTOR_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``) is used to
create and drop a scratch database. When it cannot be reached the PostgreSQL half is skipped, except under
``CI=true``, where that is a failure. ``CONNECTOR_TEST_BACKENDS=sqlite`` (or ``postgresql``) runs one half only.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import inspect, text

from connector import create_app
from connector.config import Settings
from connector.db import Database
from connector.migrate import upgrade
from connector.segments import evaluation
from connector.testing.scratch import admin_url, create_postgres_database, drop_postgres_database

POSTGRES_ADMIN_URL = os.environ.get("CONNECTOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = [b.strip() for b in os.environ.get("CONNECTOR_TEST_BACKENDS", "sqlite,postgresql").split(",") if b.strip()]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _postgres_scratch_database(name: str) -> str:
    """Create a scratch database next to the admin one and return its URL."""
    import psycopg

    try:
        return create_postgres_database(POSTGRES_ADMIN_URL, name)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable at {admin_url(POSTGRES_ADMIN_URL)}: {exc}"
        if IN_CI:
            pytest.fail(message + " (CI=true: PostgreSQL is required)", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request, tmp_path_factory) -> Iterator[str]:
    """A migrated database of one backend, for the whole test session."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / f'connector-{worker}.db'}"
        upgrade(url)
        yield url
        return
    name = f"connector_test_{worker}_{uuid.uuid4().hex[:8]}"
    url = _postgres_scratch_database(name)
    try:
        upgrade(url)
        yield url
    finally:
        drop_postgres_database(POSTGRES_ADMIN_URL, name)


@pytest.fixture(scope="session")
def _session_database(database_url) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


@pytest.fixture
def database(_session_database: Database) -> Iterator[Database]:
    """The test's database, emptied after the test."""
    yield _session_database
    empty_database(_session_database)


def empty_database(db: Database) -> None:
    with db.engine.begin() as conn:
        tables = [t for t in inspect(conn).get_table_names() if t != "alembic_version"]
        if db.dialect == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
            for table in tables:
                conn.exec_driver_sql(f'DELETE FROM "{table}"')
            if conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").first():
                conn.exec_driver_sql("DELETE FROM sqlite_sequence")


@pytest.fixture
def settings(database_url) -> Settings:
    return Settings(database_url=database_url, secret_key="test-secret-key")


@pytest.fixture
def app(settings, database):
    app = create_app(settings, database=database)
    app.config["TESTING"] = True
    yield app
    # Segments saved through the API are evaluated on an executor: none may outlive its test's database.
    assert evaluation.wait_idle(timeout=60), "a segment evaluation is still running"


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@dataclass
class Tenant:
    """A company with a workspace and an admin token, for API tests."""

    company_id: int
    workspace_id: int
    workspace: str
    member_id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def url(self, path: str = "") -> str:
        return f"/api/v1/workspaces/{self.workspace}{path}"


def make_tenant(database: Database, slug: str, role=None) -> Tenant:
    from connector.models import Role
    from connector.tenancy import create_company, create_member, create_token, create_workspace

    with database.session() as session:
        company = create_company(session, f"{slug} Inc")
        workspace = create_workspace(session, company, slug.title(), slug=slug)
        member = create_member(
            session, company, f"admin@{slug}.example", "Admin", roles={workspace: role or Role.WORKSPACE_ADMIN}
        )
        token = create_token(session, member, "tests")
        return Tenant(company.id, workspace.id, workspace.slug, member.id, token)


@pytest.fixture
def tenant(database) -> Tenant:
    """Workspace ``acme`` with an admin token."""
    return make_tenant(database, "acme")


@pytest.fixture
def other_tenant(database) -> Tenant:
    """Workspace ``globex`` of another company, for isolation tests."""
    return make_tenant(database, "globex")
