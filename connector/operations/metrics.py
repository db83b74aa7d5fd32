"""Prometheus metrics (``prometheus_client``).

Counted where they happen, per process (``/metrics`` of an API process, ``connector worker --metrics-port``):

- ``connector_ingested_items_total{kind}``: items written by the ingestion API;
- ``connector_segment_evaluation_seconds``: duration of one segment evaluation pass;
- ``connector_destination_retries_total{reason}``: destination calls retried (``rate_limited`` for a 429, else
  ``transient``); the 429s are ``reason="rate_limited"``.

Read from the database and the broker at every scrape (so every process answers the same, whichever ran the work):

- ``connector_sync_records_total{outcome}``: records of every run by outcome (added, changed, removed, rejected,
  invalid, unsent);
- ``connector_scheduler_lag_seconds``: how far past its run time the most overdue scheduled job is (0: on time);
- ``connector_open_alerts``: alerts open now;
- ``connector_queue_depth{queue}``: messages waiting in each queue, when a broker is configured.
"""

from __future__ import annotations

import logging
import time

from kombu import Connection
from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import func, select, text

from connector.config import Settings
from connector.db import Database
from connector.models import Alert, AlertStatus, SyncRun

log = logging.getLogger("connector.operations")

INGESTED_ITEMS = Counter("connector_ingested_items", "Items written by the ingestion API", ["kind"])
SEGMENT_EVALUATION_SECONDS = Histogram(
    "connector_segment_evaluation_seconds",
    "Duration of one segment evaluation pass",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
DESTINATION_RETRIES = Counter(
    "connector_destination_retries", "Destination calls retried after a transient failure", ["reason"]
)
OUTCOMES = ("added", "changed", "removed", "rejected", "invalid", "unsent")
BROKER_TIMEOUT_S = 2.0


def count_retry(error: BaseException | None) -> None:
    """Called by the retry policy before each retry; a 429 is counted as ``rate_limited``."""
    rate_limited = error is not None and " 429" in str(error)
    DESTINATION_RETRIES.labels("rate_limited" if rate_limited else "transient").inc()


class DatabaseCollector:
    """Metrics read from the database (and the broker) when scraped."""

    def __init__(self, db: Database, settings: Settings, queues: list[str] | None = None) -> None:
        self.db, self.settings, self.queues = db, settings, queues or []

    def describe(self):
        return []

    def collect(self):
        records = CounterMetricFamily(
            "connector_sync_records", "Records of every sync run by outcome", labels=["outcome"]
        )
        lag = GaugeMetricFamily("connector_scheduler_lag_seconds", "How far past its run time the most late job is")
        alerts = GaugeMetricFamily("connector_open_alerts", "Alerts open now")
        try:
            with self.db.session() as session:
                totals = (func.coalesce(func.sum(getattr(SyncRun, o)), 0) for o in OUTCOMES)
                sums = session.execute(select(*totals)).one()
                earliest = session.execute(text("SELECT min(next_run_time) FROM apscheduler_jobs")).scalar()
                open_alerts = session.scalar(
                    select(func.count()).select_from(Alert).where(Alert.status == AlertStatus.OPEN)
                )
        except Exception as exc:
            log.warning("metrics: the database could not be read: %s", exc)
        else:
            for outcome, total in zip(OUTCOMES, sums, strict=True):
                records.add_metric([outcome], float(total))
            lag.add_metric([], max(0.0, time.time() - earliest) if earliest is not None else 0.0)
            alerts.add_metric([], float(open_alerts or 0))
            yield records
            yield lag
            yield alerts
        if self.settings.operations.broker_url and self.queues:
            yield self._queue_depths()

    def _queue_depths(self) -> GaugeMetricFamily:
        depth = GaugeMetricFamily("connector_queue_depth", "Messages waiting in a queue", labels=["queue"])
        try:
            with Connection(self.settings.operations.broker_url, connect_timeout=BROKER_TIMEOUT_S) as connection:
                channel = connection.default_channel
                for queue in self.queues:
                    try:
                        declared = channel.queue_declare(queue=queue, passive=True)
                    except Exception:
                        channel = connection.channel()  # a missing queue closes the channel (AMQP)
                        depth.add_metric([queue], 0.0)
                        continue
                    depth.add_metric([queue], float(declared.message_count))
        except Exception as exc:
            log.warning("metrics: the broker could not be read: %s", exc)
        return depth
