"""Warehouses to read from: an SQLite file, a DuckDB file, a PostgreSQL database and a MariaDB database, real
each one, with a helper that runs SQL there; and a source and models made through the service layer."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from connector.security import SecretBox
from connector.sources import service
from connector.sources.config import ModelIn, SourceIn
from connector.sources.reader import FILE_DIRS_ENV, engine_url
from connector.testing.scratch import create_postgres_database, drop_postgres_database

POSTGRES_ADMIN_URL = os.environ.get("CONNECTOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("CONNECTOR_TEST_MARIADB_URL", "mysql://root@127.0.0.1:3306/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BOX = SecretBox("test-secret-key")


@dataclass
class Warehouse:
    kind: str
    url: str

    def run(self, *statements: str, params: list[dict] | dict | None = None) -> None:
        engine = create_engine(engine_url(self.url), poolclass=NullPool)
        try:
            with engine.begin() as connection:
                for statement in statements:
                    connection.execute(text(statement), params or {})
        finally:
            engine.dispose()

    def insert(self, table: str, rows: list[dict]) -> None:
        columns = list(rows[0])
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"
        engine = create_engine(engine_url(self.url), poolclass=NullPool)
        try:
            with engine.begin() as connection:
                connection.execute(text(sql), rows)
        finally:
            engine.dispose()


def _unavailable(what: str, exc: Exception):
    message = f"{what} is not reachable: {exc}"
    if IN_CI:
        pytest.fail(message + " (CI=true: it is required)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def _postgres_warehouse() -> Iterator[str]:
    name = f"connector_wh_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{uuid.uuid4().hex[:6]}"
    try:
        url = create_postgres_database(POSTGRES_ADMIN_URL, name)
    except Exception as exc:
        _unavailable("PostgreSQL", exc)
    yield url
    drop_postgres_database(POSTGRES_ADMIN_URL, name)


@pytest.fixture(scope="session")
def _mariadb_warehouse() -> Iterator[str]:
    name = f"connector_wh_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{uuid.uuid4().hex[:6]}"
    try:
        Warehouse("mariadb", MARIADB_URL).run(f"CREATE DATABASE {name}")
    except Exception as exc:
        _unavailable("MariaDB", exc)
    yield MARIADB_URL.rsplit("/", 1)[0] + "/" + name
    Warehouse("mariadb", MARIADB_URL).run(f"DROP DATABASE IF EXISTS {name}")


def _warehouse(kind: str, request, tmp_path) -> Warehouse:
    if kind == "sqlite":
        return Warehouse(kind, f"sqlite:///{tmp_path / 'warehouse.db'}")
    if kind == "duckdb":
        return Warehouse(kind, f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    if kind == "postgresql":
        return Warehouse(kind, request.getfixturevalue("_postgres_warehouse"))
    return Warehouse(kind, request.getfixturevalue("_mariadb_warehouse"))


@pytest.fixture(autouse=True)
def _file_warehouses_allowed(monkeypatch, tmp_path_factory) -> None:
    """File warehouses live under the test session's temporary directory, which the service is told to allow."""
    monkeypatch.setenv(FILE_DIRS_ENV, str(tmp_path_factory.getbasetemp()))


@pytest.fixture
def warehouse(request, tmp_path) -> Iterator[Warehouse]:
    """An SQLite file warehouse (the quick one)."""
    yield _warehouse("sqlite", request, tmp_path)


@pytest.fixture(params=["sqlite", "duckdb", "postgresql", "mariadb"])
def any_warehouse(request, tmp_path) -> Iterator[Warehouse]:
    """Each kind of warehouse in turn; its tables are dropped afterwards."""
    wh = _warehouse(request.param, request, tmp_path)
    yield wh
    if request.param in ("postgresql", "mariadb"):
        wh.run("DROP TABLE IF EXISTS people", "DROP TABLE IF EXISTS companies", "DROP TABLE IF EXISTS links")


def make_source(database, tenant, warehouse: Warehouse, name: str = "Warehouse"):
    with database.session() as session:
        return service.create_source(session, tenant.workspace_id, BOX, SourceIn(name=name, url=warehouse.url))


def make_model(database, tenant, source, **fields):
    fields.setdefault("name", "people")
    with database.session() as session:
        return service.create_model(session, tenant.workspace_id, source.id, ModelIn.model_validate(fields))
