"""The engine with another destination: a signed webhook answered by a real local HTTP server, which can ask for
single records to be sent again later."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from connector.destinations.webhook import verify_signature
from connector.models import RunStatus, SyncRecord, SyncRunError
from connector.syncs import run_sync
from tests.syncs.conftest import FAST_RETRY, seed_users

SECRET = "whsec-7d1f"


class Receiver:
    """Answers every record ``ok`` except those it is told to ask again for (once, or always)."""

    def __init__(self) -> None:
        self.batches: list[dict] = []
        self.retry_once: set[str] = set()
        self.retry_always: set[str] = set()
        self.signed = True
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.signed &= verify_signature(
                    SECRET, self.headers["X-Connector-Timestamp"], body, self.headers["X-Connector-Signature"]
                )
                batch = json.loads(body)
                receiver.batches.append(batch)
                results = []
                for record in batch.get("records", []):
                    key = record["key"]
                    if key in receiver.retry_always or key in receiver.retry_once:
                        receiver.retry_once.discard(key)
                        results.append({"key": key, "status": "retry", "reason": "busy, try later"})
                    else:
                        results.append({"key": key, "status": "ok", "id": f"remote-{key}"})
                answer = json.dumps({"results": results}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


def test_records_the_destination_asks_to_retry_go_in_a_later_batch_of_the_same_run(
    client, tenant, database, settings, receiver
):
    ids = seed_users(database, tenant.workspace_id, [{"email": f"w{i}@example.com"} for i in range(10)])
    destination = client.post(
        tenant.url("/destinations"),
        json={"name": "hook", "type": "webhook", "config": {"url": receiver.url, "secret": SECRET}},
        headers=tenant.headers,
    ).get_json()
    response = client.post(
        tenant.url("/syncs"),
        json={
            "name": "hook",
            "destination_id": destination["id"],
            "subject_type": "users",
            "destination_object": "people",
            "mappings": [{"source": {"kind": "field", "name": "email"}, "destination": "email"}],
            "identity": {"destination": "email"},
        },
        headers=tenant.headers,
    )
    sync_id = response.get_json()["id"]
    receiver.retry_once = {str(ids[2]), str(ids[5])}
    receiver.retry_always = {str(ids[7])}

    outcome = run_sync(database, sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)
    assert outcome.status == RunStatus.PARTIAL
    assert (outcome.counts.added, outcome.counts.unsent) == (9, 1)
    assert receiver.signed
    keys = [[r["key"] for r in batch["records"]] for batch in receiver.batches]
    assert len(keys[0]) == 10
    assert sorted(keys[1]) == sorted([str(ids[2]), str(ids[5]), str(ids[7])])
    assert keys[2:] == [[str(ids[7])]]  # asked again every time, until the run gives up on it
    with database.session() as session:
        stored = {r.subject_id: r for r in session.scalars(select(SyncRecord)).all()}
        errors = session.scalars(select(SyncRunError).where(SyncRunError.run_id == outcome.run_id)).all()
    assert set(stored) == set(ids) - {ids[7]}
    assert stored[ids[2]].remote_id == f"remote-{ids[2]}"
    assert [(e.subject_id, e.kind) for e in errors] == [(ids[7], "unsent")]
    assert "busy, try later" in errors[0].reason

    receiver.retry_always.clear()
    again = run_sync(database, sync_id, secret_key=settings.secret_key, retry=FAST_RETRY)
    assert again.status == RunStatus.SUCCEEDED
    assert (again.counts.added, again.counts.unchanged) == (1, 9)
