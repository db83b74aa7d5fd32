"""Scratch databases for tests and benchmarks: an SQLite file in a temporary directory, or a PostgreSQL database
created beside the one a URL names (which must allow CREATE DATABASE) and dropped afterwards."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager


def admin_url(url: str) -> str:
    """A URL psycopg understands (no SQLAlchemy driver suffix)."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def create_postgres_database(url: str, name: str) -> str:
    """(Re)create database ``name`` on the server of ``url`` and return its URL."""
    import psycopg

    admin = admin_url(url)
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.rsplit("/", 1)[0] + "/" + name


def drop_postgres_database(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_database(url: str | None, prefix: str = "connector_scratch") -> Iterator[str]:
    """A fresh PostgreSQL database beside ``url``'s for the duration of the block, dropped afterwards.

    An SQLite URL is used as given; no URL means an SQLite file in a temporary directory.
    """
    if url is None or url.startswith("sqlite"):
        with tempfile.TemporaryDirectory(prefix="connector-scratch-") as tmp:
            yield url or f"sqlite:///{tmp}/scratch.db"
        return
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    scratch_url = create_postgres_database(url, name)
    try:
        yield scratch_url
    finally:
        drop_postgres_database(url, name)
