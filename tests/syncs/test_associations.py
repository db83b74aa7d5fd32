"""Contacts associated with their companies when both are synced to one HubSpot destination (associations v4
batch against the sandbox over real HTTP)."""

from __future__ import annotations

from sqlalchemy import delete, select

from connector.models import AccountUser, SyncRunError, User
from connector.syncs.engine import run_sync
from tests.syncs.conftest import FAST_RETRY, create_sync


def seed(client, tenant):
    body = {
        "batch": [
            {
                "external_id": "acme",
                "name": "Acme",
                "users": [{"email": "ann@acme.example"}, {"email": "bob@acme.example"}],
            },
            {"external_id": "globex", "name": "Globex", "users": [{"email": "cy@globex.example"}]},
        ]
    }
    response = client.post(tenant.url("/group"), json=body, headers=tenant.headers)
    assert response.status_code == 200, response.get_json()


def company_sync(client, tenant, destination_id):
    body = {
        "name": "companies",
        "destination_id": destination_id,
        "subject_type": "accounts",
        "destination_object": "companies",
        "mappings": [
            {"source": {"kind": "field", "name": "external_id"}, "destination": "account_key"},
            {"source": {"kind": "field", "name": "name"}, "destination": "name"},
        ],
        "identity": {"destination": "account_key"},
    }
    response = client.post(tenant.url("/syncs"), json=body, headers=tenant.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def both_syncs(client, tenant, sandbox):
    """The seeded people and companies, a contacts sync and a companies sync to one destination (not run)."""
    seed(client, tenant)
    contacts = create_sync(
        client, tenant, sandbox, mappings=[{"source": {"kind": "field", "name": "email"}, "destination": "email"}]
    )
    return contacts, company_sync(client, tenant, contacts.destination_id)


def run(database, settings, sync_id):
    outcome = run_sync(database, sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)
    assert outcome.status.value == "succeeded", outcome.first_error
    return outcome


def associated(sandbox) -> set[tuple[str, str]]:
    emails = {r["id"]: r["properties"]["email"] for r in sandbox.records("contacts")}
    names = {r["id"]: r["properties"]["name"] for r in sandbox.records("companies")}
    return {(emails[c], names[a]) for c, a in sandbox.associations("contacts", "companies")}


def test_contacts_are_associated_with_their_companies_once_both_are_synced(client, tenant, database, settings, sandbox):
    contacts, companies = both_syncs(client, tenant, sandbox)

    run(database, settings, contacts.sync_id)
    assert associated(sandbox) == set()  # companies not synced yet

    run(database, settings, companies)
    assert associated(sandbox) == {
        ("ann@acme.example", "Acme"),
        ("bob@acme.example", "Acme"),
        ("cy@globex.example", "Globex"),
    }

    before = sandbox.stats()["requests"]
    run(database, settings, contacts.sync_id)
    run(database, settings, companies)
    after = sandbox.stats()["requests"]
    key = "POST /crm/v4/associations/contacts/companies/batch/create"
    assert after.get(key) == before.get(key), "acknowledged associations are not sent again"


def test_association_batches_are_retried_through_429s(client, tenant, database, settings, sandbox):
    contacts, companies = both_syncs(client, tenant, sandbox)
    run(database, settings, contacts.sync_id)
    sandbox.set_faults(rate_429=0.5, seed=1, match="/crm/v4/associations")

    outcome = run(database, settings, companies)

    assert sandbox.stats()["faults"].get("429", 0) > 0
    assert len(associated(sandbox)) == 3
    with database.session() as session:
        assert session.scalars(select(SyncRunError).where(SyncRunError.run_id == outcome.run_id)).all() == []


def test_a_link_removed_is_dissociated_and_linking_again_associates_again(client, tenant, database, settings, sandbox):
    contacts, companies = both_syncs(client, tenant, sandbox)
    run(database, settings, contacts.sync_id)
    run(database, settings, companies)
    assert len(associated(sandbox)) == 3

    # Bob leaves Acme (as a source's account-links model does when his row is gone).
    with database.session() as session:
        bob = session.scalar(select(User.id).where(User.email == "bob@acme.example"))
        session.execute(delete(AccountUser).where(AccountUser.user_id == bob))
    run(database, settings, contacts.sync_id)
    assert associated(sandbox) == {("ann@acme.example", "Acme"), ("cy@globex.example", "Globex")}
    before = sandbox.stats()["requests"]
    run(database, settings, companies)
    key = "POST /crm/v4/associations/contacts/companies/batch/archive"
    assert sandbox.stats()["requests"].get(key) == before.get(key), "a removed link is dissociated once"

    # Linked again: associated again.
    body = {"batch": [{"external_id": "acme", "users": [{"email": "bob@acme.example"}]}]}
    assert client.post(tenant.url("/group"), json=body, headers=tenant.headers).status_code == 200
    run(database, settings, companies)
    assert ("bob@acme.example", "Acme") in associated(sandbox) and len(associated(sandbox)) == 3
