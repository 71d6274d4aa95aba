"""Process management: ``serve`` (API + embedded worker) and ``worker`` (a Celery worker)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from emotivoice.service.settings import Settings

__all__ = ["run_worker", "serve"]

logger = logging.getLogger(__name__)

_PARENT_ENV = "EMOTIVOICE_EMBEDDED_PARENT"  # set by serve for the workers it starts
_PARENT_POLL_S = 2.0


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
    parent = os.environ.get(_PARENT_ENV)
    if parent:
        _stop_with_parent(int(parent))
    app.worker_main(argv)


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


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run the API on ``host:port``; start ``workers`` embedded worker processes first."""
    import uvicorn

    from emotivoice.service.app import create_app
    from emotivoice.service.jobs import declare_queue, make_celery

    app = create_app(settings)  # migrates the database before any worker opens it
    if settings.embedded_queue:  # and creates the SQLite queue before any worker declares it
        declare_queue(make_celery(settings))
    children = [_spawn_worker(settings) for _ in range(workers if settings.embedded_worker else 0)]
    try:
        config: dict[str, Any] = {"host": host, "port": port, "log_level": "info"}
        uvicorn.run(app, **config)
    finally:
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
