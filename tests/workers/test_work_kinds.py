"""Source runs, automation and segment evaluations on real ``connector worker`` processes over RabbitMQ: each
delivered twice, done once."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from connector import create_app
from connector.models import Enrolment, PlaybookFiring, Segment, SegmentActionRun, SourceRun
from connector.scheduling.automation import process_automation
from connector.scheduling.dispatch import (
    AUTOMATION_PROCESS_JOB,
    EVALUATION_JOB,
    PLAYBOOK_JOB,
    SEGMENT_ACTION_JOB,
    SOURCE_JOB,
    SOURCE_RUN_JOB,
    use_dispatcher,
)
from connector.scheduling.jobs import run_scheduled_source
from connector.sources.runs import prepare_run
from tests.automation.support import PRO, ingest, make_action, make_playbook, make_segment, make_sequence, welcome_pros
from tests.sources.conftest import BOX, _file_warehouses_allowed, make_model, make_source, warehouse  # noqa: F401
from tests.sources.test_runs import PEOPLE, people, users


def wait_until(condition, timeout: float = 60, what: str = "the work"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} was not done after {timeout} s")
        time.sleep(0.2)


def source_runs(database, model_id: int) -> list[SourceRun]:
    with database.session() as session:
        return list(session.scalars(select(SourceRun).where(SourceRun.model_id == model_id).order_by(SourceRun.id)))


def people_model(database, tenant, warehouse):  # noqa: F811
    warehouse.run(PEOPLE)
    warehouse.insert("people", people(5))
    source = make_source(database, tenant, warehouse)
    model = make_model(
        database,
        tenant,
        source,
        kind="users",
        query="SELECT id, email, plan, seats, updated_at FROM people",
        mapping={"external_id": "id", "email": "email"},
        cursor_column="updated_at",
    )
    return source, model


def test_a_scheduled_source_run_delivered_twice_writes_each_row_once(
    database,
    tenant,
    warehouse,  # noqa: F811
    start_worker,
    dispatcher,
):
    source, model = people_model(database, tenant, warehouse)
    start_worker(concurrency=1)
    dispatcher.enqueue(SOURCE_JOB, source_id=source.id)
    dispatcher.enqueue(SOURCE_JOB, source_id=source.id)

    runs = wait_until(
        lambda: (
            [r for r in source_runs(database, model.id) if r.status != "running"][1:]
            and source_runs(database, model.id)
        ),
        what="two source runs",
    )
    assert [(r.status, r.rows_read, r.created) for r in runs] == [("succeeded", 5, 5), ("succeeded", 0, 0)]
    assert sorted(users(database, tenant)) == ["1", "2", "3", "4", "5"]


def test_a_source_run_claimed_by_the_api_runs_on_a_worker_once_however_often_delivered(
    database,
    tenant,
    warehouse,  # noqa: F811
    start_worker,
    dispatcher,
):
    _, model = people_model(database, tenant, warehouse)
    prepared = prepare_run(database, model.id, BOX, "api", workspace_id=tenant.workspace_id)
    start_worker(concurrency=2)
    dispatcher.enqueue(SOURCE_RUN_JOB, run_id=prepared.run_id)
    dispatcher.enqueue(SOURCE_RUN_JOB, run_id=prepared.run_id)

    wait_until(lambda: source_runs(database, model.id)[0].status == "succeeded", what="the claimed run")
    time.sleep(1.5)  # the second delivery's turn
    runs = source_runs(database, model.id)
    assert [(r.id, r.trigger, r.created) for r in runs] == [(prepared.run_id, "api", 5)]
    assert len(users(database, tenant)) == 5


def test_an_automation_pass_delivered_twice_fires_each_entry_once(database, tenant, start_worker, dispatcher):
    ws = tenant.workspace_id
    _, welcome, playbook = welcome_pros(database, ws)
    ingest(database, ws, *({"external_id": f"u{i}", "attributes": {"plan": "pro"}} for i in range(30)))
    start_worker(concurrency=2)

    def fired() -> int:
        with database.session() as session:
            return session.scalar(
                select(func.count()).select_from(PlaybookFiring).where(PlaybookFiring.playbook_id == playbook)
            )

    deadline = time.monotonic() + 60
    while fired() < 30 and time.monotonic() < deadline:  # the history settles before it is read
        dispatcher.enqueue(AUTOMATION_PROCESS_JOB)
        dispatcher.enqueue(AUTOMATION_PROCESS_JOB)
        time.sleep(1)
    time.sleep(1.5)
    assert fired() == 30
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Enrolment).where(Enrolment.sequence_id == welcome)) == 30


def test_a_schedule_playbook_tick_delivered_twice_fires_once_per_subject(database, tenant, start_worker, dispatcher):
    ws = tenant.workspace_id
    ingest(database, ws, {"external_id": "ann", "attributes": {"plan": "pro"}}, {"external_id": "bob"})
    welcome = make_sequence(database, ws)
    playbook = make_playbook(
        database,
        ws,
        trigger={"kind": "schedule", "expression": "0 9 * * *", "timezone": "UTC"},
        conditions=PRO,
        actions=[{"type": "enrol", "sequence_id": welcome, "fallback_channel": "email"}],
    )
    tick = int(time.time()) - 90  # due a minute and a half ago: a late second delivery keeps the tick's minute
    start_worker(concurrency=2)
    dispatcher.enqueue(PLAYBOOK_JOB, playbook_id=playbook, at=tick)
    dispatcher.enqueue(PLAYBOOK_JOB, playbook_id=playbook, at=tick)

    def firings() -> list[PlaybookFiring]:
        with database.session() as session:
            return list(session.scalars(select(PlaybookFiring).where(PlaybookFiring.playbook_id == playbook)))

    wait_until(firings, what="the playbook's firing")
    time.sleep(2)
    assert len(firings()) == 1


def test_a_segment_action_delivered_twice_runs_once_for_its_day(database, tenant, start_worker, dispatcher):
    ws = tenant.workspace_id
    segment = make_segment(database, ws, "Pro", PRO)
    ingest(database, ws, *({"external_id": f"u{i}", "attributes": {"plan": "pro"}} for i in range(3)))
    sequence = make_sequence(database, ws)
    action = make_action(
        database, ws, segment, sequence_id=sequence, time="09:00", timezone="UTC", fallback_channel="email"
    )
    start_worker(concurrency=2)
    at = int(time.time())
    dispatcher.enqueue(SEGMENT_ACTION_JOB, action_id=action, at=at)
    dispatcher.enqueue(SEGMENT_ACTION_JOB, action_id=action, at=at)

    def runs() -> list[SegmentActionRun]:
        with database.session() as session:
            return list(session.scalars(select(SegmentActionRun).where(SegmentActionRun.action_id == action)))

    wait_until(runs, what="the segment action's run")
    time.sleep(2)
    assert [r.enrolled for r in runs()] == [3]
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Enrolment).where(Enrolment.sequence_id == sequence)) == 3


def test_a_pending_segment_is_evaluated_on_a_worker(database, tenant, start_worker, dispatcher):
    ws = tenant.workspace_id
    ingest(database, ws, {"external_id": "ann", "attributes": {"plan": "pro"}}, {"external_id": "bob"})
    segment = make_segment(database, ws, "Pro", PRO)
    with database.session() as session:
        session.get(Segment, segment).evaluation = "pending"
    start_worker(concurrency=2)
    dispatcher.enqueue(EVALUATION_JOB, workspace_id=ws, segment_id=segment)
    dispatcher.enqueue(EVALUATION_JOB, workspace_id=ws, segment_id=segment)

    def status() -> str | None:
        with database.session() as session:
            value = session.scalar(select(Segment.evaluation).where(Segment.id == segment))
        return value if value in ("done", "failed") else None

    assert wait_until(status, what="the evaluation") == "done"


def test_the_api_run_now_of_a_source_model_is_run_by_a_worker(
    database,
    tenant,
    warehouse,  # noqa: F811
    start_worker,
    worker_settings,
):
    source, model = people_model(database, tenant, warehouse)
    api = create_app(worker_settings, database=database).test_client()
    start_worker(concurrency=1)
    response = api.post(tenant.url(f"/sources/{source.id}/models/{model.id}/runs"), headers=tenant.headers)
    assert response.status_code == 202, response.get_json()
    claimed = response.get_json()["id"]

    wait_until(lambda: source_runs(database, model.id)[0].status == "succeeded", what="the run now")
    assert [(r.id, r.trigger, r.created) for r in source_runs(database, model.id)] == [(claimed, "api", 5)]


def test_with_a_dispatcher_the_scheduled_source_and_automation_jobs_only_enqueue_for_the_workers(
    database,
    tenant,
    warehouse,  # noqa: F811
    start_worker,
    dispatcher,
):
    source, model = people_model(database, tenant, warehouse)
    use_dispatcher(dispatcher)
    try:
        assert run_scheduled_source(source.id) == ["queued"]
        assert process_automation() == {}
    finally:
        use_dispatcher(None)
    assert source_runs(database, model.id) == []  # nothing ran in this process
    start_worker(concurrency=1)
    wait_until(lambda: [r for r in source_runs(database, model.id) if r.status == "succeeded"], what="the source run")
    assert len(users(database, tenant)) == 5
