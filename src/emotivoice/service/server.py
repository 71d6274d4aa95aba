"""Process management: ``serve`` (API + embedded workers) and ``worker`` (a Celery worker).

``serve`` supervises the embedded workers it starts: one that dies (killed, out of memory) is
started again, with a growing pause if it keeps dying. It stops them when it stops, on Ctrl-C
and on SIGTERM alike. Every worker records a heartbeat in the database (``/ready`` answers 503
while no worker is alive).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from emotivoice.service.settings import Settings

__all__ = ["lower_worker_priority", "run_worker", "serve"]

logger = logging.getLogger(__name__)

_PARENT_ENV = "EMOTIVOICE_EMBEDDED_PARENT"  # set by serve for the workers it starts
_PARENT_POLL_S = 2.0
_SUPERVISE_POLL_S = 1.0
_RESTART_PAUSE_S = (1.0, 30.0)  # first and longest pause before a crashed worker is restarted
_STABLE_S = 60.0  # a worker that ran this long before dying is restarted without delay growth
_SCHED_POLICIES = {"idle": "SCHED_IDLE", "batch": "SCHED_BATCH"}  # worker_scheduling -> os name


def run_worker(settings: Settings, concurrency: int | None = None, pool: str = "prefork") -> None:
    """Run a Celery worker for this deployment in the foreground (blocks until stopped)."""
    from emotivoice.service.jobs import QUEUE_NAME, get_celery

    app = get_celery()
    argv = [
        "worker",
        f"--queues={QUEUE_NAME}",
        f"--concurrency={concurrency or settings.worker_concurrency}",
        f"--pool={pool}",
        f"--hostname=emotivoice-{os.getpid()}@{socket.gethostname()}",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    logger.info("Starting worker: broker %s", "embedded" if settings.embedded_queue else "redis")
    lower_worker_priority(settings)
    parent = os.environ.get(_PARENT_ENV)
    if parent:
        _stop_with_parent(int(parent))
    from celery.signals import worker_ready

    beat = _Liveness(settings, f"{socket.gethostname()}:{os.getpid()}")
    # Alive for /ready once Celery consumes the queue (and handles SIGTERM), not before.
    worker_ready.connect(lambda **_: beat.start(), weak=False)
    try:
        app.worker_main(argv)
    finally:
        beat.stop()


def lower_worker_priority(settings: Settings) -> None:
    """Make this process (and the pool processes and threads it starts later) yield the CPU.

    Analyses are batch work: on a machine shared with the API, a busy worker otherwise takes
    the core a status request waits for. Niceness alone does not do it on Linux with
    autogroups (the default of most desktop and many server kernels): a worker started in its
    own session (``serve``'s embedded workers, a service manager's unit) is weighed against
    the API as a group, whatever its niceness. ``SCHED_IDLE`` is judged per task: a request
    thread waking on a core an idle-class worker holds takes it at once. Both settings apply
    to the calling thread and are inherited by what it starts, so call this first.
    """
    if settings.worker_nice and hasattr(os, "nice"):
        os.nice(settings.worker_nice)
    policy = _SCHED_POLICIES.get(settings.worker_scheduling)
    if policy is None or not hasattr(os, policy):
        return
    try:
        os.sched_setscheduler(0, getattr(os, policy), os.sched_param(0))
    except OSError as error:  # a container or kernel may refuse; the worker still runs
        logger.warning("Could not set the worker's scheduling class to %s: %s", policy, error)


class _Liveness:
    """Records this worker's heartbeat in the database until it stops (``/ready`` reads it)."""

    def __init__(self, settings: Settings, name: str) -> None:
        from emotivoice.service.storage import Store

        self.store = Store(settings, migrate_schema=False)
        # The pool processes Celery forks from this one must not touch its database connections.
        os.register_at_fork(after_in_child=lambda: self.store.engine.dispose(close=False))
        self.name = name
        self.period = max(0.5, min(5.0, settings.stale_after_s / 4))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-liveness", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self.store.worker_alive(self.name)
            except Exception:  # the database may be restarting; try again next period
                logger.warning("Worker heartbeat failed", exc_info=True)
            if self._stop.wait(self.period):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        try:
            self.store.worker_gone(self.name)
        except Exception:
            logger.warning("Could not remove this worker's heartbeat", exc_info=True)


def _stop_with_parent(parent: int) -> None:
    """An embedded worker shuts down (warm, as on SIGTERM) once its ``serve`` is gone.

    ``serve`` stops its workers when it exits, but not when it is killed outright (SIGKILL, an
    out-of-memory kill); the worker then sees another parent process.
    """
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_S)
        logger.warning("The serve process %d is gone; stopping this embedded worker", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="emotivoice-parent-watch", daemon=True).start()


def _spawn_worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = dict(os.environ, EMOTIVOICE_HOME=str(settings.home))
    env[_PARENT_ENV] = str(os.getpid())
    if settings.database_url:
        env["EMOTIVOICE_DATABASE_URL"] = settings.database_url
    if settings.broker_url:
        env["EMOTIVOICE_BROKER_URL"] = settings.broker_url
    return subprocess.Popen(
        [sys.executable, "-m", "emotivoice", "worker"], env=env, start_new_session=True
    )


class _Supervisor:
    """Keeps ``count`` embedded workers running: restarts one that exits, stops all at the end."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.children = [_spawn_worker(settings) for _ in range(count)]
        self.started = [time.monotonic()] * count
        self.pause = [_RESTART_PAUSE_S[0]] * count
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-supervisor", daemon=True)

    def start(self) -> None:
        if self.children:
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(_SUPERVISE_POLL_S):
            for i, child in enumerate(self.children):
                code = child.poll()  # also reaps a dead child (no zombie)
                if code is None or self._stop.is_set():
                    continue
                if time.monotonic() - self.started[i] > _STABLE_S:
                    self.pause[i] = _RESTART_PAUSE_S[0]
                logger.warning(
                    "Embedded worker %d exited (code %s); restarting it in %.0f s",
                    child.pid,
                    code,
                    self.pause[i],
                )
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)  # its pool processes too
                if self._stop.wait(self.pause[i]):
                    return
                self.children[i] = _spawn_worker(self.settings)
                self.started[i] = time.monotonic()
                self.pause[i] = min(_RESTART_PAUSE_S[1], self.pause[i] * 2)
                self.restarts += 1

    def stop(self) -> None:
        """Stop supervising, then stop every worker (warm shutdown, SIGKILL after 30 s)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for child in self.children:
            if child.poll() is None:
                logger.info("Stopping embedded worker %d", child.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)


class _Terminated(Exception):
    """SIGTERM reached ``serve`` after uvicorn's own shutdown (it re-raises the signal)."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run the API on ``host:port``; start and supervise ``workers`` embedded worker processes."""
    import uvicorn

    from emotivoice.service.app import create_app
    from emotivoice.service.jobs import declare_queue, make_celery

    app = create_app(settings)  # migrates the database before any worker opens it
    if settings.embedded_queue:  # and creates the SQLite queue before any worker declares it
        declare_queue(make_celery(settings))
    supervisor = _Supervisor(settings, workers if settings.embedded_worker else 0)
    supervisor.start()
    # uvicorn handles SIGTERM (graceful shutdown), then raises it again once the server has
    # stopped; with the default handler that would end this process before its workers are
    # stopped. This handler turns the re-raised signal into an exception instead.
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        config: dict[str, Any] = {"host": host, "port": port, "log_level": "info"}
        uvicorn.run(app, **config)
    except _Terminated:
        logger.info("Terminated")
    finally:
        supervisor.stop()
        signal.signal(signal.SIGTERM, previous)
