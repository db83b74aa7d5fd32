"""Adding and removing tags of users or accounts, a batch at a time."""

from __future__ import annotations

from sqlalchemy import Table, delete, select, tuple_
from sqlalchemy.orm import Session

from connector.ingest.statements import insert_rows, one_of


def apply_tag_changes(
    session: Session, table: Table, owner: str, workspace_id: int, wanted: dict[int, dict[str, bool]]
) -> set[int]:
    """Apply ``{owner id: {tag: True to add, False to remove}}``; return the owners whose tags really changed.

    ``table`` is ``user_tags`` or ``account_tags`` and ``owner`` its owner column (``user_id``/``account_id``).
    """
    wanted = {owner_id: ops for owner_id, ops in wanted.items() if ops}
    if not wanted:
        return set()
    owner_column = table.c[owner]
    present = set(session.execute(select(owner_column, table.c.tag).where(one_of(session, owner_column, wanted))).all())
    to_add = [
        {owner: owner_id, "tag": tag, "workspace_id": workspace_id}
        for owner_id, ops in wanted.items()
        for tag, add in ops.items()
        if add and (owner_id, tag) not in present
    ]
    to_remove = [
        (owner_id, tag)
        for owner_id, ops in wanted.items()
        for tag, add in ops.items()
        if not add and (owner_id, tag) in present
    ]
    if to_add:
        # One statement (``insert_rows``): an executemany of a batch's tags cost more than the rest of the batch.
        insert_rows(session, table, to_add)
    if to_remove:
        session.execute(delete(table).where(tuple_(owner_column, table.c.tag).in_(to_remove)))
    return {row[owner] for row in to_add} | {owner_id for owner_id, _ in to_remove}
