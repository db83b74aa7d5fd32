"""HubSpot static lists (Lists v3 through ``hubspot-api-client``'s ``crm.lists``): find or create a list by name,
rename it, add and remove members by record id.

Requests go through the HubSpot destination's ``_call``: the same timeout, rate-limit token and error translation
(``TransientError`` for 429 / 5xx / network, ``ConfigError`` for auth) as record writes, so the sync engine's retry
policy and limiter apply alike. Lists are ``MANUAL`` (static): HubSpot only changes their members when told.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from connector.destinations.base import ConfigError
from connector.destinations.hubspot import HubSpotDestination
from connector.destinations.hubspot_wire import Refused

# HubSpot takes up to 100,000 record ids in one membership change; a smaller batch keeps acknowledgement granular.
MAX_MEMBERSHIP_BATCH = 10_000
MEMBER_PAGE = 250
OBJECT_TYPE_IDS = {"contacts": "0-1", "companies": "0-2"}


class HubSpotLists:
    """Lists of one HubSpot destination, for one object type (contacts or companies)."""

    def __init__(self, destination: HubSpotDestination, object_type: str = "contacts") -> None:
        if object_type not in OBJECT_TYPE_IDS:
            raise ConfigError(f"HubSpot lists hold contacts or companies, not {object_type!r}")
        from hubspot.crm import lists as models

        self.destination = destination
        self.object_type_id = OBJECT_TYPE_IDS[object_type]
        self._models = models
        crm = destination._client.crm
        self._lists = crm.lists.lists_api
        self._memberships = crm.lists.memberships_api

    @classmethod
    def of(cls, destination: object, object_type: str = "contacts") -> HubSpotLists:
        """Lists of ``destination``; ``ConfigError`` when it is not a HubSpot destination."""
        if not isinstance(destination, HubSpotDestination):
            raise ConfigError(f"{type(destination).__name__} has no lists (only HubSpot destinations do)")
        return cls(destination, object_type)

    def ensure(self, name: str) -> str:
        """The id of the list called ``name``, created (static) when there is none."""
        found = self.find(name)
        if found is not None:
            return found
        request = self._models.ListCreateRequest(
            name=name, object_type_id=self.object_type_id, processing_type="MANUAL"
        )
        try:
            answer = self.destination._call(self._lists.create, request, raw=True)
        except Refused as exc:
            if exc.status == 409:  # created meanwhile (a retried create that landed): take it
                found = self.find(name)
                if found is not None:
                    return found
            raise ConfigError(f"HubSpot refused to create the list {name!r}: {exc.message}") from exc
        return str(answer["list"]["listId"])

    def find(self, name: str) -> str | None:
        try:
            answer = self.destination._call(self._lists.get_by_name, name, self.object_type_id, raw=True)
        except Refused as exc:
            if exc.status == 404:
                return None
            raise ConfigError(f"HubSpot refused to look up the list {name!r}: {exc.message}") from exc
        return str(answer["list"]["listId"])

    def rename(self, list_id: str, name: str) -> None:
        try:
            self.destination._call(self._lists.update_name, list_id, list_name=name, raw=True)
        except Refused as exc:
            raise ConfigError(f"HubSpot refused to rename list {list_id} to {name!r}: {exc.message}") from exc

    def add(self, list_id: str, record_ids: Sequence[str]) -> list[str]:
        """Add members; returns the ids HubSpot does not know (``recordIdsMissing``)."""
        answer = self._change(self._memberships.add, list_id, record_ids)
        return [str(i) for i in answer.get("recordIdsMissing") or []]

    def remove(self, list_id: str, record_ids: Sequence[str]) -> None:
        self._change(self._memberships.remove, list_id, record_ids)

    def _change(self, method, list_id: str, record_ids: Sequence[str]) -> dict:
        if len(record_ids) > MAX_MEMBERSHIP_BATCH:
            raise ValueError(f"at most {MAX_MEMBERSHIP_BATCH} record ids per membership change")
        try:
            return self.destination._call(method, list_id, list(record_ids), raw=True)
        except Refused as exc:
            raise ConfigError(f"HubSpot refused to change the members of list {list_id}: {exc.message}") from exc

    def members(self, list_id: str) -> Iterator[str]:
        """Every member's record id, a page at a time."""
        after = None
        while True:
            kwargs = {"limit": MEMBER_PAGE, **({"after": after} if after else {})}
            page = self.destination._call(self._memberships.get_page, list_id, raw=True, **kwargs)
            for row in page.get("results") or []:
                yield str(row["recordId"])
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return
