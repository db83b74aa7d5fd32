"""``identify``: create or update users, their attributes, tags and account links, a batch at a time.

The batch is planned in memory against the users it names (read once, locked), then written with a handful of
statements whatever its size: one INSERT of the new users, one executemany UPDATE of the changed ones, and bulk
statements for tags, account links and objects waiting for these users' external ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.changes import ChangeSet
from connector.ingest.attributes import merge_attributes
from connector.ingest.batches import Batch, BatchResult, ItemResult
from connector.ingest.items import IdentifyItem
from connector.ingest.objects import link_objects
from connector.ingest.statements import insert_missing
from connector.ingest.subjects import (
    accounts,
    change_account_links,
    find_users,
    plan_and_insert,
    resolve_accounts,
    settle,
    touch_users,
    update_subjects,
    users,
)
from connector.ingest.tags import apply_tag_changes
from connector.models import UserTag, utcnow


@dataclass
class _User:
    """One user as the batch leaves it."""

    id: int | None
    external_id: str | None
    email: str | None
    attributes: dict[str, Any]
    # (external_id, email, attributes, default_channel) as stored; None for a user this batch creates.
    stored: tuple | None = None
    results: list[ItemResult] = field(default_factory=list)
    tags: dict[str, bool] = field(default_factory=dict)
    accounts: dict[str, bool] = field(default_factory=dict)
    default_channel: str | None = None

    @property
    def identity_changed(self) -> bool:
        return self.stored is None or (self.external_id, self.email) != self.stored[:2]

    @property
    def changed(self) -> bool:
        return (
            self.stored is None or (self.external_id, self.email, self.attributes, self.default_channel) != self.stored
        )


def identify(session: Session, workspace_id: int, raw_items: Sequence[Any], *, partial: bool = False) -> BatchResult:
    """Upsert the users of a batch (see ``IdentifyItem`` for the semantics); the caller commits.

    Raises ``BatchRejectedError`` when an item is invalid (or conflicts with another user) and ``partial`` is
    false; nothing is written then.
    """
    batch = Batch(IdentifyItem, raw_items)
    batch.check(partial)
    now = utcnow()

    def plan() -> list[_User]:
        planned = _plan(session, workspace_id, batch)
        batch.check(partial)
        return planned

    planned = plan_and_insert(plan, lambda p: _insert_new(session, workspace_id, p, now), "users")
    changes = ChangeSet()
    changed = [u for u in planned if u.stored is not None and u.changed]
    update_subjects(
        session,
        users,
        [
            {
                "id": u.id,
                "external_id": u.external_id,
                "email": u.email,
                "attributes": u.attributes,
                "default_channel": u.default_channel,
            }
            for u in changed
        ],
        now,
    )
    changes.add_users([u.id for u in changed], "attribute")
    # Identified again without news: activity, like an event.
    touch_users(session, [u.id for u in planned if u.stored is not None and not u.changed], now)

    created = [u.id for u in planned if u.stored is None]
    changes.add_users(created, "subject")
    tagged = apply_tag_changes(session, UserTag.__table__, "user_id", workspace_id, {u.id: u.tags for u in planned})
    changes.add_users(tagged, "tag")
    _link_accounts(session, workspace_id, planned, changes, now)
    changes.merge(link_objects(session, workspace_id, user_ids=[u.id for u in planned if u.identity_changed]))

    settle(planned)
    return batch.result(changes)


def _plan(session: Session, workspace_id: int, batch: Batch[IdentifyItem]) -> list[_User]:
    """Apply the valid items in order to the users they name, in memory; reject items that conflict."""
    valid = batch.valid()
    rows = find_users(
        session,
        workspace_id,
        [(item.external_id, item.email) for _, item in valid],
        users.c.attributes,
        users.c.default_channel,
        lock=True,
    )
    by_external_id: dict[str, _User] = {}
    by_email: dict[str, _User] = {}
    planned: list[_User] = []
    for row in rows:
        user = _User(
            row.id, row.external_id, row.email, dict(row.attributes or {}), default_channel=row.default_channel
        )
        user.stored = (row.external_id, row.email, dict(row.attributes or {}), row.default_channel)
        planned.append(user)
        if user.external_id is not None:
            by_external_id[user.external_id] = user
        if user.email is not None:
            by_email[user.email] = user

    for result, item in valid:
        found_by_id = by_external_id.get(item.external_id) if item.external_id else None
        found_by_email = by_email.get(item.email) if item.email else None
        user = found_by_id or found_by_email
        if user is None:
            user = _User(None, item.external_id, item.email, {})
            planned.append(user)
        elif item.external_id and user.external_id not in (None, item.external_id):
            result.reject("email", "belongs to a user with another external_id")
            continue
        elif item.email and found_by_email is not None and found_by_email is not user:
            result.reject("email", "belongs to another user")
            continue
        if item.external_id:
            user.external_id = item.external_id
            by_external_id[item.external_id] = user
        if item.email:
            # The old email stays claimed by this user for the rest of the batch: handing it to another user in
            # the same batch would depend on the order the rows are written.
            user.email = item.email
            by_email[item.email] = user
        user.attributes = merge_attributes(user.attributes, item.attributes)
        if item.default_channel is not None:
            user.default_channel = item.default_channel
        if item.tags or item.remove_tags:
            user.tags.update({t: True for t in item.tags} | {t: False for t in item.remove_tags})
        if item.accounts or item.remove_accounts:
            user.accounts.update({a: True for a in item.accounts} | {a: False for a in item.remove_accounts})
        user.results.append(result)
    return [u for u in planned if u.results]


def _insert_new(session: Session, workspace_id: int, planned: list[_User], now) -> bool:
    """Insert the users the plan creates; False when a concurrent request created one of them first."""
    # In key order, so concurrent requests creating the same users wait for each other in the same order.
    new = sorted((u for u in planned if u.stored is None), key=lambda u: (u.external_id or "", u.email or ""))
    if not new:
        return True
    inserted = insert_missing(
        session,
        users,
        [
            {
                "workspace_id": workspace_id,
                "external_id": u.external_id,
                "email": u.email,
                "attributes": u.attributes,
                "default_channel": u.default_channel,
                "created_at": now,
                "updated_at": now,
            }
            for u in new
        ],
        returning=[users.c.id, users.c.external_id, users.c.email],
    )
    ids = {(row.external_id, row.email): row.id for row in inserted}
    for user in new:
        user.id = ids.get((user.external_id, user.email))
    return len(inserted) == len(new)


def _link_accounts(session: Session, workspace_id: int, planned: list[_User], changes: ChangeSet, now) -> None:
    wanted = {a for u in planned for a, add in u.accounts.items() if add}
    unwanted = {a for u in planned for a, add in u.accounts.items() if not add}
    if not wanted and not unwanted:
        return
    # Unlinking never creates an account: only the wanted ones are resolved with creation.
    resolved = resolve_accounts(session, workspace_id, sorted(wanted), now)
    account_ids = dict(zip(sorted(wanted), resolved.ids, strict=True))
    if unwanted - wanted:
        account_ids.update(
            session.execute(
                select(accounts.c.external_id, accounts.c.id).where(
                    accounts.c.workspace_id == workspace_id, accounts.c.external_id.in_(sorted(unwanted - wanted))
                )
            ).all()
        )
    add = {(u.id, account_ids[a]) for u in planned for a, on in u.accounts.items() if on}
    remove = {(u.id, account_ids[a]) for u in planned for a, on in u.accounts.items() if not on and a in account_ids}
    changed = change_account_links(session, workspace_id, add, remove)
    changes.add_accounts(resolved.created, "subject")
    changes.add_users({u for u, _ in changed}, "account_link")
    changes.add_accounts({a for _, a in changed}, "account_link")
