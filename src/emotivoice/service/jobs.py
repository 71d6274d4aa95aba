"""The Celery side: the app, the analysis and wake-word training tasks, and the janitor that
requeues lost jobs.

Embedded mode uses kombu's SQLAlchemy transport over a SQLite file (no other software);
scale-out mode uses Redis. Messages are acknowledged late and rejected when a worker dies, so the
broker redelivers them; the database's attempt fence makes every redelivery safe, and the
janitor requeues jobs whose worker stopped sending heartbeats (a SIGKILL on a broker that does
not redeliver by itself, such as the embedded one).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta
from functools import cache
from typing import Any

from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init
from sqlalchemy.exc import OperationalError

from emotivoice.service.db import utcnow
from emotivoice.service.settings import Settings, load_settings
from emotivoice.service.storage import Store

__all__ = [
    "QUEUE_NAME",
    "Janitor",
    "declare_queue",
    "enqueue",
    "enqueue_wakeword",
    "get_celery",
    "get_store",
    "make_celery",
]

logger = logging.getLogger(__name__)

TASK_NAME = "emotivoice.analyse"
WAKEWORD_TASK_NAME = "emotivoice.wakeword_train"
QUEUE_NAME = "emotivoice"
_ORPHAN_FACTOR = 3  # a queued job untouched this many stale periods is requeued
PARTIAL_MAX_AGE_S = 3600.0  # a half-written upload file this old belongs to a dead process


def make_celery(settings: Settings) -> Celery:
    """A Celery app for ``settings`` (embedded SQLite queue or Redis)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    app = Celery("emotivoice", broker=settings.queue_url, set_as_current=False)
    transport_options: dict[str, Any] = {}
    if not settings.embedded_queue:
        # Unacknowledged messages of a dead worker come back after this long.
        transport_options["visibility_timeout"] = int(settings.task_time_limit_s * 2 + 60)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_soft_time_limit=settings.task_time_limit_s,
        task_time_limit=settings.task_time_limit_s + 30,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_default_queue=QUEUE_NAME,
        worker_send_task_events=False,
    )
    app.task(name=TASK_NAME, bind=True, max_retries=5)(_analyse_task)
    app.task(
        name=WAKEWORD_TASK_NAME,
        soft_time_limit=settings.wakeword_time_limit_s,
        time_limit=settings.wakeword_time_limit_s + 30,
    )(_wakeword_task)
    return app


def _analyse_task(task: Any, analysis_id: str, attempt: int) -> str:
    from emotivoice.service.runner import run_job

    store = get_store()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        return run_job(store, analysis_id, attempt, worker)
    except OperationalError as e:  # transient: the database is restarting or unreachable
        raise task.retry(exc=e, countdown=min(60, 2 ** (task.request.retries + 1))) from e
    except SoftTimeLimitExceeded:
        limit = store.settings.task_time_limit_s
        store.fail(
            analysis_id,
            attempt,
            "TIME_LIMIT",
            f"The analysis took longer than the limit of {limit:g} seconds.",
        )
        return "failed"


def _wakeword_task(job_id: str) -> str:
    """Train a wake word (minutes of CPU): in a worker process, never in the API's."""
    from emotivoice.service.wakeword_runner import run_wakeword_job

    store = get_store()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        return run_wakeword_job(store, job_id, worker)
    except SoftTimeLimitExceeded:
        limit = store.settings.wakeword_time_limit_s
        store.fail_wakeword(
            job_id, "TIME_LIMIT", f"Training took longer than the limit of {limit:g} seconds."
        )
        return "failed"


@cache
def get_store() -> Store:
    """The worker process' store (settings from the environment), opened once."""
    return Store(load_settings(), migrate_schema=False)


@cache
def get_celery() -> Celery:
    """The Celery app of this process, configured from the environment."""
    return make_celery(load_settings())


@worker_process_init.connect
def _preload(**_: Any) -> None:
    """Load models once per worker process when asked (otherwise on the first job)."""
    settings = load_settings()
    if settings.preload_models:
        from emotivoice.pipeline import Analyzer

        Analyzer()
        logger.info("Worker %d: models loaded", os.getpid())


def declare_queue(app: Celery) -> None:
    """Create the job queue before any worker starts.

    kombu's SQLite transport creates a queue on first use in each process and guards that with
    a lock of the process only: an API process and a worker starting together both insert it,
    and the loser's worker dies (``UNIQUE constraint failed: kombu_queue.name``). Declared once
    here, every later process finds it. Harmless for Redis.
    """
    with app.connection_for_write() as connection:
        connection.default_channel.queue_declare(queue=QUEUE_NAME)


def enqueue(app: Celery, analysis_id: str, attempt: int) -> None:
    app.send_task(TASK_NAME, args=(analysis_id, attempt))


def enqueue_wakeword(app: Celery, job_id: str) -> None:
    app.send_task(WAKEWORD_TASK_NAME, args=(job_id,))


class Janitor:
    """Requeues jobs whose worker died or whose message was lost; runs in the API process."""

    def __init__(self, store: Store, app: Celery) -> None:
        self.store, self.app = store, app
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="janitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.store.settings.janitor_interval_s):
            try:
                self.sweep()
            except Exception:  # the janitor must outlive a database hiccup
                logger.warning("Janitor sweep failed", exc_info=True)

    def sweep(self) -> int:
        """Requeue stalled and orphaned jobs once; returns how many were requeued.

        Also removes upload files left half-written by a killed process, and fails wake-word
        jobs whose worker stopped (they are not requeued).
        """
        settings = self.store.settings
        self.store.remove_stale_partials(PARTIAL_MAX_AGE_S)
        lost = self.store.fail_stalled_wakeword()  # one delivery: training again costs minutes
        if lost:
            logger.warning("%d wake-word job(s) lost their worker; marked failed", lost)
        requeued = 0
        for analysis_id, attempt in self.store.stalled():
            requeued += self._requeue(analysis_id, attempt, "requeued: worker stopped responding")
        cutoff = utcnow() - timedelta(seconds=settings.stale_after_s * _ORPHAN_FACTOR)
        # Queued this long without a worker taking it: its message may be lost (a worker died
        # holding it), whatever else waits in the queue. The message is sent again for the same
        # attempt, so a job that only waits behind others runs once and never fails for it.
        for analysis_id, attempt in self.store.orphaned(cutoff):
            if self.store.resend(analysis_id, attempt):
                logger.warning("Job %s: queued too long; its message is sent again", analysis_id)
                enqueue(self.app, analysis_id, attempt)
                requeued += 1
        return requeued

    def _requeue(self, analysis_id: str, attempt: int, reason: str) -> int:
        new_attempt = self.store.requeue(analysis_id, attempt, reason)
        if new_attempt is None:
            return 0
        logger.warning("Job %s: %s (attempt %d)", analysis_id, reason, new_attempt)
        enqueue(self.app, analysis_id, new_attempt)
        return 1
