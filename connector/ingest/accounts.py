"""``group``: create or update accounts, their attributes and tags, and link users to them, a batch at a time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.changes import ChangeSet
from connector.ingest.attributes import merge_attributes
from connector.ingest.batches import Batch, BatchResult, ItemResult
from connector.ingest.items import GroupItem
from connector.ingest.objects import link_objects
from connector.ingest.statements import insert_missing, one_of
from connector.ingest.subjects import (
    accounts,
    change_account_links,
    plan_and_insert,
    resolve_users,
    settle,
    update_subjects,
)
from connector.ingest.tags import apply_tag_changes
from connector.models import AccountTag, utcnow


@dataclass
class _Account:
    id: int | None
    external_id: str
    domain: str | None
    name: str | None
    attributes: dict[str, Any]
    # (domain, name, attributes) as stored; None for an account this batch creates.
    stored: tuple | None = None
    results: list[ItemResult] = field(default_factory=list)
    tags: dict[str, bool] = field(default_factory=dict)
    users: list[tuple[str | None, str | None]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.stored is None or (self.domain, self.name, self.attributes) != self.stored


def group(session: Session, workspace_id: int, raw_items: Sequence[Any], *, partial: bool = False) -> BatchResult:
    """Upsert the accounts of a batch (see ``GroupItem``); the caller commits.

    Raises ``BatchRejectedError`` when an item is invalid and ``partial`` is false; nothing is written then.
    """
    batch = Batch(GroupItem, raw_items)
    batch.check(partial)
    now = utcnow()
    planned = plan_and_insert(
        lambda: _plan(session, workspace_id, batch), lambda p: _insert_new(session, workspace_id, p, now), "accounts"
    )
    changes = ChangeSet()
    changed = [a for a in planned if a.stored is not None and a.changed]
    update_subjects(
        session,
        accounts,
        [{"id": a.id, "domain": a.domain, "name": a.name, "attributes": a.attributes} for a in changed],
        now,
    )
    changes.add_accounts([a.id for a in changed], "attribute")
    created = [a.id for a in planned if a.stored is None]
    changes.add_accounts(created, "subject")
    tagged = apply_tag_changes(
        session, AccountTag.__table__, "account_id", workspace_id, {a.id: a.tags for a in planned}
    )
    changes.add_accounts(tagged, "tag")

    keys = [key for a in planned for key in a.users]
    if keys:
        resolved = resolve_users(session, workspace_id, keys, now)
        changes.add_users(resolved.created, "subject")
        user_ids = iter(resolved.ids)
        links = {(next(user_ids), a.id) for a in planned for _ in a.users}
        linked = change_account_links(session, workspace_id, links, set())
        changes.add_users({u for u, _ in linked}, "account_link")
        changes.add_accounts({a for _, a in linked}, "account_link")
    changes.merge(link_objects(session, workspace_id, account_ids=created))

    settle(planned)
    return batch.result(changes)


def _plan(session: Session, workspace_id: int, batch: Batch[GroupItem]) -> list[_Account]:
    valid = batch.valid()
    rows = session.execute(
        select(accounts.c.id, accounts.c.external_id, accounts.c.domain, accounts.c.name, accounts.c.attributes)
        .where(
            accounts.c.workspace_id == workspace_id,
            one_of(session, accounts.c.external_id, sorted({item.external_id for _, item in valid})),
        )
        .order_by(accounts.c.id)
        .with_for_update(key_share=True)
    )
    by_external_id: dict[str, _Account] = {}
    for row in rows:
        account = _Account(row.id, row.external_id, row.domain, row.name, dict(row.attributes or {}))
        account.stored = (row.domain, row.name, dict(row.attributes or {}))
        by_external_id[row.external_id] = account
    for result, item in valid:
        account = by_external_id.get(item.external_id)
        if account is None:
            account = by_external_id[item.external_id] = _Account(None, item.external_id, None, None, {})
        # Absent keeps the stored value, null clears it.
        if "domain" in item.model_fields_set:
            account.domain = item.domain
        if "name" in item.model_fields_set:
            account.name = item.name
        account.attributes = merge_attributes(account.attributes, item.attributes)
        account.tags.update({t: True for t in item.tags} | {t: False for t in item.remove_tags})
        account.users.extend((u.external_id, u.email) for u in item.users)
        account.results.append(result)
    return [a for a in by_external_id.values() if a.results]


def _insert_new(session: Session, workspace_id: int, planned: list[_Account], now) -> bool:
    new = [a for a in planned if a.stored is None]
    if not new:
        return True
    inserted = insert_missing(
        session,
        accounts,
        [
            {
                "workspace_id": workspace_id,
                "external_id": a.external_id,
                "domain": a.domain,
                "name": a.name,
                "attributes": a.attributes,
                "created_at": now,
                "updated_at": now,
            }
            for a in new
        ],
        returning=[accounts.c.id, accounts.c.external_id],
    )
    ids = {row.external_id: row.id for row in inserted}
    for account in new:
        account.id = ids.get(account.external_id)
    return len(inserted) == len(new)
