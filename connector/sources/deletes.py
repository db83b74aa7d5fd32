"""Undoing rows gone from a model's source, as the model says: ``clear`` or ``remove``.

- account links (either setting): the user–account link the row made is removed;
- ``clear`` (users, accounts): the row's attribute columns are cleared, through the same ``identify`` / ``group``
  as any batch;
- ``remove`` (users, accounts): the subject the row named is erased the way the erasure API does it
  (``connector.ingest.erasure.erase_subjects``): its data, memberships, history and computed values go, an audit
  record remains, and mirror syncs remove or clear the remote record at their next run.

Either way the changes go through ``apply_changes``, so segments and ``Segments`` follow in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.changes import ChangeSet
from connector.ingest.accounts import group
from connector.ingest.erasure import erase_subjects
from connector.ingest.statements import one_of
from connector.ingest.users import identify
from connector.models import Account, ModelKind, SubjectType, User
from connector.segments.incremental import apply_changes
from connector.sources.rows import Layout, cleared_item
from connector.text import normalize_email

REMOVE = "remove"
SUBJECTS = {ModelKind.USERS: SubjectType.USER, ModelKind.ACCOUNTS: SubjectType.ACCOUNT}


def undo_rows(session: Session, workspace_id: int, model_id: int, layout: Layout, deletes: str, keys: Sequence[str]):
    """Undo the rows of these keys (rows written before, gone from the source now); the caller commits."""
    if deletes == REMOVE and layout.kind in SUBJECTS:
        ids = subject_ids(session, workspace_id, layout, keys)
        _, changes = erase_subjects(
            session, workspace_id, SUBJECTS[layout.kind], ids, reason=f"gone from source model {model_id}"
        )
    else:
        ingest = group if layout.kind == ModelKind.ACCOUNTS else identify
        changes = ingest(session, workspace_id, [cleared_item(layout, k) for k in keys], partial=True).changes
    apply_changes(session, workspace_id, changes or ChangeSet())


def subject_ids(session: Session, workspace_id: int, layout: Layout, keys: Sequence[str]) -> list[int]:
    """The ids of the users or accounts these row keys name (keys naming nobody are left out)."""
    if layout.kind == ModelKind.ACCOUNTS:
        column, table = Account.external_id, Account
    elif layout.mapping.get("external_id"):
        column, table = User.external_id, User
    else:
        column, table = User.email, User
        keys = [e for e in (_email(k) for k in keys) if e is not None]
    if not keys:
        return []
    return list(
        session.scalars(select(table.id).where(table.workspace_id == workspace_id, one_of(session, column, keys)))
    )


def _email(key: str) -> str | None:
    """A key as the email it names, stored normalised (None when it is no email: it never named a user)."""
    try:
        return normalize_email(key)
    except ValueError:
        return None
