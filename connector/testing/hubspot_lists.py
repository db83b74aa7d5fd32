"""The sandbox's Lists v3 endpoints (``/crm/v3/lists``), with HubSpot's shapes and limits.

What the list sync uses: create a list, get one by name or id, rename it, add and remove members, read members a
page at a time. Lists hold record ids of one object type (``objectTypeId`` ``0-1`` contacts, ``0-2`` companies).
Only ``MANUAL`` and ``SNAPSHOT`` lists take memberships by API; names are unique per account (case-insensitive).
Adding an id that is no record (or already a member) does not fail: it comes back in ``recordIdsMissing`` (or is
not counted as added), as HubSpot answers. A membership change takes at most ``MAX_MEMBERSHIP_IDS`` ids; a page of
members at most 250.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

MAX_MEMBERSHIP_IDS = 100_000
MAX_MEMBER_PAGE = 250
DEFAULT_MEMBER_PAGE = 100
PROCESSING_TYPES = {"MANUAL", "SNAPSHOT", "DYNAMIC"}
OBJECT_TYPES = {"0-1": "contacts", "0-2": "companies"}

LIST_ROUTES = [
    ("POST", r"^/crm/v3/lists$", "list-create"),
    ("GET", r"^/crm/v3/lists/object-type-id/(?P<object_type_id>[^/]+)/name/(?P<name>[^/]+)$", "list-by-name"),
    ("GET", r"^/crm/v3/lists/(?P<list_id>\d+)$", "list-get"),
    ("PUT", r"^/crm/v3/lists/(?P<list_id>\d+)/update-list-name$", "list-rename"),
    ("PUT", r"^/crm/v3/lists/(?P<list_id>\d+)/memberships/add$", "list-members-add"),
    ("PUT", r"^/crm/v3/lists/(?P<list_id>\d+)/memberships/remove$", "list-members-remove"),
    ("GET", r"^/crm/v3/lists/(?P<list_id>\d+)/memberships$", "list-members"),
]
LIST_WRITE_ROUTES = {"list-create", "list-rename", "list-members-add", "list-members-remove"}


def _timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ListsMixin:
    """Lists state and handlers; mixed into ``HubSpotSandbox``, which holds the lock around every handler and
    provides ``_answer(status, body)`` and ``_fail(status, message, category, **extra)`` (HubSpot's error shape)."""

    def _reset_lists(self) -> None:
        self._lists: dict[str, dict[str, Any]] = {}
        self._memberships: dict[str, dict[str, str]] = {}
        self._next_list_id = 1

    # observation, for tests

    def lists(self) -> dict[str, dict[str, Any]]:
        """Every list by name: ``{"listId", "objectTypeId", "members": sorted record ids}``."""
        with self._lock:
            return {
                found["name"]: {
                    "listId": found["listId"],
                    "objectTypeId": found["objectTypeId"],
                    "members": sorted(self._memberships[found["listId"]], key=int),
                }
                for found in self._lists.values()
            }

    # handlers

    def _list_public(self, list_id: str) -> dict[str, Any]:
        public = dict(self._lists[list_id])
        public["size"] = len(self._memberships[list_id])
        return public

    def _list_named(self, name: str, object_type_id: str | None = None) -> dict[str, Any] | None:
        for found in self._lists.values():
            if found["name"].lower() == name.lower() and object_type_id in (None, found["objectTypeId"]):
                return found
        return None

    def _list_create(self, body: Any, query: Any):

        if not isinstance(body, dict):
            return self._fail(400, "Invalid input JSON: expected an object")
        name, object_type_id = body.get("name"), body.get("objectTypeId")
        processing = body.get("processingType")
        errors = []
        if not isinstance(name, str) or not name.strip():
            errors.append("name is required")
        if object_type_id not in OBJECT_TYPES:
            errors.append(f"objectTypeId {object_type_id!r} is not a supported object type")
        if processing not in PROCESSING_TYPES:
            errors.append(f"processingType must be one of {sorted(PROCESSING_TYPES)}")
        if errors:
            return self._fail(400, "; ".join(errors))
        if self._list_named(name) is not None:
            return self._fail(409, f"A list named '{name}' already exists.", "CONFLICT", subCategory="LIST_NAME_TAKEN")
        list_id = str(self._next_list_id)
        self._next_list_id += 1
        now = _timestamp()
        self._lists[list_id] = {
            "listId": list_id,
            "name": name,
            "objectTypeId": object_type_id,
            "processingType": processing,
            "processingStatus": "COMPLETE",
            "listVersion": 1,
            "createdAt": now,
            "updatedAt": now,
        }
        self._memberships[list_id] = {}
        return self._answer(200, {"list": self._list_public(list_id)})

    def _list_by_name(self, object_type_id: str, name: str, body: Any, query: Any):

        found = self._list_named(unquote(name), object_type_id)
        if found is None:
            return self._fail(404, f"List with name {unquote(name)} does not exist.", "OBJECT_NOT_FOUND")
        return self._answer(200, {"list": self._list_public(found["listId"])})

    def _list_get(self, list_id: str, body: Any, query: Any):

        if list_id not in self._lists:
            return self._fail(404, f"List {list_id} does not exist.", "OBJECT_NOT_FOUND")
        return self._answer(200, {"list": self._list_public(list_id)})

    def _list_rename(self, list_id: str, body: Any, query: Any):

        if list_id not in self._lists:
            return self._fail(404, f"List {list_id} does not exist.", "OBJECT_NOT_FOUND")
        name = (query.get("listName") or [""])[0]
        if not name.strip():
            return self._fail(400, "listName is required")
        clash = self._list_named(name)
        if clash is not None and clash["listId"] != list_id:
            return self._fail(409, f"A list named '{name}' already exists.", "CONFLICT", subCategory="LIST_NAME_TAKEN")
        self._lists[list_id].update(name=name, updatedAt=_timestamp())
        self._lists[list_id]["listVersion"] += 1
        return self._answer(200, {"updatedList": self._list_public(list_id)})

    def _membership_ids(self, list_id: str, body: Any):

        if list_id not in self._lists:
            return None, self._fail(404, f"List {list_id} does not exist.", "OBJECT_NOT_FOUND")
        if self._lists[list_id]["processingType"] == "DYNAMIC":
            return None, self._fail(400, "Memberships of a DYNAMIC list cannot be changed by API.", "VALIDATION_ERROR")
        if not isinstance(body, list) or not all(isinstance(i, str | int) for i in body):
            return None, self._fail(400, "Invalid input JSON: expected an array of record ids")
        if len(body) > MAX_MEMBERSHIP_IDS:
            return None, self._fail(400, f"At most {MAX_MEMBERSHIP_IDS} record ids can be sent at once.")
        return [str(i) for i in body], None

    def _list_members_add(self, list_id: str, body: Any, query: Any):

        ids, error = self._membership_ids(list_id, body)
        if error is not None:
            return error
        store = self._store(OBJECT_TYPES[self._lists[list_id]["objectTypeId"]])
        members = self._memberships[list_id]
        added, missing = [], []
        for record_id in dict.fromkeys(ids):
            if record_id not in store.records:
                missing.append(record_id)
            elif record_id not in members:
                members[record_id] = _timestamp()
                added.append(record_id)
        return self._answer(200, {"recordsIdsAdded": added, "recordIdsMissing": missing})

    def _list_members_remove(self, list_id: str, body: Any, query: Any):

        ids, error = self._membership_ids(list_id, body)
        if error is not None:
            return error
        members = self._memberships[list_id]
        removed, missing = [], []
        for record_id in dict.fromkeys(ids):
            if members.pop(record_id, None) is not None:
                removed.append(record_id)
            else:
                missing.append(record_id)
        return self._answer(200, {"recordIdsRemoved": removed, "recordIdsMissing": missing})

    def _list_members(self, list_id: str, body: Any, query: Any):

        if list_id not in self._lists:
            return self._fail(404, f"List {list_id} does not exist.", "OBJECT_NOT_FOUND")
        try:
            limit = int((query.get("limit") or [str(DEFAULT_MEMBER_PAGE)])[0])
        except ValueError:
            return self._fail(400, "limit must be a number")
        if not 1 <= limit <= MAX_MEMBER_PAGE:
            return self._fail(400, f"limit must be between 1 and {MAX_MEMBER_PAGE}")
        after = (query.get("after") or ["0"])[0]
        members = self._memberships[list_id]
        ordered = sorted(members, key=int)
        page = [r for r in ordered if int(r) > int(after or 0)][:limit]
        out: dict[str, Any] = {
            "results": [{"recordId": r, "membershipTimestamp": members[r]} for r in page],
            "total": len(members),
        }
        if page and page[-1] != ordered[-1]:
            out["paging"] = {"next": {"after": page[-1]}}
        return self._answer(200, out)
