"""``/metrics`` in Prometheus text format, for the operations team's monitoring.

Protected by a token: ``CREDENCIA_METRICS_TOKEN`` (or ``_FILE``), sent as
``Authorization: Bearer <token>``; without one configured the route answers 404 (metrics are
off). Under gunicorn the counters of every worker are summed (prometheus-client's
multiprocess mode: ``credencia serve`` sets ``PROMETHEUS_MULTIPROC_DIR``; with your own
gunicorn, set it to an empty folder and see docs/operations.md).

What it says:
- ``credencia_http_requests_total{route,method,status}`` and
  ``credencia_http_request_duration_seconds{route,method}`` (histogram), by URL rule, never by
  raw path (no ids in labels);
- ``credencia_instance_starts_total`` / ``credencia_task_completions_total`` by process
  (engine/observability);
- read from the database at each scrape, with indexed counts: open and overdue tasks by lane,
  the outbox (pending, failed, age of the oldest pending), each scheduler job's last
  successful run, the age of the last audit chain verification, certificates expiring within
  30 days.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterator
from datetime import timedelta

from flask import Blueprint, Flask, Response, abort, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select

from engine.audit.models import AuditCheckpoint
from engine.certificates.models import Certificate
from engine.db import Database, utcnow
from engine.notifications.models import FAILED, PENDING, OutboxMessage
from engine.runtime.models import READY, Task
from engine.scheduler.models import SchedulerJob
from web.ui.common import db, settings

bp = Blueprint("metrics", __name__)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
EXPIRING_DAYS = 30

REQUESTS = Counter(
    "credencia_http_requests", "Requisições HTTP atendidas", ["route", "method", "status"]
)
LATENCY = Histogram(
    "credencia_http_request_duration_seconds",
    "Tempo de resposta das requisições HTTP",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


class DatabaseCollector:
    """Gauges read from the database when Prometheus scrapes (one short query each)."""

    def __init__(self, database: Database) -> None:
        self.db = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = utcnow()
        with self.db.read() as s:
            open_tasks = GaugeMetricFamily(
                "credencia_tasks_open", "Tarefas humanas abertas, por raia", labels=["lane"]
            )
            overdue = GaugeMetricFamily(
                "credencia_tasks_overdue",
                "Tarefas abertas além do prazo, por raia",
                labels=["lane"],
            )
            for lane, count, late in s.execute(
                select(
                    Task.lane,
                    func.count(),
                    func.count().filter(Task.due_at < now),
                )
                .where(Task.state == READY)
                .group_by(Task.lane)
            ):
                open_tasks.add_metric([lane or ""], count)
                overdue.add_metric([lane or ""], late)
            yield open_tasks
            yield overdue

            outbox = GaugeMetricFamily(
                "credencia_outbox_messages", "E-mails na caixa de saída", labels=["status"]
            )
            for status in (PENDING, FAILED):
                outbox.add_metric(
                    [status],
                    s.scalar(
                        select(func.count())
                        .select_from(OutboxMessage)
                        .where(OutboxMessage.status == status)
                    )
                    or 0,
                )
            yield outbox
            oldest = s.scalar(
                select(func.min(OutboxMessage.created_at)).where(OutboxMessage.status == PENDING)
            )
            yield GaugeMetricFamily(
                "credencia_outbox_oldest_pending_seconds",
                "Idade do e-mail pendente mais antigo (0 sem pendentes)",
                value=(now - oldest).total_seconds() if oldest else 0,
            )

            last_ok = GaugeMetricFamily(
                "credencia_scheduler_last_success_timestamp_seconds",
                "Última execução bem-sucedida de cada job do agendador (Unix)",
                labels=["job"],
            )
            for name, at in s.execute(select(SchedulerJob.name, SchedulerJob.last_ok_at)):
                if at is not None:
                    last_ok.add_metric([name], at.timestamp())
            yield last_ok

            verified = s.scalar(select(func.max(AuditCheckpoint.verified_at)))
            yield GaugeMetricFamily(
                "credencia_audit_verification_age_seconds",
                "Tempo desde a última verificação da trilha de auditoria (-1: nunca)",
                value=(now - verified).total_seconds() if verified else -1,
            )
            yield GaugeMetricFamily(
                "credencia_certificates_expiring",
                f"Certificados que vencem nos próximos {EXPIRING_DAYS} dias",
                value=s.scalar(
                    select(func.count())
                    .select_from(Certificate)
                    .where(
                        Certificate.is_current.is_(True),
                        Certificate.not_after >= now,
                        Certificate.not_after < now + timedelta(days=EXPIRING_DAYS),
                    )
                )
                or 0,
            )


def exposition() -> bytes:
    """The text Prometheus scrapes: every worker's counters (or this process's), then the
    database's gauges."""
    if os.environ.get(MULTIPROC_ENV):
        counters = CollectorRegistry()
        MultiProcessCollector(counters)
    else:
        counters = REGISTRY
    gauges = CollectorRegistry()
    gauges.register(DatabaseCollector(db()))
    return generate_latest(counters) + generate_latest(gauges)


@bp.get("/metrics")
def metrics() -> Response:
    token = settings().metrics_token
    if not token:
        abort(404)
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return Response(
            "token de métricas ausente ou inválido\n",
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            mimetype="text/plain",
        )
    return Response(exposition(), mimetype=CONTENT_TYPE_LATEST)


def install(app: Flask) -> None:
    """Count every request by its URL rule (the route, never the raw path) and time it from
    the start web.logs records (installed before this)."""

    @app.after_request
    def _count(response: Response) -> Response:
        started = g.get("request_started")
        if started is None:
            return response
        route = request.url_rule.rule if request.url_rule is not None else "(sem rota)"
        REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        LATENCY.labels(route, request.method).observe(time.perf_counter() - started)
        return response
