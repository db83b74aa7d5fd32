"""The webhook destination: signed bodies, per-record answers, and what each status means."""

from __future__ import annotations

import time

import pytest

from connector.destinations.base import ConfigError, OutboundRecord, TransientError, WritePlan
from connector.destinations.webhook import BATCH_HEADER, WebhookDestination, sign, verify_signature

from .conftest import WEBHOOK_SECRET, WebhookReceiver

PLAN = WritePlan("contacts", "email")


def records(count: int) -> list[OutboundRecord]:
    return [OutboundRecord(str(i), f"p{i}@example.com", {"n": i}) for i in range(count)]


@pytest.fixture
def webhook(receiver: WebhookReceiver) -> WebhookDestination:
    return WebhookDestination({"url": receiver.url, "secret": WEBHOOK_SECRET, "headers": {"X-Tenant": "acme"}})


def test_batches_are_signed_json_with_a_stable_batch_digest(receiver, webhook) -> None:
    webhook.write(PLAN, records(2))
    webhook.write(PLAN, records(2))
    first, second = receiver.deliveries
    assert first["payload"] == {
        "action": "upsert",
        "object": "contacts",
        "identity_field": "email",
        "records": [
            {"key": "0", "identity": "p0@example.com", "properties": {"n": 0}},
            {"key": "1", "identity": "p1@example.com", "properties": {"n": 1}},
        ],
    }
    assert first["headers"]["X-Tenant"] == "acme"
    assert first["headers"][BATCH_HEADER] == second["headers"][BATCH_HEADER]


def test_remote_ids_and_per_record_rejections_come_from_the_answer(webhook) -> None:
    batch = [*records(2), OutboundRecord("r", "reject@example.com", {})]
    results = {r.key: r for r in webhook.write(PLAN, batch)}
    assert results["0"].remote_id == "w-p0@example.com"
    assert results["r"].status == "rejected" and results["r"].reason == "identity not welcome"


def test_statuses_decide_retry_fail_or_reject(receiver, webhook) -> None:
    receiver.fail_next(429, **{"Retry-After": "7"})
    with pytest.raises(TransientError) as limited:
        webhook.write(PLAN, records(1))
    assert limited.value.retry_after == 7

    receiver.fail_next(502)
    with pytest.raises(TransientError):
        webhook.write(PLAN, records(1))

    receiver.fail_next(404)
    with pytest.raises(ConfigError, match="404"):
        webhook.write(PLAN, records(1))

    receiver.fail_next(422, body=b'{"error": "schema says no"}')
    results = webhook.write(PLAN, records(2))
    assert [r.status for r in results] == ["rejected", "rejected"] and "schema says no" in results[0].reason


def test_a_server_that_is_gone_is_transient(receiver) -> None:
    url = receiver.url
    receiver.stop()
    with pytest.raises(TransientError):
        WebhookDestination({"url": url, "secret": "s", "timeout_s": 0.5}).write(PLAN, records(1))


def test_verify_signature_refuses_tampering_and_replays() -> None:
    body = b'{"action":"check"}'
    now = int(time.time())
    header = sign("k", str(now), body)
    assert verify_signature("k", str(now), body, header)
    assert not verify_signature("k", str(now), body + b" ", header)
    assert not verify_signature("other", str(now), body, header)
    assert not verify_signature("k", str(now - 3600), body, sign("k", str(now - 3600), body))
    assert not verify_signature("k", None, body, header)


def test_config_refuses_non_http_urls_and_overriding_the_signature(receiver) -> None:
    with pytest.raises(ValueError):
        WebhookDestination({"url": "ftp://x", "secret": "s"})
    with pytest.raises(ValueError):
        WebhookDestination({"url": receiver.url, "secret": "s", "headers": {"x-connector-signature": "forged"}})
    assert "s3cr3t" not in repr(WebhookDestination({"url": receiver.url, "secret": "s3cr3t"}))
