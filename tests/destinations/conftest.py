"""Real servers on 127.0.0.1 for the destination tests: the HubSpot sandbox and a webhook receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from connector.destinations.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from connector.testing.hubspot_sandbox import HubSpotSandbox

WEBHOOK_SECRET = "receiver-secret"


@pytest.fixture(scope="session")
def _sandbox_server() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(token="sandbox-token", readonly_tokens=["readonly-token"]) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(_sandbox_server: HubSpotSandbox) -> Iterator[HubSpotSandbox]:
    """The session's sandbox, emptied: no records, default properties, no faults, no rate limit."""
    _sandbox_server.reset()
    _sandbox_server.set_rate_limit(None)
    _sandbox_server.whole_batch_errors = False
    _sandbox_server.send_retry_after = False
    yield _sandbox_server
    _sandbox_server.set_faults()


class WebhookReceiver:
    """A webhook endpoint that checks signatures and keeps what it was sent, per object, by identity.

    Records whose identity contains "reject" are refused per record; ``fail_next`` makes the next answers fail
    with a status (and Retry-After) of the test's choosing.
    """

    def __init__(self, secret: str = WEBHOOK_SECRET) -> None:
        self.secret = secret
        self.lock = threading.Lock()
        self.state: dict[str, dict[str, dict[str, Any]]] = {}
        self.deliveries: list[dict[str, Any]] = []
        self.failures: list[tuple[int, dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, body = receiver.receive(dict(self.headers), raw)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def fail_next(self, status: int, times: int = 1, body: bytes = b"try later", **headers: str) -> None:
        with self.lock:
            self.failures.extend([(status, headers, body)] * times)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def receive(self, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            if self.failures:
                return self.failures.pop(0)
            if not verify_signature(self.secret, headers.get(TIMESTAMP_HEADER), raw, headers.get(SIGNATURE_HEADER)):
                return 401, {}, b"bad signature"
            payload = json.loads(raw)
            self.deliveries.append({"headers": headers, "payload": payload})
            action = payload["action"]
            if action == "check":
                return 200, {}, b""
            store = self.state.setdefault(payload["object"], {})
            results = []
            for record in payload["records"]:
                if "reject" in record["identity"]:
                    results.append({"key": record["key"], "status": "rejected", "reason": "identity not welcome"})
                elif action == "remove":
                    store.pop(record["identity"], None)
                else:
                    store[record["identity"]] = record["properties"]
                    results.append({"key": record["key"], "status": "ok", "id": "w-" + record["identity"]})
            return 200, {"Content-Type": "application/json"}, json.dumps({"results": results}).encode()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


# The conformance suite lives in the package; its assertions explain themselves like a test module's (registered
# here, before the test modules import it).
pytest.register_assert_rewrite("connector.testing.conformance")
