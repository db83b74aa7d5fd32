"""Associating HubSpot records in bulk (associations v4 ``batch/create`` and ``batch/archive`` through
``hubspot-api-client``).

Contacts are associated with companies by HubSpot's unlabeled contact-to-company type (``HUBSPOT_DEFINED`` 279);
dissociating archives the pair's association (HubSpot: removing the unlabeled one removes every label with it).
Requests go through the HubSpot destination's ``_call`` (timeout, rate-limit token, error translation), so the sync
engine's retries and limiter apply. A 207 names the ids HubSpot does not have; those pairs come back as failed.
"""

from __future__ import annotations

from collections.abc import Sequence

from connector.destinations.base import ConfigError
from connector.destinations.hubspot import HubSpotDestination
from connector.destinations.hubspot_wire import Refused

MAX_ASSOCIATION_BATCH = 1000  # HubSpot takes up to 2,000 inputs a request
CONTACT_TO_COMPANY = 279


class HubSpotAssociations:
    def __init__(self, destination: HubSpotDestination) -> None:
        from hubspot.crm.associations import v4

        self.destination = destination
        self._models = v4
        self._batch = destination._client.crm.associations.v4.batch_api

    @classmethod
    def of(cls, destination: object) -> HubSpotAssociations:
        if not isinstance(destination, HubSpotDestination):
            raise ConfigError(f"{type(destination).__name__} has no associations (only HubSpot destinations do)")
        return cls(destination)

    def associate(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Associate (contact id, company id) pairs; returns the pairs HubSpot could not (a record not found)."""
        if len(pairs) > MAX_ASSOCIATION_BATCH:
            raise ValueError(f"at most {MAX_ASSOCIATION_BATCH} associations per request")
        if not pairs:
            return set()
        m = self._models
        spec = m.AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=CONTACT_TO_COMPANY)
        inputs = [
            m.PublicAssociationMultiPost(
                _from=m.PublicObjectId(id=contact), to=m.PublicObjectId(id=company), types=[spec]
            )
            for contact, company in pairs
        ]
        body = m.BatchInputPublicAssociationMultiPost(inputs=inputs)
        try:
            answer = self.destination._call(self._batch.create, "contacts", "companies", body, raw=True)
        except Refused as exc:
            raise ConfigError(f"HubSpot refused to associate contacts with companies: {exc.message}") from exc
        missing = {str(i) for error in answer.get("errors") or [] for i in (error.get("context") or {}).get("ids", [])}
        return {(c, a) for c, a in pairs if c in missing or a in missing}

    def dissociate(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Remove the association of (contact id, company id) pairs; a pair not associated is no error."""
        if len(pairs) > MAX_ASSOCIATION_BATCH:
            raise ValueError(f"at most {MAX_ASSOCIATION_BATCH} associations per request")
        if not pairs:
            return
        m = self._models
        companies: dict[str, list[str]] = {}
        for contact, company in pairs:
            companies.setdefault(contact, []).append(company)
        inputs = [
            m.PublicAssociationMultiArchive(
                _from=m.PublicObjectId(id=contact), to=[m.PublicObjectId(id=c) for c in ids]
            )
            for contact, ids in companies.items()
        ]
        body = m.BatchInputPublicAssociationMultiArchive(inputs=inputs)
        try:
            self.destination._call(self._batch.archive, "contacts", "companies", body, raw=True)
        except Refused as exc:
            raise ConfigError(f"HubSpot refused to dissociate contacts from companies: {exc.message}") from exc
