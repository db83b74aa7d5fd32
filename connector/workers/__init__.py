"""Distributed execution: sync runs and segment refreshes on Celery workers, isolated per destination.

With ``CONNECTOR_BROKER_URL`` unset nothing here is used: the scheduler and the API run work in-process, as
``make run`` does. With a broker (RabbitMQ ``amqp://…`` or Redis ``redis://…``) the active scheduler and the API's
"run now" only **enqueue** (``dispatch.CeleryDispatcher``), and ``connector worker`` processes, on any number of
machines sharing the database and the broker, execute (``tasks``).

Delivery: tasks are acknowledged late and rejected when their worker is lost, so a message whose worker died is
delivered again. ``runs.start_sync_task`` makes a second delivery harmless: the run's lease (``syncs.locks``) lets
one run of a sync go at a time, and a redelivered task waits until the dead worker's lease has expired, then takes
the run over (the abandoned run is marked failed, a new run sends what was not acknowledged: at most the batches in
flight go twice).

Isolation: every run counts against its destination's concurrency (``CONNECTOR_DESTINATION_CONCURRENCY`` runs at a
time across all workers; a task over it is put back with a short delay, freeing the worker), and destinations
listed in ``CONNECTOR_DESTINATION_QUEUES`` get a queue of their own, served by the workers started with
``--queues``. Requests to one destination share one rolling window across workers (``syncs.sharedlimit``).
"""
