"""Actions that call out run after the firing is recorded: retried, then recorded as succeeded or failed."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from connector.automation import sequences
from connector.automation.firing import DeliveryPolicy, deliver_firing, pending_firings
from connector.destinations.webhook import verify_signature
from connector.models import FiringStatus, SyncRun
from connector.security import SecretBox
from connector.syncs.connections import DestinationIn, create_destination
from connector.syncs.definitions import SyncIn, create_sync
from tests.automation.support import (
    PRO,
    SECRET,
    firings,
    ingest,
    make_playbook,
    make_segment,
    make_sequence,
    process,
    user_id,
)

HOOK_SECRET = "hook-secret-123"
NO_WAIT = DeliveryPolicy(attempts=3, initial_wait_s=0, sleep=lambda _: None)


class Receiver:
    """A webhook endpoint on 127.0.0.1 answering the statuses it is given, in order (the last one repeats)."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.requests: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

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
def receiver_factory():
    made: list[Receiver] = []

    def make(*statuses: int) -> Receiver:
        made.append(Receiver(*statuses))
        return made[-1]

    yield make
    for receiver in made:
        receiver.stop()


def fire_webhook(database, tenant, url: str) -> int:
    pro = make_segment(database, tenant.workspace_id, "Pro", PRO)
    playbook = make_playbook(
        database,
        tenant.workspace_id,
        trigger={"kind": "enters", "segment_id": pro},
        actions=[{"type": "webhook", "url": url, "secret": HOOK_SECRET}],
    )
    ingest(database, tenant.workspace_id, {"external_id": "ann", "attributes": {"plan": "pro"}})
    process(database, playbook)
    return playbook


def test_a_webhook_action_is_signed_and_recorded_when_it_lands(database, tenant, receiver_factory):
    receiver = receiver_factory(200)
    playbook = fire_webhook(database, tenant, receiver.url)
    [pending] = firings(database, playbook)
    assert pending.status == FiringStatus.PENDING

    assert deliver_firing(database, pending.id, SECRET, NO_WAIT) == "succeeded"
    [(headers, body)] = receiver.requests
    assert verify_signature(HOOK_SECRET, headers["X-Connector-Timestamp"], body, headers["X-Connector-Signature"])
    assert headers["X-Connector-Firing"] == str(pending.id)
    assert json.loads(body)["subject"]["external_id"] == "ann"
    [done] = firings(database, playbook)
    assert (done.status, done.attempts, done.results[0]["status"]) == (FiringStatus.SUCCEEDED, 1, "ok")
    # Delivered once: it is no longer pending.
    with database.session() as session:
        assert pending_firings(session) == []
    assert deliver_firing(database, pending.id, SECRET, NO_WAIT) is None


def test_a_failing_webhook_is_retried_then_recorded_as_failed(database, tenant, receiver_factory):
    receiver = receiver_factory(503)
    playbook = fire_webhook(database, tenant, receiver.url)
    [pending] = firings(database, playbook)

    assert deliver_firing(database, pending.id, SECRET, NO_WAIT) == "failed"
    assert len(receiver.requests) == NO_WAIT.attempts
    [failed] = firings(database, playbook)
    assert failed.status == FiringStatus.FAILED
    assert "webhook answered 503" in failed.error
    assert failed.results[0]["status"] == "failed"


def test_a_webhook_that_recovers_within_the_retries_succeeds(database, tenant, receiver_factory):
    receiver = receiver_factory(500, 429, 200)
    playbook = fire_webhook(database, tenant, receiver.url)
    [pending] = firings(database, playbook)
    assert deliver_firing(database, pending.id, SECRET, NO_WAIT) == "succeeded"
    assert len(receiver.requests) == 3


def test_the_webhook_secret_is_never_returned(database, tenant, receiver_factory):
    receiver = receiver_factory(200)
    playbook = fire_webhook(database, tenant, receiver.url)
    from connector.api.automation_documents import playbook_json
    from connector.automation.playbooks import get_playbook

    with database.session() as session:
        shown = json.dumps(playbook_json(get_playbook(session, tenant.workspace_id, playbook)), default=str)
    assert HOOK_SECRET not in shown
    assert "********" in shown


def test_a_sequence_step_calls_the_sequences_signed_webhook(database, tenant, receiver_factory):
    receiver = receiver_factory(200)
    ws = tenant.workspace_id
    sequence_id = make_sequence(database, ws, webhook_url=receiver.url, webhook_secret=HOOK_SECRET)
    ingest(database, ws, {"external_id": "ann", "default_channel": "sms"})
    ann = user_id(database, ws, "ann")
    with database.session() as session:
        sequence = sequences.get_sequence(session, ws, sequence_id)
        sequences.enrol(session, sequence, [ann], fallback_channel="email", source="api")
    with database.session() as session:
        [fired] = sequences.fire_due_steps(session)
    assert sequences.notify_step(fired, SECRET, NO_WAIT) == "HTTP 200"
    [(headers, body)] = receiver.requests
    assert verify_signature(HOOK_SECRET, headers["X-Connector-Timestamp"], body, headers["X-Connector-Signature"])
    assert json.loads(body) == {
        "enrolment_id": fired.enrolment_id,
        "sequence_id": sequence_id,
        "step": 0,
        "user_id": ann,
        "channel": "sms",
    }


def test_a_run_sync_action_runs_the_sync_and_records_the_run(database, tenant, tmp_path):
    ws = tenant.workspace_id
    with database.session() as session:
        target = create_destination(
            session,
            ws,
            SecretBox(SECRET),
            DestinationIn(name="files", type="file", config={"directory": str(tmp_path)}),
        )
        sync = create_sync(
            session,
            ws,
            SyncIn(
                name="people",
                destination_id=target.id,
                subject_type="users",
                destination_object="people",
                mappings=[{"source": {"kind": "field", "name": "email"}, "destination": "email"}],
                identity={"destination": "email"},
                schedule={"kind": "manual"},
            ),
        ).id
    pro = make_segment(database, ws, "Pro", PRO)
    playbook = make_playbook(
        database, ws, trigger={"kind": "enters", "segment_id": pro}, actions=[{"type": "run_sync", "sync_id": sync}]
    )
    ingest(database, ws, {"external_id": "ann", "email": "ann@acme.example", "attributes": {"plan": "pro"}})
    process(database, playbook)
    [pending] = firings(database, playbook)
    assert deliver_firing(database, pending.id, SECRET, NO_WAIT) == "succeeded"
    with database.session() as session:
        [run] = session.scalars(select(SyncRun).where(SyncRun.sync_id == sync)).all()
    assert (run.trigger, run.status.value) == ("playbook", "succeeded")
    assert "ann@acme.example" in (tmp_path / "people.jsonl").read_text()
