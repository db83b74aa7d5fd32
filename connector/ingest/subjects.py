"""Finding users and accounts named by the items of a batch, creating the missing ones: a few statements a batch.

Users are named by external id and/or email (the external id wins when both name someone), accounts by external
id. Missing subjects are inserted with ``ON CONFLICT DO NOTHING``; one that a concurrent request created first is
then read back, so two requests naming the same new person both end with the same user.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Table, bindparam, delete, select, tuple_, union, update
from sqlalchemy.orm import Session

from connector.changes import ChangeSet
from connector.ingest.batches import Batch, ItemResult
from connector.ingest.items import UserRef
from connector.ingest.statements import insert_missing, insert_rows, one_of
from connector.models import Account, AccountUser, User, utcnow

# How stale a user's updated_at may get while the user is active (see touch_users).
TOUCH_EVERY = timedelta(minutes=1)
# A concurrent writer can make an insert skip a row at most once per key; more rounds mean something else is wrong.
MAX_ROUNDS = 3

users = User.__table__
accounts = Account.__table__
account_users = AccountUser.__table__


class ConcurrentWriteError(Exception):
    """Concurrent requests kept changing the same subjects; the request may be sent again."""


@dataclass
class Resolved:
    """Ids of the subjects named, in the order they were named, and which of them were created now."""

    ids: list[int]
    created: set[int] = field(default_factory=set)


UserKey = tuple[str | None, str | None]  # (external_id, email)


def find_users(session: Session, workspace_id: int, keys: Iterable[UserKey], *columns, lock: bool = False):
    """Rows of the users any of these (external_id, email) keys name; ``lock`` takes row locks, in id order."""
    external_ids = sorted({e for e, _ in keys if e})
    emails = sorted({m for _, m in keys if m})
    # One index lookup per key column, united: "external_id IN … OR email IN …" can use neither unique index and
    # reads every user of the workspace.
    found = [
        select(users.c.id).where(users.c.workspace_id == workspace_id, one_of(session, column, values))
        for column, values in ((users.c.external_id, external_ids), (users.c.email, emails))
        if values
    ]
    if not found:
        return []
    query = (
        select(users.c.id, users.c.external_id, users.c.email, *columns)
        .where(users.c.id.in_(found[0] if len(found) == 1 else union(*found)))
        .order_by(users.c.id)
    )
    if lock:
        # FOR UPDATE, not NO KEY UPDATE: identify may change email/external_id, which are unique keys.
        query = query.with_for_update()
    return session.execute(query).all()


def resolve_users(session: Session, workspace_id: int, keys: Sequence[UserKey], now: datetime) -> Resolved:
    """The user each (external_id, email) key names, creating unknown users with both.

    Never changes an existing user's identity: a key whose external id is unknown but whose email is known names
    the user with that email.
    """
    created: set[int] = set()
    for _ in range(MAX_ROUNDS):
        by_external_id: dict[str, int | str] = {}
        by_email: dict[str, int | str] = {}
        for row in find_users(session, workspace_id, keys):
            if row.external_id is not None:
                by_external_id[row.external_id] = row.id
            if row.email is not None:
                by_email[row.email] = row.id
        named: list[int | str] = []
        new: dict[str, dict] = {}
        for external_id, email in keys:
            user = by_external_id.get(external_id) if external_id else None
            if user is None and email:
                user = by_email.get(email)
            if user is None:
                user = f"new:{len(new)}"
                new[user] = {
                    "workspace_id": workspace_id,
                    "external_id": external_id,
                    "email": email,
                    "attributes": {},
                    "created_at": now,
                    "updated_at": now,
                }
                if external_id:
                    by_external_id[external_id] = user
                if email:
                    by_email[email] = user
            named.append(user)
        if new:
            # In key order, so concurrent requests creating the same users wait for each other in the same order.
            rows = sorted(new.values(), key=lambda r: (r["external_id"] or "", r["email"] or ""))
            inserted = insert_missing(session, users, rows, returning=[users.c.id, users.c.external_id, users.c.email])
            created.update(row.id for row in inserted)
            if len(inserted) < len(new):
                continue  # someone else created some of them first: read them back
            ids_by_key = {(row.external_id, row.email): row.id for row in inserted}
            placeholders = {p: ids_by_key[(values["external_id"], values["email"])] for p, values in new.items()}
            named = [placeholders.get(u, u) if isinstance(u, str) else u for u in named]
        return Resolved([int(u) for u in named], created)
    raise ConcurrentWriteError("users changed concurrently; send the batch again")


def resolve_accounts(session: Session, workspace_id: int, external_ids: Iterable[str], now: datetime) -> Resolved:
    """The account of each external id (in the order given, deduplicated), creating stubs for unknown ones."""
    wanted = list(dict.fromkeys(external_ids))
    if not wanted:
        return Resolved([])
    created: set[int] = set()
    for _ in range(MAX_ROUNDS):
        found = dict(
            session.execute(
                select(accounts.c.external_id, accounts.c.id).where(
                    accounts.c.workspace_id == workspace_id, one_of(session, accounts.c.external_id, wanted)
                )
            ).all()
        )
        missing = sorted(e for e in wanted if e not in found)
        if missing:
            inserted = insert_missing(
                session,
                accounts,
                [
                    {
                        "workspace_id": workspace_id,
                        "external_id": e,
                        "attributes": {},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for e in missing
                ],
                returning=[accounts.c.id, accounts.c.external_id],
            )
            created.update(row.id for row in inserted)
            found.update({row.external_id: row.id for row in inserted})
            if len(inserted) < len(missing):
                continue
        return Resolved([found[e] for e in wanted], created)
    raise ConcurrentWriteError("accounts changed concurrently; send the batch again")


def touch_users(session: Session, user_ids: Iterable[int], now: datetime) -> None:
    """Move ``updated_at`` of these users to ``now`` for activity (events, devices), to within ``TOUCH_EVERY``.

    A user active in every batch is written at most once a minute, not once a batch: activity would otherwise
    rewrite the same user rows thousands of times a minute. Rows another transaction is touching right now are
    skipped (it sets them to the same moment), so concurrent batches never wait on each other here.
    """
    ids = sorted(set(user_ids))
    if not ids:
        return
    # NO KEY UPDATE does not conflict with the KEY SHARE locks that inserting events takes on their users.
    stale = (
        select(users.c.id)
        .where(one_of(session, users.c.id, ids), users.c.updated_at < now - TOUCH_EVERY)
        .order_by(users.c.id)
        .with_for_update(key_share=True, skip_locked=True)
    )
    session.execute(update(users).where(users.c.id.in_(stale.scalar_subquery())).values(updated_at=now))


def change_account_links(
    session: Session, workspace_id: int, add: set[tuple[int, int]], remove: set[tuple[int, int]]
) -> set[tuple[int, int]]:
    """Link and unlink (user id, account id) pairs; return the pairs that really changed."""
    pairs = add | remove
    if not pairs:
        return set()
    present = set(
        session.execute(
            select(account_users.c.user_id, account_users.c.account_id).where(
                tuple_(account_users.c.user_id, account_users.c.account_id).in_(sorted(pairs))
            )
        ).all()
    )
    to_add = sorted(add - present - remove)
    to_remove = sorted(remove & present)
    if to_add:
        insert_rows(
            session, account_users, [{"user_id": u, "account_id": a, "workspace_id": workspace_id} for u, a in to_add]
        )
    if to_remove:
        session.execute(
            delete(account_users).where(tuple_(account_users.c.user_id, account_users.c.account_id).in_(to_remove))
        )
    return set(to_add) | set(to_remove)


# -- the shapes every batch of one kind shares -------------------------------------------------------------------------

RefT = TypeVar("RefT", bound=UserRef)


@dataclass
class ByUser(Generic[RefT]):
    """A validated batch whose items each name a user (events, devices), with those users resolved: ``user_ids``
    follows ``valid``; users created for it are in ``changes`` already."""

    batch: Batch[RefT]
    valid: list[tuple[ItemResult, RefT]]
    user_ids: list[int]
    changes: ChangeSet
    now: datetime


def batch_by_user(
    session: Session, workspace_id: int, model: type[RefT], raw_items: Sequence[Any], partial: bool
) -> ByUser[RefT]:
    """Validate a batch (``BatchRejectedError`` when an item is invalid and not ``partial``) and resolve the user
    each valid item names, creating the unknown ones."""
    batch = Batch(model, raw_items)
    batch.check(partial)
    valid = batch.valid()
    changes = ChangeSet()
    now = utcnow()
    user_ids: list[int] = []
    if valid:
        resolved = resolve_users(session, workspace_id, [(item.external_id, item.email) for _, item in valid], now)
        changes.add_users(resolved.created, "subject")
        user_ids = resolved.ids
    return ByUser(batch, valid, user_ids, changes, now)


class Upserted(Protocol):
    """A subject as an upsert batch leaves it (``identify``'s users, ``group``'s accounts)."""

    id: int | None
    stored: tuple | None
    results: list[ItemResult]


UpsertedT = TypeVar("UpsertedT", bound=Upserted)


def plan_and_insert(
    plan: Callable[[], list[UpsertedT]], insert_new: Callable[[list[UpsertedT]], bool], what: str
) -> list[UpsertedT]:
    """Plan a batch against the stored subjects and insert the new ones; when a concurrent request created some of
    them first (``insert_new`` says False), plan again against what is stored now, up to ``MAX_ROUNDS``."""
    for _ in range(MAX_ROUNDS):
        planned = plan()
        if insert_new(planned):
            return planned
    raise ConcurrentWriteError(f"{what} changed concurrently; send the batch again")


def update_subjects(session: Session, table: Table, rows: list[dict[str, Any]], now: datetime) -> None:
    """One executemany UPDATE of changed subjects: each row is ``id`` and the columns' new values."""
    if not rows:
        return
    columns = [name for name in rows[0] if name != "id"]
    session.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values({**{name: bindparam(f"b_{name}", type_=table.c[name].type) for name in columns}, "updated_at": now}),
        [{f"b_{name}": value for name, value in row.items()} for row in rows],
    )


def settle(planned: Iterable[Upserted]) -> None:
    """Give each item's result the id of its subject and whether the batch created it."""
    for subject in planned:
        for result in subject.results:
            result.id = subject.id
            result.created = subject.stored is None
