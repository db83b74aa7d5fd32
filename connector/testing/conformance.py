"""The conformance suite every destination passes, against a real server (or disk).

A test class subclasses ``DestinationConformance`` and provides a ``harness`` fixture returning a ``Harness``:
the destination under test, and how to look at (and break) what stands behind it. It ships inside the package so
that a destination from another package runs the same suite with one import (pytest required)::

    from connector.testing.conformance import DestinationConformance, Harness

    class TestMyDestination(DestinationConformance):
        @pytest.fixture
        def harness(self):
            yield Harness(destination=..., misconfigured=..., stored=..., fail_transiently=..., recover=..., ...)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from connector.destinations.base import (
    ConfigError,
    Destination,
    FieldSpec,
    OutboundRecord,
    RecordResult,
    TransientError,
    WritePlan,
)

PLAN = WritePlan(
    object_type="contacts",
    identity_field="email",
    fields=(FieldSpec("firstname", "text", "First name"), FieldSpec("segments", "multi_select", "Segments", ("VIP",))),
)


@dataclass
class Harness:
    destination: Destination
    # A destination of the same type whose credentials (or location) are wrong.
    misconfigured: Callable[[], Destination]
    # What the far side holds now for PLAN.object_type: identity -> properties.
    stored: Callable[[], dict[str, dict[str, Any]]]
    # Make the next calls fail transiently (a 503, a full disk...), and make them work again.
    fail_transiently: Callable[[], None]
    recover: Callable[[], None]
    # A record this destination refuses (None: it refuses nothing).
    invalid: OutboundRecord | None = None
    # Field names the far side knows for PLAN.object_type (None: it has no schema).
    fields: Callable[[], set[str]] | None = None
    plan: WritePlan = PLAN

    def records(self, count: int, prefix: str = "person", first: str = "Ada") -> list[OutboundRecord]:
        segments = self.destination.render_multi_select(["VIP"])
        return [
            OutboundRecord(
                f"{prefix}-{i}", f"{prefix}{i}@example.com", {"firstname": f"{first}{i}", "segments": segments}
            )
            for i in range(count)
        ]


def by_key(results: list[RecordResult]) -> dict[str, RecordResult]:
    return {result.key: result for result in results}


class DestinationConformance:
    def test_check_succeeds(self, harness: Harness) -> None:
        harness.destination.check()

    def test_check_with_bad_credentials_raises_config_error(self, harness: Harness) -> None:
        with pytest.raises(ConfigError):
            harness.misconfigured().check()

    def test_prepare_creates_fields_idempotently(self, harness: Harness) -> None:
        harness.destination.prepare(harness.plan)
        first = harness.fields() if harness.fields else None
        harness.destination.prepare(harness.plan)
        if harness.fields:
            assert {f.name for f in harness.plan.fields} <= first
            assert harness.fields() == first

    def test_write_returns_exactly_one_result_per_input(self, harness: Harness) -> None:
        harness.destination.prepare(harness.plan)
        batch = harness.records(7) + ([harness.invalid] if harness.invalid else [])
        results = harness.destination.write(harness.plan, batch)
        assert sorted(r.key for r in results) == sorted(r.key for r in batch)
        assert all(r.status in ("ok", "rejected") for r in results)

    def test_written_records_arrive_with_their_properties(self, harness: Harness) -> None:
        harness.destination.prepare(harness.plan)
        batch = harness.records(3)
        assert all(r.status == "ok" for r in harness.destination.write(harness.plan, batch))
        stored = harness.stored()
        for record in batch:
            assert stored[record.identity]["firstname"] == record.properties["firstname"]

    def test_upserting_twice_is_idempotent(self, harness: Harness) -> None:
        harness.destination.prepare(harness.plan)
        batch = harness.records(5)
        first = by_key(harness.destination.write(harness.plan, batch))
        second = by_key(harness.destination.write(harness.plan, batch))
        assert {k: r.status for k, r in first.items()} == {k: r.status for k, r in second.items()}
        assert all(first[k].remote_id == second[k].remote_id for k in first)
        stored = harness.stored()
        assert len(stored) == 5
        changed = harness.records(5, first="Grace")
        harness.destination.write(harness.plan, changed)
        assert {v["firstname"] for v in harness.stored().values()} == {f"Grace{i}" for i in range(5)}

    def test_rejected_records_carry_a_reason_and_do_not_hold_back_others(self, harness: Harness) -> None:
        if harness.invalid is None:
            pytest.skip("this destination refuses no record")
        harness.destination.prepare(harness.plan)
        batch = [*harness.records(4), harness.invalid]
        results = by_key(harness.destination.write(harness.plan, batch))
        rejected = results[harness.invalid.key]
        assert rejected.status == "rejected" and rejected.reason
        assert all(results[r.key].status == "ok" for r in batch[:4])
        assert set(harness.stored()) >= {r.identity for r in batch[:4]}

    def test_transient_failures_raise_transient_error_and_the_retry_lands(self, harness: Harness) -> None:
        harness.destination.prepare(harness.plan)
        batch = harness.records(3)
        harness.fail_transiently()
        try:
            with pytest.raises(TransientError):
                harness.destination.write(harness.plan, batch)
        finally:
            harness.recover()
        assert all(r.status == "ok" for r in harness.destination.write(harness.plan, batch))
        assert set(harness.stored()) == {r.identity for r in batch}

    def test_remove_takes_records_away_and_tolerates_absent_ones(self, harness: Harness) -> None:
        if not harness.destination.supports_remove:
            pytest.skip("this destination cannot remove")
        harness.destination.prepare(harness.plan)
        batch = harness.records(4)
        harness.destination.write(harness.plan, batch)
        gone = [*batch[:2], OutboundRecord("never-sent", "never@example.com")]
        results = harness.destination.remove(harness.plan, gone)
        assert sorted(r.key for r in results) == sorted(r.key for r in gone)
        assert all(r.status == "ok" for r in results)
        assert set(harness.stored()) == {r.identity for r in batch[2:]}
        assert all(r.status == "ok" for r in harness.destination.remove(harness.plan, gone))

    def test_an_empty_batch_makes_no_results(self, harness: Harness) -> None:
        assert harness.destination.write(harness.plan, []) == []
