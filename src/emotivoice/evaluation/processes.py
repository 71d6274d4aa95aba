"""The real service as processes: ``emotivoice serve`` and ``emotivoice worker`` on loopback.

Used by the load benchmark (:mod:`emotivoice.evaluation.service_load`) and the end-to-end tests:
real servers, real workers, real queues, each in its own process group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from emotivoice.service.local_server import free_port

__all__ = ["free_port", "running_server", "service_env", "spawn", "start_server", "stop"]

_READY_TIMEOUT_S = 120.0  # a busy 2-core machine starts slowly
_POLL_S = 0.3


def service_env(home: Path, **settings: Any) -> dict[str, str]:
    """The environment of service processes: ``home``, ``settings`` as ``EMOTIVOICE_*``
    variables, and this copy of the sources first on the path (so a worktree's code runs, not
    an installed copy)."""
    import emotivoice

    sources = str(Path(emotivoice.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (sources, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, EMOTIVOICE_HOME=str(home), PYTHONPATH=path)
    env.update({f"EMOTIVOICE_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m emotivoice ARGS`` in its own process group (its pool children die with it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "emotivoice", *args],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal the process group, then kill it if it has not ended within 30 s."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start_server(
    env: dict[str, str], log: Path, workers: int = 1
) -> tuple[subprocess.Popen[bytes], str]:
    """``emotivoice serve`` on a free port, once it answers ``/ready`` (``/health`` without
    embedded workers: ``/ready`` waits for a worker, which the caller starts): the process and
    its base URL (``http://127.0.0.1:PORT``)."""
    port = free_port()
    process = spawn(["serve", "--port", str(port), "--workers", str(workers)], env, log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + _READY_TIMEOUT_S
    probe = "/ready" if workers else "/health"
    with httpx.Client(base_url=f"{url}/api/v1", timeout=30) as client:
        while True:
            try:
                if client.get(probe).status_code == 200:
                    return process, url
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                stop(process)
                raise RuntimeError(f"server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(_POLL_S)


@contextmanager
def running_server(env: dict[str, str], log: Path, workers: int = 1) -> Iterator[httpx.Client]:
    """A started server (:func:`start_server`); yields an API client (base ``/api/v1``)."""
    process, url = start_server(env, log, workers)
    client = httpx.Client(base_url=f"{url}/api/v1", timeout=30)
    try:
        yield client
    finally:
        client.close()
        stop(process)
