"""Concurrent requests naming the same new people end with one user each, and every request succeeds."""

import threading

from connector.models import Event, User
from tests.ingest.helpers import count, post_batch


def test_concurrent_batches_about_the_same_new_users(app, database, tenant):
    people = [f"u{i}" for i in range(40)]
    statuses: list[int] = []
    lock = threading.Lock()

    def send(worker: int) -> None:
        client = app.test_client()
        order = people if worker % 2 else list(reversed(people))
        for round_ in range(3):
            track = [{"external_id": p, "name": "seen", "message_id": f"{p}-{round_}"} for p in order]
            identify = [{"external_id": p, "email": f"{p}@example.com", "attributes": {"w": worker}} for p in order]
            for endpoint, items in (("track", track), ("identify", identify)):
                response = post_batch(client, tenant, endpoint, items)
                with lock:
                    statuses.append(response.status_code)

    threads = [threading.Thread(target=send, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses and set(statuses) == {200}
    assert count(database, User) == len(people)
    assert count(database, User, User.email.is_(None)) == 0
    # Every message id was recorded once, however many workers sent it.
    assert count(database, Event) == len(people) * 3
