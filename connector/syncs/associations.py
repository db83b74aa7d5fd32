"""Companies associated with their contacts when both are synced to one HubSpot destination.

After a run of a sync writing HubSpot contacts (or companies), every user-account link (``account_users``) whose
user has a contact written by a contacts sync to the same destination, and whose account has a company written
by a companies sync to it, is associated in HubSpot (associations v4 batch, ``MAX_ASSOCIATION_BATCH`` a request),
under the run's retry policy and rate limiter, each batch acknowledged (``sync_associations``) once answered. A
pair HubSpot reports as not found is skipped and named in the run's errors; an acknowledged pair is never sent
again. A link removed since (an acknowledged pair no longer in ``account_users``) is dissociated in HubSpot (v4
``batch/archive``) and its acknowledgement deleted once answered, so linking the two again associates them again; a
pair whose contact or company is no longer held by its sync has nothing to address and is only forgotten.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, delete, exists, select, tuple_
from sqlalchemy.orm import aliased

from connector.db import Database
from connector.destinations.hubspot_associations import MAX_ASSOCIATION_BATCH, HubSpotAssociations
from connector.models import AccountUser, Destination, RecordState, Sync, SyncAssociation, SyncRecord, SyncRunError

log = logging.getLogger(__name__)
PARTNER = {"contacts": "companies", "companies": "contacts"}


def associate_companies(db: Database, run_id: int, sync_id: int, plugin: object, send: Callable[..., Any]) -> int:
    """Associate what is new for every (contacts sync, companies sync) pair this sync belongs to; returns how many
    pairs were associated. ``send(fn, *args)`` makes one request under the run's retries and limiter."""
    with db.session() as session:
        sync = session.get(Sync, sync_id)
        destination = session.get(Destination, sync.destination_id)
        if destination.type != "hubspot" or sync.destination_object not in PARTNER:
            return 0
        partners = session.scalars(
            select(Sync.id).where(
                Sync.destination_id == sync.destination_id,
                Sync.destination_object == PARTNER[sync.destination_object],
            )
        ).all()
    if not partners:
        return 0
    pairs = [(sync_id, p) if sync.destination_object == "contacts" else (p, sync_id) for p in partners]
    associations = HubSpotAssociations.of(plugin)
    done = 0
    for contact_sync, company_sync in pairs:
        _dissociate(db, contact_sync, company_sync, associations, send)
        done += _associate(db, run_id, contact_sync, company_sync, associations, send)
    return done


def _dissociate(db: Database, contact_sync: int, company_sync: int, associations, send) -> int:
    """Dissociate the acknowledged pairs whose link is gone; returns how many were forgotten."""
    contact, company = aliased(SyncRecord), aliased(SyncRecord)
    linked = exists().where(
        AccountUser.user_id == SyncAssociation.user_id, AccountUser.account_id == SyncAssociation.account_id
    )
    with db.session() as session:
        rows = session.execute(
            select(SyncAssociation.user_id, SyncAssociation.account_id, contact.remote_id, company.remote_id)
            .outerjoin(contact, and_(contact.sync_id == contact_sync, contact.subject_id == SyncAssociation.user_id))
            .outerjoin(company, and_(company.sync_id == company_sync, company.subject_id == SyncAssociation.account_id))
            .where(
                SyncAssociation.contact_sync_id == contact_sync,
                SyncAssociation.company_sync_id == company_sync,
                ~linked,
            )
            .order_by(SyncAssociation.user_id, SyncAssociation.account_id)
        ).all()
    for start in range(0, len(rows), MAX_ASSOCIATION_BATCH):
        batch = rows[start : start + MAX_ASSOCIATION_BATCH]
        known = [(c, a) for _, _, c, a in batch if c is not None and a is not None]
        if known:
            send(associations.dissociate, known)
        with db.session() as session:
            session.execute(
                delete(SyncAssociation).where(
                    SyncAssociation.contact_sync_id == contact_sync,
                    SyncAssociation.company_sync_id == company_sync,
                    tuple_(SyncAssociation.user_id, SyncAssociation.account_id).in_([(u, a) for u, a, _, _ in batch]),
                )
            )
    if rows:
        log.info("syncs %s and %s: %s contact-company associations removed", contact_sync, company_sync, len(rows))
    return len(rows)


def _associate(db: Database, run_id: int, contact_sync: int, company_sync: int, associations, send) -> int:
    contact, company = aliased(SyncRecord), aliased(SyncRecord)
    acknowledged = exists().where(
        SyncAssociation.contact_sync_id == contact_sync,
        SyncAssociation.company_sync_id == company_sync,
        SyncAssociation.user_id == AccountUser.user_id,
        SyncAssociation.account_id == AccountUser.account_id,
    )
    with db.session() as session:
        rows = session.execute(
            select(AccountUser.user_id, AccountUser.account_id, contact.remote_id, company.remote_id)
            .join(
                contact,
                and_(
                    contact.sync_id == contact_sync,
                    contact.subject_id == AccountUser.user_id,
                    contact.state == RecordState.SYNCED,
                    contact.remote_id.is_not(None),
                ),
            )
            .join(
                company,
                and_(
                    company.sync_id == company_sync,
                    company.subject_id == AccountUser.account_id,
                    company.state == RecordState.SYNCED,
                    company.remote_id.is_not(None),
                ),
            )
            .where(~acknowledged)
            .order_by(AccountUser.user_id, AccountUser.account_id)
        ).all()
    done = 0
    for start in range(0, len(rows), MAX_ASSOCIATION_BATCH):
        batch = rows[start : start + MAX_ASSOCIATION_BATCH]
        failed = send(associations.associate, [(c, a) for _, _, c, a in batch])
        with db.session() as session:
            for user_id, account_id, contact_id, company_id in batch:
                if (contact_id, company_id) in failed:
                    reason = f"contact {contact_id} or company {company_id} not found in HubSpot: not associated"
                    session.add(SyncRunError(run_id=run_id, subject_id=user_id, kind="skipped", reason=reason))
                else:
                    session.add(
                        SyncAssociation(
                            contact_sync_id=contact_sync,
                            company_sync_id=company_sync,
                            user_id=user_id,
                            account_id=account_id,
                        )
                    )
                    done += 1
    if done:
        log.info("syncs %s and %s: %s contact-company associations made", contact_sync, company_sync, done)
    return done
