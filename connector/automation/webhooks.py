"""Signed webhook calls made by automation (playbook actions, sequence steps): HMAC as the webhook destination
signs, retried with tenacity, never inside a database transaction."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import urllib3
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from connector.destinations.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign


class TransientCallError(Exception):
    """A call that may succeed if tried again (timeout, connection refused, 408, 429, 5xx)."""


@dataclass(frozen=True)
class DeliveryPolicy:
    attempts: int = 5
    initial_wait_s: float = 1.0
    max_wait_s: float = 30.0
    timeout_s: float = 10.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)


_pool = urllib3.PoolManager(retries=False)


def post_signed(url: str, secret: str, payload: dict, extra_headers: dict[str, str], policy: DeliveryPolicy) -> str:
    """POST ``payload`` as JSON, signed as the webhook destination signs (``X-Connector-Signature``), retrying
    timeouts, refused connections, 408, 429 and 5xx as ``policy`` says; returns ``HTTP <status>`` or raises."""
    body = json.dumps(payload, separators=(",", ":")).encode()

    def attempt() -> str:
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
            **extra_headers,
        }
        try:
            response = _pool.request("POST", url, body=body, headers=headers, timeout=policy.timeout_s, redirect=False)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransientCallError(f"could not reach the webhook: {exc}") from exc
        if response.status in (408, 429) or response.status >= 500:
            raise TransientCallError(f"webhook answered {response.status}")
        if not 200 <= response.status < 300:
            raise RuntimeError(f"webhook answered {response.status}")
        return f"HTTP {response.status}"

    retrying = Retrying(
        retry=retry_if_exception_type(TransientCallError),
        stop=stop_after_attempt(policy.attempts),
        wait=wait_exponential(multiplier=policy.initial_wait_s, max=policy.max_wait_s),
        sleep=policy.sleep,
        reraise=True,
    )
    return retrying(attempt)
