"""The sandbox's associations v4 batch create and archive (``POST /crm/v4/associations/{from}/{to}/batch/create``,
``…/batch/archive``).

HubSpot's shapes: inputs ``{"from": {"id"}, "to": {"id"}, "types": [{"associationCategory", "associationTypeId"}]}``,
at most ``MAX_ASSOCIATION_INPUTS`` a request; ``201`` with ``results`` of ``LabelsBetweenObjectPair`` when every
input landed, ``207`` with ``errors`` naming the ids of records that do not exist. Creating an association that
exists already is harmless. Archive takes ``{"from": {"id"}, "to": [{"id"}, …]}`` inputs, removes every association
(of any type) between each pair, and answers ``204`` without a body; a pair not associated is no error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

MAX_ASSOCIATION_INPUTS = 2000
TYPE_IDS = {"contacts": "0-1", "companies": "0-2"}
CATEGORIES = {"HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED"}

ASSOCIATION_ROUTES = [
    ("POST", r"^/crm/v4/associations/(?P<from_type>[^/]+)/(?P<to_type>[^/]+)/batch/create$", "associations-create"),
    ("POST", r"^/crm/v4/associations/(?P<from_type>[^/]+)/(?P<to_type>[^/]+)/batch/archive$", "associations-archive"),
]
ASSOCIATION_WRITE_ROUTES = {"associations-create", "associations-archive"}


def _timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AssociationsMixin:
    """Associations state and handler; mixed into ``HubSpotSandbox`` (see ``ListsMixin`` for what it provides)."""

    def _reset_associations(self) -> None:
        self._associations: set[tuple[str, str, str, str, int]] = set()

    def associations(self, from_type: str = "contacts", to_type: str = "companies") -> set[tuple[str, str]]:
        """The (from id, to id) pairs associated between two object types."""
        with self._lock:
            return {(f, t) for ft, f, tt, t, _ in self._associations if (ft, tt) == (from_type, to_type)}

    def _association_inputs(self, from_type: str, to_type: str, body: Any) -> tuple[list | None, Any]:
        """A batch's inputs, or None and the 400 HubSpot answers (unknown object type, no inputs, too many)."""
        if from_type not in TYPE_IDS or to_type not in TYPE_IDS:
            return None, self._fail(400, f"Unknown object type {from_type if from_type not in TYPE_IDS else to_type}")
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not inputs:
            return None, self._fail(400, "inputs is required")
        if len(inputs) > MAX_ASSOCIATION_INPUTS:
            message = f"The maximum number of inputs supported in a batch is {MAX_ASSOCIATION_INPUTS}"
            return None, self._fail(400, message)
        return inputs, None

    def _associations_create(self, from_type: str, to_type: str, body: Any, query: Any):
        inputs, refused = self._association_inputs(from_type, to_type, body)
        if inputs is None:
            return refused
        sources, targets = self._store(from_type).records, self._store(to_type).records
        started = _timestamp()
        results, errors = [], []
        for item in inputs:
            try:
                from_id, to_id = str(item["from"]["id"]), str(item["to"]["id"])
                types = item["types"]
                assert isinstance(types, list) and types
                assert all(t["associationCategory"] in CATEGORIES and int(t["associationTypeId"]) > 0 for t in types)
            except (KeyError, TypeError, ValueError, AssertionError):
                return self._fail(400, "Invalid input: every input needs from.id, to.id and types")
            missing = [i for i, store in ((from_id, sources), (to_id, targets)) if i not in store]
            if missing:
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "message": f"No {from_type if from_id in missing else to_type} with id {missing[0]} exists",
                        "context": {"ids": missing},
                    }
                )
                continue
            for spec in types:
                self._associations.add((from_type, from_id, to_type, to_id, int(spec["associationTypeId"])))
            results.append(
                {
                    "fromObjectTypeId": TYPE_IDS[from_type],
                    "fromObjectId": from_id,
                    "toObjectTypeId": TYPE_IDS[to_type],
                    "toObjectId": to_id,
                    "labels": [],
                }
            )
        answer = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _timestamp()}
        if errors:
            answer.update(numErrors=len(errors), errors=errors)
            return self._answer(207, answer)
        return self._answer(201, answer)

    def _associations_archive(self, from_type: str, to_type: str, body: Any, query: Any):
        inputs, refused = self._association_inputs(from_type, to_type, body)
        if inputs is None:
            return refused
        pairs = set()
        for item in inputs:
            try:
                from_id = str(item["from"]["id"])
                targets = item["to"]
                assert isinstance(targets, list) and targets
                pairs.update((from_id, str(target["id"])) for target in targets)
            except (KeyError, TypeError, AssertionError):
                return self._fail(400, "Invalid input: every input needs from.id and a list of to ids")
        self._associations = {
            a for a in self._associations if not (a[0] == from_type and a[2] == to_type and (a[1], a[3]) in pairs)
        }
        return self._answer(204, None)
