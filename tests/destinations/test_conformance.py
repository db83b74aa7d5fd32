"""Every destination passes the same suite: HubSpot (through the real client, against the sandbox), a webhook
(against a receiver checking signatures) and files (on disk, with /dev/full standing in for a full disk)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.destinations.base import OutboundRecord
from connector.destinations.file import FileDestination
from connector.destinations.hubspot import HubSpotDestination
from connector.destinations.webhook import WebhookDestination
from connector.testing.conformance import PLAN, DestinationConformance, Harness
from connector.testing.hubspot_sandbox import FaultPlan, HubSpotSandbox

from .conftest import WEBHOOK_SECRET, WebhookReceiver


class TestHubSpotConformance(DestinationConformance):
    @pytest.fixture
    def harness(self, sandbox: HubSpotSandbox) -> Iterator[Harness]:
        destination = HubSpotDestination({"access_token": "sandbox-token", "base_url": sandbox.url, "timeout_s": 2})

        def stored() -> dict[str, dict[str, Any]]:
            return {r["properties"]["email"]: r["properties"] for r in sandbox.records(PLAN.object_type)}

        def fields() -> set[str]:
            return {p["name"] for p in sandbox._store(PLAN.object_type).properties.values()}

        yield Harness(
            destination=destination,
            misconfigured=lambda: HubSpotDestination({"access_token": "wrong-token", "base_url": sandbox.url}),
            stored=stored,
            fail_transiently=lambda: sandbox.set_faults(FaultPlan(rate_5xx=1.0)),
            recover=sandbox.set_faults,
            invalid=OutboundRecord("bad-email", "not-an-email", {"firstname": "Nobody"}),
            fields=fields,
        )
        destination.close()


class TestWebhookConformance(DestinationConformance):
    @pytest.fixture
    def harness(self, receiver: WebhookReceiver) -> Iterator[Harness]:
        destination = WebhookDestination({"url": receiver.url, "secret": WEBHOOK_SECRET, "timeout_s": 2})
        yield Harness(
            destination=destination,
            misconfigured=lambda: WebhookDestination({"url": receiver.url, "secret": "not-the-secret"}),
            stored=lambda: dict(receiver.state.get(PLAN.object_type, {})),
            fail_transiently=lambda: receiver.fail_next(503, times=1, **{"Retry-After": "1"}),
            recover=lambda: None,
            invalid=OutboundRecord("bad", "reject-me@example.com", {"firstname": "No"}),
        )
        destination.close()


class TestFileConformance(DestinationConformance):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> Iterator[Harness]:
        directory = tmp_path / "out"
        destination = FileDestination({"directory": str(directory)})
        path = directory / f"{PLAN.object_type}.jsonl"

        def stored() -> dict[str, dict[str, Any]]:
            state: dict[str, dict[str, Any]] = {}
            for line in path.read_text().splitlines() if path.exists() and not path.is_symlink() else []:
                entry = json.loads(line)
                if entry["op"] == "remove":
                    state.pop(entry["identity"], None)
                else:
                    state[entry["identity"]] = entry["properties"]
            return state

        def fail_transiently() -> None:
            if not os.path.exists("/dev/full"):
                pytest.skip("needs /dev/full")
            path.unlink(missing_ok=True)
            path.symlink_to("/dev/full")  # every write fails: "No space left on device"

        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory")
        yield Harness(
            destination=destination,
            misconfigured=lambda: FileDestination({"directory": str(blocker / "sub")}),
            stored=stored,
            fail_transiently=fail_transiently,
            recover=lambda: path.unlink(missing_ok=True),
        )
