"""``insert_missing``: rows found missing are inserted by a plain INSERT first (PostgreSQL), and when a concurrent
writer created some of them meanwhile, the rest still go in, once."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from connector.ingest.statements import PLAIN_INSERT_MIN, insert_missing
from connector.models import User, utcnow

USERS = User.__table__
RETURNING = [USERS.c.id, USERS.c.email]


def rows(workspace_id: int, emails: list[str]) -> list[dict]:
    now = utcnow()
    return [
        {"workspace_id": workspace_id, "email": e, "attributes": {}, "created_at": now, "updated_at": now}
        for e in emails
    ]


def emails(n: int, start: int = 0) -> list[str]:
    return [f"m{i}@example.com" for i in range(start, start + n)]


def test_new_rows_are_inserted_and_returned(database, tenant):
    wanted = emails(PLAIN_INSERT_MIN + 8)
    with database.session() as session:
        inserted = insert_missing(session, USERS, rows(tenant.workspace_id, wanted), returning=RETURNING)
    assert sorted(r.email for r in inserted) == sorted(wanted)


def test_rows_a_concurrent_writer_created_are_skipped_and_the_rest_inserted_once(database, tenant):
    wanted = emails(PLAIN_INSERT_MIN * 2)
    with database.session() as session:  # the other writer, first
        insert_missing(session, USERS, rows(tenant.workspace_id, wanted[5:8]), returning=RETURNING)

    with database.session() as session:
        inserted = insert_missing(session, USERS, rows(tenant.workspace_id, wanted), returning=RETURNING)
        # The transaction goes on after the plain INSERT met the unique index.
        total = session.scalar(select(func.count()).select_from(USERS))

    assert sorted(r.email for r in inserted) == sorted(wanted[:5] + wanted[8:])
    assert total == len(wanted)


def test_other_errors_are_raised(database, tenant):
    missing_workspace = tenant.workspace_id + 1000
    with pytest.raises(IntegrityError), database.session() as session:
        insert_missing(session, USERS, rows(missing_workspace, emails(PLAIN_INSERT_MIN)), returning=RETURNING)
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(USERS)) == 0
