"""The scheduler process: APScheduler starting each job on its interval.

Runs in a process of its own (``credencia scheduler``), never inside gunicorn's workers.
Several such processes on one PostgreSQL database are safe: every job claims its work with row
locks, unique keys or leases (see ``jobs.py``). Within one process a job never overlaps
itself (``max_instances=1``) and missed runs collapse into one (``coalesce``).

The foreground thread waits on a stop event while APScheduler's BackgroundScheduler runs the
jobs in its thread pool — a BlockingScheduler that can also be stopped from outside: SIGINT and
SIGTERM set the event under ``credencia scheduler`` (which ``credencia serve --with-scheduler``
starts as a child process and signals). Stopping waits for running jobs to finish.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from engine.audit import service as audit
from engine.db import Database
from engine.notifications.delivery import worker_id
from engine.scheduler.jobs import JOBS, Job, run_job

log = logging.getLogger(__name__)


def build_scheduler(
    db: Database, settings: Any, *, owner: str, start_delay: float = 1.0
) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=len(JOBS))},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
        timezone="UTC",
    )
    first = datetime.now().astimezone() + timedelta(seconds=start_delay)
    for index, job in enumerate(JOBS):
        scheduler.add_job(
            _run,
            IntervalTrigger(seconds=job.seconds),
            args=(db, settings, job, owner),
            id=job.name,
            name=job.description,
            # Start every job soon after boot (spread a little) rather than one interval later.
            next_run_time=first + timedelta(seconds=index * 0.5),
        )
    return scheduler


def _run(db: Database, settings: Any, job: Job, owner: str) -> None:
    started = time.perf_counter()
    summary = run_job(db, settings, job, owner=owner)
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    log.info(
        "job %s ran in %s ms: %s",
        job.name,
        elapsed,
        summary,
        extra={"job": job.name, "duration_ms": elapsed, "summary": summary},
    )


def stop_on_signals(stop: threading.Event, signals: tuple[int, ...]) -> None:
    """Set ``stop`` when one of ``signals`` comes (main thread only).

    Not in the signal handler itself: a handler runs in the main thread between any two of its
    steps, and ``Event.set`` takes the event's lock, which the main thread holds for a moment
    on every ``stop.wait()`` of its loop; caught there, the handler would wait on its own
    thread forever. The handler writes a byte to a pipe, which takes no lock; a thread
    waiting on the pipe sets the event."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)

    def watch() -> None:
        os.read(read_end, 1)
        stop.set()

    def handler(_signum: int, _frame: Any) -> None:
        with contextlib.suppress(OSError):  # the pipe full of earlier signals: one is enough
            os.write(write_end, b"\0")

    threading.Thread(target=watch, name="signal-watch", daemon=True).start()
    for sig in signals:
        signal.signal(sig, handler)


def run(
    settings: Any, stop_event: threading.Event | None = None, *, db: Database | None = None
) -> None:
    """Run the scheduler until ``stop_event`` is set (or SIGINT/SIGTERM when it is not given).

    ``credencia scheduler`` runs it in the foreground; tests run it in a thread and stop it
    with the event.
    """
    own_db = db is None
    db = db or Database(settings.database_url)
    db.on_denied = db.on_denied or audit.record_denial
    owner = worker_id("scheduler")
    stop = stop_event or threading.Event()
    if stop_event is None and threading.current_thread() is threading.main_thread():
        stop_on_signals(stop, (signal.SIGINT, signal.SIGTERM))
    scheduler = build_scheduler(db, settings, owner=owner)
    scheduler.start()
    log.info(
        "scheduler %s started: %s", owner, ", ".join(f"{j.name} every {j.seconds}s" for j in JOBS)
    )
    try:
        while not stop.wait(1.0):
            pass
    finally:
        log.info("scheduler %s stopping (waiting for running jobs)", owner)
        scheduler.shutdown(wait=True)
        if own_db:
            db.dispose()


def run_once(
    settings: Any, names: list[str] | None = None, *, db: Database | None = None
) -> dict[str, Any]:
    """Run the named jobs (all by default) once, in order; for operators and tests."""
    own_db = db is None
    db = db or Database(settings.database_url)
    owner = worker_id("once")
    try:
        return {
            job.name: run_job(db, settings, job, owner=owner)
            for job in JOBS
            if not names or job.name in names
        }
    finally:
        if own_db:
            db.dispose()
