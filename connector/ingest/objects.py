"""Custom objects: types created on first use, records upserted by external id and linked to users/accounts.

A record links to a user directly (the item names the user) or through its type's ``user_link_field``: the field
holding a user's external id. A record whose link field names nobody yet stays unlinked until that user is
identified; ``link_objects`` then links all such records in one UPDATE. Accounts work the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select, tuple_, update
from sqlalchemy.orm import Session

from connector.changes import ChangeSet
from connector.ingest.attributes import merge_attributes
from connector.ingest.batches import Batch, BatchResult, ItemResult
from connector.ingest.items import ObjectItem
from connector.ingest.statements import insert_into, json_text, one_of
from connector.ingest.subjects import accounts, resolve_accounts, resolve_users, users
from connector.models import ObjectRecord, ObjectType, utcnow

object_types = ObjectType.__table__
objects = ObjectRecord.__table__


@dataclass
class _Record:
    type_id: int
    external_id: str
    fields: dict[str, Any]
    user_id: int | None
    account_id: int | None
    id: int | None = None
    # (fields, user_id, account_id) as stored; None for a record this batch creates.
    stored: tuple | None = None
    results: list[ItemResult] = field(default_factory=list)


def upsert_objects(
    session: Session, workspace_id: int, raw_items: Sequence[Any], *, partial: bool = False
) -> BatchResult:
    """Upsert the object records of a batch (see ``ObjectItem``); the caller commits."""
    batch = Batch(ObjectItem, raw_items)
    batch.check(partial)
    now = utcnow()
    types = _object_types(session, workspace_id, batch)
    batch.check(partial)
    valid = batch.valid()
    if not valid:
        return batch.result(ChangeSet())

    direct_user_items = [(r, i) for r, i in valid if i.user_external_id or i.user_email]
    direct_users = resolve_users(
        session, workspace_id, [(i.user_external_id, i.user_email) for _, i in direct_user_items], now
    )
    user_of = {id(i): uid for (_, i), uid in zip(direct_user_items, direct_users.ids, strict=True)}
    account_items = [(r, i) for r, i in valid if i.account_external_id]
    direct_accounts = resolve_accounts(session, workspace_id, [i.account_external_id for _, i in account_items], now)
    account_by_external_id = dict(
        zip(dict.fromkeys(i.account_external_id for _, i in account_items), direct_accounts.ids, strict=True)
    )

    records = _stored_records(session, {(types[i.type].id, i.external_id) for _, i in valid})
    for result, item in valid:
        object_type = types[item.type]
        key = (object_type.id, item.external_id)
        record = records.get(key)
        if record is None:
            record = records[key] = _Record(object_type.id, item.external_id, {}, None, None)
        record.fields = merge_attributes(record.fields, item.fields)
        if id(item) in user_of:
            record.user_id = user_of[id(item)]
        elif object_type.user_link_field and object_type.user_link_field in item.fields:
            record.user_id = None  # resolved from the link field below
        if item.account_external_id:
            record.account_id = account_by_external_id[item.account_external_id]
        elif object_type.account_link_field and object_type.account_link_field in item.fields:
            record.account_id = None
        record.results.append(result)
    touched = [r for r in records.values() if r.results]
    _resolve_link_fields(session, workspace_id, types, touched)

    changes = ChangeSet()
    changes.add_users(direct_users.created, "subject")
    changes.add_accounts(direct_accounts.created, "subject")
    _write(session, workspace_id, touched, now)
    names = {t.id: name for name, t in types.items()}
    for record in touched:
        if record.stored is not None and record.stored == (record.fields, record.user_id, record.account_id):
            continue
        kind = f"object:{names[record.type_id]}"
        stored_user, stored_account = (record.stored[1], record.stored[2]) if record.stored else (None, None)
        changes.add_users({u for u in (record.user_id, stored_user) if u is not None}, kind)
        changes.add_accounts({a for a in (record.account_id, stored_account) if a is not None}, kind)
    for record in touched:
        for result in record.results:
            result.id = record.id
            result.created = record.stored is None
    return batch.result(changes)


@dataclass
class _Type:
    id: int
    user_link_field: str | None
    account_link_field: str | None


def _object_types(session: Session, workspace_id: int, batch: Batch[ObjectItem]) -> dict[str, _Type]:
    """The types the batch names, creating new ones; rejects items whose link fields contradict their type's."""
    valid = batch.valid()
    names = sorted({item.type for _, item in valid})
    if not names:
        return {}
    query = select(
        object_types.c.name, object_types.c.id, object_types.c.user_link_field, object_types.c.account_link_field
    ).where(object_types.c.workspace_id == workspace_id, object_types.c.name.in_(names))
    types = {row.name: _Type(row.id, row.user_link_field, row.account_link_field) for row in session.execute(query)}
    new: dict[str, dict] = {}
    for _, item in valid:
        if item.type not in types and item.type not in new:
            new[item.type] = {
                "workspace_id": workspace_id,
                "name": item.type,
                "user_link_field": item.user_link_field,
                "account_link_field": item.account_link_field,
                "created_at": utcnow(),
            }
    if new:
        session.execute(insert_into(session, object_types).on_conflict_do_nothing(), list(new.values()))
        # Read back rather than trust RETURNING: a concurrent request may have created a type first.
        types = {row.name: _Type(row.id, row.user_link_field, row.account_link_field) for row in session.execute(query)}
    for result, item in valid:
        object_type = types[item.type]
        for name in ("user_link_field", "account_link_field"):
            given = getattr(item, name)
            if given is not None and given != getattr(object_type, name):
                result.reject(
                    name,
                    f"type {item.type!r} links through {getattr(object_type, name)!r}; "
                    "link fields are fixed when a type is created",
                )
    return types


def _stored_records(session: Session, keys: set[tuple[int, str]]) -> dict[tuple[int, str], _Record]:
    if not keys:
        return {}
    rows = session.execute(
        select(
            objects.c.id,
            objects.c.object_type_id,
            objects.c.external_id,
            objects.c.fields,
            objects.c.user_id,
            objects.c.account_id,
        )
        .where(tuple_(objects.c.object_type_id, objects.c.external_id).in_(sorted(keys)))
        .order_by(objects.c.id)
        .with_for_update(key_share=True)
    )
    records = {}
    for row in rows:
        stored_fields = dict(row.fields or {})
        record = _Record(row.object_type_id, row.external_id, dict(stored_fields), row.user_id, row.account_id, row.id)
        record.stored = (stored_fields, row.user_id, row.account_id)
        records[(row.object_type_id, row.external_id)] = record
    return records


def _link_value(value: Any) -> str | None:
    """A link field's value as an external id: strings and integers name subjects, anything else does not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _resolve_link_fields(session: Session, workspace_id: int, types: dict[str, _Type], records: list[_Record]) -> None:
    """Set ``user_id``/``account_id`` from link fields for records not linked directly by their items."""
    type_by_id = {t.id: t for t in types.values()}
    for table, link_attr, owner_attr in (
        (users, "user_link_field", "user_id"),
        (accounts, "account_link_field", "account_id"),
    ):
        pending = []
        for record in records:
            link_field = getattr(type_by_id[record.type_id], link_attr)
            if link_field is None or getattr(record, owner_attr) is not None:
                continue
            value = _link_value(record.fields.get(link_field))
            if value is not None:
                pending.append((record, value))
        if not pending:
            continue
        found = dict(
            session.execute(
                select(table.c.external_id, table.c.id).where(
                    table.c.workspace_id == workspace_id, table.c.external_id.in_(sorted({v for _, v in pending}))
                )
            ).all()
        )
        for record, value in pending:
            setattr(record, owner_attr, found.get(value))


def _write(session: Session, workspace_id: int, records: list[_Record], now) -> None:
    new = [r for r in records if r.stored is None]
    if new:
        inserted = session.execute(
            insert_into(session, objects).returning(objects.c.id, objects.c.object_type_id, objects.c.external_id),
            [
                {
                    "workspace_id": workspace_id,
                    "object_type_id": r.type_id,
                    "external_id": r.external_id,
                    "fields": r.fields,
                    "user_id": r.user_id,
                    "account_id": r.account_id,
                    "created_at": now,
                    "updated_at": now,
                }
                for r in new
            ],
        ).all()
        ids = {(row.object_type_id, row.external_id): row.id for row in inserted}
        for record in new:
            record.id = ids[(record.type_id, record.external_id)]
    existing = [r for r in records if r.stored is not None]
    if existing:
        session.execute(
            update(objects)
            .where(objects.c.id == bindparam("b_id"))
            .values(
                fields=bindparam("b_fields", type_=objects.c.fields.type),
                user_id=bindparam("b_user_id"),
                account_id=bindparam("b_account_id"),
                updated_at=now,
            ),
            [
                {"b_id": r.id, "b_fields": r.fields, "b_user_id": r.user_id, "b_account_id": r.account_id}
                for r in existing
            ],
        )


def _links_by_field(session: Session, workspace_id: int, link_field) -> bool:
    """Whether any object type of the workspace links records through this field (most workspaces have none)."""
    found = session.execute(
        select(object_types.c.id).where(object_types.c.workspace_id == workspace_id, link_field.is_not(None)).limit(1)
    ).first()
    return found is not None


def link_objects(
    session: Session, workspace_id: int, *, user_ids: Iterable[int] = (), account_ids: Iterable[int] = ()
) -> ChangeSet:
    """Link unlinked records whose type's link field holds the external id of one of these users/accounts.

    One UPDATE per subject kind, whatever the number of records.
    """
    changes = ChangeSet()
    for table, owner, link_field, ids in (
        (users, objects.c.user_id, object_types.c.user_link_field, sorted(set(user_ids))),
        (accounts, objects.c.account_id, object_types.c.account_link_field, sorted(set(account_ids))),
    ):
        if not ids or not _links_by_field(session, workspace_id, link_field):
            continue
        subject = (
            select(table.c.id)
            .where(
                object_types.c.id == objects.c.object_type_id,
                link_field.is_not(None),
                table.c.workspace_id == workspace_id,
                one_of(session, table.c.id, ids),
                table.c.external_id == json_text(objects.c.fields, link_field),
            )
            .limit(1)
            .correlate(objects)
            .scalar_subquery()
        )
        linked = session.execute(
            update(objects)
            .where(objects.c.workspace_id == workspace_id, owner.is_(None), subject.is_not(None))
            .values({owner.key: subject, "updated_at": utcnow()})
            .returning(owner, objects.c.object_type_id)
        ).all()
        if not linked:
            continue
        names = dict(
            session.execute(
                select(object_types.c.id, object_types.c.name).where(
                    object_types.c.id.in_({type_id for _, type_id in linked})
                )
            ).all()
        )
        for subject_id, type_id in linked:
            kind = f"object:{names[type_id]}"
            if table is users:
                changes.add_users([subject_id], kind)
            else:
                changes.add_accounts([subject_id], kind)
    return changes
