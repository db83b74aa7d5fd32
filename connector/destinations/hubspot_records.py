"""Writing and removing HubSpot records: batch upserts keyed by the identity property, update-only and
create-only modes, identity changes moved in place by remote id, and a batch HubSpot refuses as a whole split until
the bad records stand alone. ``HubSpotRecords`` is the write half of ``HubSpotDestination``."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from connector.destinations.base import ConfigError, OutboundRecord, RecordResult, WritePlan
from connector.destinations.hubspot_wire import (
    Mapping,
    ObjectApi,
    Refused,
    hubspot_message,
    identity_key,
    normal_identity,
    render_value,
)

log = logging.getLogger(__name__)


class HubSpotRecords:
    """Record writes (see the module's docstring); the destination provides ``_api``, ``_call`` and the rest."""

    def write(self, plan: WritePlan, batch: Sequence[OutboundRecord]) -> list[RecordResult]:
        api = self._api(plan.object_type)
        results, records = self._screen(plan, batch)
        if records:
            moved, records = self._move(api, plan, records)
            results.update(moved)
        if records:
            if plan.mode == "update":
                results.update(self._update(api, plan, records))
            elif plan.mode == "create":
                results.update(self._create_only(api, plan, records))
            else:
                results.update(self._upsert(api, plan, records))
        return [results[record.key] for record in batch]

    def remove(self, plan: WritePlan, batch: Sequence[OutboundRecord]) -> list[RecordResult]:
        """Archive the records found by identity; those not found are gone already, which is what was asked."""
        api = self._api(plan.object_type)
        results, records = self._screen(plan, batch)
        found = self._find(api, plan, records)
        ids = list(dict.fromkeys(found.values()))
        if ids:
            inputs = [api.models.SimplePublicObjectId(id=i, local_vars_configuration=api.configuration) for i in ids]
            body = api.models.BatchInputSimplePublicObjectId(inputs=inputs, local_vars_configuration=api.configuration)
            try:
                self._call(api.batch.archive, body, raw=True)
            except Refused as exc:
                raise ConfigError(f"HubSpot refused to archive {plan.object_type}: {exc.message}") from exc
        for record in records:
            results[record.key] = RecordResult.ok(record.key, found.get(record.key))
        return [results[record.key] for record in batch]

    def _move(
        self, api: ObjectApi, plan: WritePlan, records: list[OutboundRecord]
    ) -> tuple[dict[str, RecordResult], list[OutboundRecord]]:
        """Records whose identity changed (HubSpot lets ``email`` change on a contact): update the contact they
        were delivered as, by its id (known, or found by the previous identity), so no second contact appears.
        Returns their results and the records left to upsert (unchanged identity, or the old one is gone)."""
        field = plan.identity_field
        moving = [
            r
            for r in records
            if r.previous_identity and identity_key(field, r.previous_identity) != identity_key(field, r.identity)
        ]
        if not moving:
            return {}, records
        ids = {r.key: r.remote_id for r in moving if r.remote_id}
        unknown = [replace(r, identity=r.previous_identity) for r in moving if not r.remote_id]
        if unknown:
            ids.update(self._find(api, plan, unknown))
        by_id = [r for r in moving if r.key in ids]
        results = self._update_by_id(api, plan, by_id, ids) if by_id else {}
        # An id HubSpot no longer knows (the contact was deleted or merged): upsert by the new identity instead.
        gone = {k for k, r in results.items() if r.status == "rejected" and "not found" in (r.reason or "").lower()}
        for key in gone:
            del results[key]
        return results, [r for r in records if r.key not in results]

    def _screen(
        self, plan: WritePlan, batch: Sequence[OutboundRecord]
    ) -> tuple[dict[str, RecordResult], list[OutboundRecord]]:
        """Refuse what must not be sent: more than a batch, no identity, one identity twice (HubSpot fails the
        whole batch for a repeated id)."""
        if len(batch) > self.max_batch_size:
            raise ValueError(f"at most {self.max_batch_size} records per batch, got {len(batch)}")
        results: dict[str, RecordResult] = {}
        records: list[OutboundRecord] = []
        seen: set[str] = set()
        for record in batch:
            identity = identity_key(plan.identity_field, record.identity or "")
            if not identity:
                results[record.key] = RecordResult.rejected(record.key, f"no value for {plan.identity_field}")
            elif identity in seen:
                reason = f"{plan.identity_field} {record.identity!r} appears twice in one batch"
                results[record.key] = RecordResult.rejected(record.key, reason)
            else:
                seen.add(identity)
                records.append(record)
        return results, records

    @staticmethod
    def _inputs(records: Sequence[tuple[OutboundRecord, dict[str, Any]]], **common: Any) -> list[dict[str, Any]]:
        """Batch inputs in HubSpot's JSON shape: trace id = key, properties rendered as strings. Plain dicts, which
        the client sends as they are: building one of its models per record (each attribute set through a
        validating property, then read back to serialise it) cost more than the rest of a batch's request."""
        return [
            {
                "objectWriteTraceId": record.key,
                "properties": {name: render_value(value) for name, value in record.properties.items()},
                **common,
                **extra,
            }
            for record, extra in records
        ]

    def _upsert(self, api: ObjectApi, plan: WritePlan, records: list[OutboundRecord]) -> dict[str, RecordResult]:
        inputs = self._inputs([(record, {"id": record.identity}) for record in records], idProperty=plan.identity_field)
        try:
            response = self._call(api.batch.upsert, {"inputs": inputs}, raw=True)
        except Refused as exc:
            return self._isolate(exc, plan, records, lambda part: self._upsert(api, plan, part))
        return _match_results(response, records, plan.identity_field)

    def _update(self, api: ObjectApi, plan: WritePlan, records: list[OutboundRecord]) -> dict[str, RecordResult]:
        """Update only records HubSpot has: find them by identity, then update them by id."""
        found = self._find(api, plan, records)
        results = {
            r.key: RecordResult.rejected(r.key, "not found in HubSpot (update mode)")
            for r in records
            if r.key not in found
        }
        existing = [r for r in records if r.key in found]
        if existing:
            results.update(self._update_by_id(api, plan, existing, found))
        return results

    def _create_only(self, api: ObjectApi, plan: WritePlan, records: list[OutboundRecord]) -> dict[str, RecordResult]:
        """Create only records HubSpot does not have: those it has are left alone (``exists``)."""
        found = self._find(api, plan, records)
        results = {r.key: RecordResult.exists(r.key, found[r.key]) for r in records if r.key in found}
        missing = [r for r in records if r.key not in found]
        if missing:
            results.update(self._upsert(api, plan, missing))
        return results

    def _update_by_id(
        self, api: ObjectApi, plan: WritePlan, records: list[OutboundRecord], ids: Mapping[str, str]
    ) -> dict[str, RecordResult]:
        inputs = self._inputs([(record, {"id": ids[record.key]}) for record in records])
        try:
            response = self._call(api.batch.update, {"inputs": inputs}, raw=True)
        except Refused as exc:
            return self._isolate(exc, plan, records, lambda part: self._update_by_id(api, plan, part, ids))
        by_id = {ids[record.key]: record for record in records}
        return _match_results(response, records, plan.identity_field, by_id=by_id)

    def _find(self, api: ObjectApi, plan: WritePlan, records: Sequence[OutboundRecord]) -> dict[str, str]:
        """Remote ids of the records HubSpot has, by key (batch read by the identity property)."""
        if not records:
            return {}
        inputs = [
            api.models.SimplePublicObjectId(id=r.identity, local_vars_configuration=api.configuration) for r in records
        ]
        body = api.models.BatchReadInputSimplePublicObjectId(
            id_property=plan.identity_field,
            inputs=inputs,
            properties=[plan.identity_field],
            local_vars_configuration=api.configuration,
        )
        try:
            response = self._call(api.batch.read, body, raw=True)
        except Refused as exc:
            raise ConfigError(
                f"HubSpot refused to read {plan.object_type} by {plan.identity_field}: {exc.message}"
            ) from exc
        keys = _IdentityIndex(records)
        found: dict[str, str] = {}
        for result in response.get("results") or []:
            record = keys.get((result.get("properties") or {}).get(plan.identity_field))
            if record is not None:
                found[record.key] = str(result["id"])
        return found

    def _isolate(self, exc: Refused, plan: WritePlan, records: list[OutboundRecord], send) -> dict[str, RecordResult]:
        """HubSpot refused the whole batch without saying which input: halve it until the bad ones stand alone."""
        if exc.status == 404:
            raise ConfigError(f"HubSpot does not know {plan.object_type!r}: {exc.message}") from exc
        if "PROPERTY_DOESNT_EXIST" in exc.codes or "non-unique" in exc.message:
            raise ConfigError(f"HubSpot refused the {plan.object_type} batch: {exc.message}") from exc
        if len(records) == 1:
            return {records[0].key: RecordResult.rejected(records[0].key, exc.message)}
        log.debug("HubSpot refused a batch of %d (%s); splitting it", len(records), exc.status)
        middle = len(records) // 2
        return {**send(records[:middle]), **send(records[middle:])}


class _IdentityIndex:
    """Records by identity value: exact first, then case-insensitively (HubSpot lowercases emails)."""

    def __init__(self, records: Iterable[OutboundRecord]) -> None:
        records = list(records)
        self.exact = {r.identity: r for r in records}
        self.folded = {normal_identity(r.identity): r for r in records}

    def get(self, value: Any) -> OutboundRecord | None:
        if value is None:
            return None
        return self.exact.get(value) or self.folded.get(normal_identity(str(value)))


def _match_results(
    response: Mapping[str, Any],
    records: Sequence[OutboundRecord],
    identity_field: str,
    by_id: Mapping[str, OutboundRecord] | None = None,
) -> dict[str, RecordResult]:
    """One result per record from a 200 or 207 batch answer (JSON), whatever order HubSpot listed them in.

    Refusals are matched by ``objectWriteTraceId`` (= key) or, failing that, by an identity named in the error's
    context; successes by trace id, by remote id (updates) or by the identity property's value.
    """
    by_key = {record.key: record for record in records}
    identities = _IdentityIndex(records)
    results: dict[str, RecordResult] = {}

    errors = [e for e in response.get("errors") or [] if isinstance(e, dict)]
    for error in errors:
        context = error.get("context") or {}
        keys = [k for k in context.get("objectWriteTraceId") or [] if k in by_key]
        if not keys:
            named = (identities.get(v) for values in context.values() for v in values or [])
            keys = [record.key for record in named if record is not None]
        reason = hubspot_message(error, "refused by HubSpot")
        for key in keys:
            results[key] = RecordResult.rejected(key, reason)

    unmatched = []
    for result in response.get("results") or []:
        remote_id = str(result.get("id"))
        record = by_key.get(result.get("objectWriteTraceId") or "")
        if record is None and by_id is not None:
            record = by_id.get(remote_id)
        if record is None:
            record = identities.get((result.get("properties") or {}).get(identity_field))
        if record is None or record.key in results:
            unmatched.append(remote_id)
        else:
            results[record.key] = RecordResult.ok(record.key, remote_id)

    rest = [record for record in records if record.key not in results]
    if len(rest) == 1 and len(unmatched) == 1:
        results[rest[0].key] = RecordResult.ok(rest[0].key, unmatched[0])
    elif not errors or len(unmatched) >= len(rest):
        # A complete answer (200) means every input was written, even if we cannot tell which id is whose.
        results.update((record.key, RecordResult.ok(record.key)) for record in rest)
    else:
        reason = "HubSpot's answer named neither a result nor an error for this record"
        results.update((record.key, RecordResult.retry(record.key, reason)) for record in rest)
    return results
