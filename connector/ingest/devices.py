"""``device``: record users' devices, upserted by (workspace, platform, vendor device id).

A device reported for another user than before moves to that user (a shared or resold phone): both users change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, select, tuple_, update
from sqlalchemy.orm import Session

from connector.ingest.batches import BatchResult, ItemResult
from connector.ingest.items import DeviceItem
from connector.ingest.statements import insert_into
from connector.ingest.subjects import batch_by_user, touch_users
from connector.models import Device

devices = Device.__table__


@dataclass
class _Device:
    platform: str
    vendor_device_id: str
    user_id: int
    push_token: str | None
    last_seen_at: Any
    id: int | None = None
    # (user_id, push_token, last_seen_at) as stored; None for a device this batch adds.
    stored: tuple | None = None
    results: list[ItemResult] = field(default_factory=list)


def record_devices(
    session: Session, workspace_id: int, raw_items: Sequence[Any], *, partial: bool = False
) -> BatchResult:
    """Upsert the devices of a batch (see ``DeviceItem``); the caller commits.

    Raises ``BatchRejectedError`` when an item is invalid and ``partial`` is false; nothing is written then.
    """
    by_user = batch_by_user(session, workspace_id, DeviceItem, raw_items, partial)
    batch, valid, changes, now = by_user.batch, by_user.valid, by_user.changes, by_user.now
    if not valid:
        return batch.result(changes)

    keys = sorted({(item.platform, item.vendor_device_id) for _, item in valid})
    found: dict[tuple[str, str], _Device] = {}
    rows = session.execute(
        select(
            devices.c.id,
            devices.c.platform,
            devices.c.vendor_device_id,
            devices.c.user_id,
            devices.c.push_token,
            devices.c.last_seen_at,
        )
        .where(devices.c.workspace_id == workspace_id, tuple_(devices.c.platform, devices.c.vendor_device_id).in_(keys))
        .order_by(devices.c.id)
        .with_for_update(key_share=True)
    )
    for row in rows:
        key = (row.platform.value, row.vendor_device_id)
        device = _Device(key[0], key[1], row.user_id, row.push_token, row.last_seen_at, row.id)
        device.stored = (row.user_id, row.push_token, row.last_seen_at)
        found[key] = device
    for (result, item), user_id in zip(valid, by_user.user_ids, strict=True):
        key = (item.platform.value, item.vendor_device_id)
        seen_at = item.last_seen_at or now
        device = found.get(key)
        if device is None:
            device = found[key] = _Device(key[0], key[1], user_id, None, seen_at)
        device.user_id = user_id
        if "push_token" in item.model_fields_set:
            device.push_token = item.push_token
        # Reports arrive out of order; the device was last seen at the latest of them.
        device.last_seen_at = max(device.last_seen_at, seen_at)
        device.results.append(result)

    touched = [d for d in found.values() if d.results]
    _write(session, workspace_id, touched, now)
    for device in touched:
        if device.stored is None or device.stored[:2] != (device.user_id, device.push_token):
            changes.add_users({device.user_id}, "device")
        if device.stored is not None and device.stored[0] != device.user_id:
            changes.add_users({device.stored[0]}, "device")
        for result in device.results:
            result.id = device.id
            result.created = device.stored is None
    touch_users(session, {d.user_id for d in touched}, now)
    return batch.result(changes)


def _write(session: Session, workspace_id: int, touched: list[_Device], now) -> None:
    new = [d for d in touched if d.stored is None]
    if new:
        statement = insert_into(session, devices)
        # A concurrent request may have added the same device since it was read: then this report updates it.
        statement = statement.on_conflict_do_update(
            index_elements=["workspace_id", "platform", "vendor_device_id"],
            set_={
                "user_id": statement.excluded.user_id,
                "push_token": func.coalesce(statement.excluded.push_token, devices.c.push_token),
                "last_seen_at": statement.excluded.last_seen_at,
            },
        ).returning(devices.c.id, devices.c.platform, devices.c.vendor_device_id)
        inserted = session.execute(
            statement,
            [
                {
                    "workspace_id": workspace_id,
                    "user_id": d.user_id,
                    "platform": d.platform,
                    "vendor_device_id": d.vendor_device_id,
                    "push_token": d.push_token,
                    "last_seen_at": d.last_seen_at,
                    "created_at": now,
                }
                for d in new
            ],
        ).all()
        ids = {(row.platform.value, row.vendor_device_id): row.id for row in inserted}
        for device in new:
            device.id = ids[(device.platform, device.vendor_device_id)]
    existing = [d for d in touched if d.stored is not None]
    if existing:
        session.execute(
            update(devices)
            .where(devices.c.id == bindparam("b_id"))
            .values(
                user_id=bindparam("b_user_id"),
                push_token=bindparam("b_push_token"),
                last_seen_at=bindparam("b_last_seen_at", type_=devices.c.last_seen_at.type),
            ),
            [
                {"b_id": d.id, "b_user_id": d.user_id, "b_push_token": d.push_token, "b_last_seen_at": d.last_seen_at}
                for d in existing
            ],
        )
