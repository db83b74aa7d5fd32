"""A signed JSON webhook: each batch is one POST.

Body::

    {"action": "upsert" | "update" | "remove" | "check", "object": "contacts", "identity_field": "email",
     "records": [{"key": "42", "identity": "a@example.com", "properties": {...}}, ...]}

Headers: ``X-Connector-Timestamp`` (unix seconds), ``X-Connector-Signature: sha256=<hex>`` where hex is the
HMAC-SHA256, keyed by the configured secret, of ``f"{timestamp}.".encode() + body``, and ``X-Connector-Batch``,
a digest of the records that stays the same when a batch is sent again (receivers may use it to drop repeats).
Receivers check the signature with ``verify_signature``.

Answers: any 2xx acknowledges the whole batch, unless its JSON body says otherwise per record:
``{"results": [{"key": "42", "status": "rejected", "reason": "..."}]}`` (status ``ok``, ``rejected`` or
``retry``; ``id`` is kept as the remote id). 408, 429 and 5xx are retried later (``Retry-After`` honoured);
401, 403, 404, 410 and redirects fail the run; any other 4xx rejects every record of the batch with the answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field, SecretStr, field_validator

from connector.destinations.base import (
    ConfigError,
    Destination,
    DestinationConfig,
    OutboundRecord,
    RecordResult,
    TransientError,
    WritePlan,
    json_default,
    retry_after_seconds,
)

SIGNATURE_HEADER = "X-Connector-Signature"
TIMESTAMP_HEADER = "X-Connector-Timestamp"
BATCH_HEADER = "X-Connector-Batch"
MAX_REASON = 500
OWN_HEADERS = {h.lower() for h in (SIGNATURE_HEADER, TIMESTAMP_HEADER, BATCH_HEADER, "Content-Type", "Content-Length")}


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The signature header value for a body sent at ``timestamp``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str | bytes,
    timestamp: str | None,
    body: bytes | str,
    header: str | None,
    *,
    tolerance_s: float | None = 300,
    now: float | None = None,
) -> bool:
    """Whether a received request is ours: the signature matches and the timestamp is recent (no replays)."""
    if not timestamp or not header:
        return False
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if tolerance_s is not None and abs((time.time() if now is None else now) - sent_at) > tolerance_s:
        return False
    raw = body.encode() if isinstance(body, str) else body
    return hmac.compare_digest(sign(secret, timestamp, raw), header)


class WebhookConfig(DestinationConfig):
    url: str = Field(description="Where batches are POSTed")
    secret: SecretStr = Field(description="HMAC-SHA256 key for the X-Connector-Signature header")
    timeout_s: tuple[float, float] = Field((5.0, 30.0), description="Connect and read timeouts, seconds")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value

    @field_validator("timeout_s", mode="before")
    @classmethod
    def _one_or_two_timeouts(cls, value: Any) -> Any:
        return (value, value) if isinstance(value, int | float) else value

    @field_validator("headers")
    @classmethod
    def _not_ours(cls, value: dict[str, str]) -> dict[str, str]:
        clash = sorted(name for name in value if name.lower() in OWN_HEADERS)
        if clash:
            raise ValueError(f"these headers are set by the webhook itself: {', '.join(clash)}")
        return value


class WebhookDestination(Destination):
    type = "webhook"
    label = "Webhook"
    Config = WebhookConfig
    max_batch_size = 500
    supports_remove = True

    def __init__(self, config: WebhookConfig | Mapping[str, Any]) -> None:
        super().__init__(config)
        import urllib3

        self._urllib3 = urllib3
        connect, read = self.config.timeout_s
        self._pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=connect, read=read))

    def check(self) -> None:
        self._post({"action": "check"}, what="check")

    def write(self, plan: WritePlan, batch: Sequence[OutboundRecord]) -> list[RecordResult]:
        return self._send(plan.mode, plan, batch)

    def remove(self, plan: WritePlan, batch: Sequence[OutboundRecord]) -> list[RecordResult]:
        return self._send("remove", plan, batch)

    def close(self) -> None:
        self._pool.clear()

    def _send(self, action: str, plan: WritePlan, batch: Sequence[OutboundRecord]) -> list[RecordResult]:
        if len(batch) > self.max_batch_size:
            raise ValueError(f"at most {self.max_batch_size} records per batch, got {len(batch)}")
        if not batch:
            return []
        records = [{"key": r.key, "identity": r.identity, "properties": dict(r.properties)} for r in batch]
        payload = {"action": action, "object": plan.object_type, "identity_field": plan.identity_field}
        status, data = self._post({**payload, "records": records}, what=action)
        if not 200 <= status < 300:
            reason = f"webhook answered {status}: {data.decode('utf-8', 'replace')[:MAX_REASON]}"
            return [RecordResult.rejected(r.key, reason) for r in batch]
        return self._results(batch, data)

    def _post(self, payload: dict[str, Any], what: str) -> tuple[int, bytes]:
        """POST a signed body; return (status, body) of a 2xx or a record-level 4xx, raise for the rest."""
        body = json.dumps(payload, separators=(",", ":"), default=json_default, ensure_ascii=False).encode()
        timestamp = str(int(time.time()))
        headers = {
            **self.config.headers,
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.config.secret.get_secret_value(), timestamp, body),
            BATCH_HEADER: hashlib.sha256(body).hexdigest()[:32],
        }
        self._throttle()
        try:
            response = self._pool.request("POST", self.config.url, body=body, headers=headers, redirect=False)
        except (self._urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransientError(f"webhook did not answer the {what}: {type(exc).__name__}: {exc}") from exc
        status, data = response.status, response.data
        text = data.decode("utf-8", "replace")[:MAX_REASON]
        if status in (408, 429) or status >= 500:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            raise TransientError(f"webhook answered the {what} with {status}: {text}", retry_after=wait)
        if status in (401, 403, 404, 410) or 300 <= status < 400:
            raise ConfigError(f"webhook refused the {what} ({status}): {text}")
        if what == "check" and not 200 <= status < 300:
            raise ConfigError(f"webhook refused the check ({status}): {text}")
        return status, data

    @staticmethod
    def _results(batch: Sequence[OutboundRecord], data: bytes) -> list[RecordResult]:
        answered: dict[str, RecordResult] = {}
        try:
            body = json.loads(data) if data.strip() else None
        except ValueError:
            body = None
        entries = body.get("results") if isinstance(body, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or "key" not in entry:
                continue
            key, status = str(entry["key"]), entry.get("status", "ok")
            reason = str(entry.get("reason") or "refused by the webhook")[:MAX_REASON]
            if status == "rejected":
                answered[key] = RecordResult.rejected(key, reason)
            elif status == "retry":
                answered[key] = RecordResult.retry(key, reason)
            else:
                remote_id = entry.get("id")
                answered[key] = RecordResult.ok(key, None if remote_id is None else str(remote_id))
        return [answered.get(record.key) or RecordResult.ok(record.key) for record in batch]
