"""Running the real service in tests: `emotivoice serve` and `emotivoice worker` processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env(home: Path, **settings: Any) -> dict[str, str]:
    """The environment of service processes: ``home``, ``settings`` as variables, and these
    tests' own sources first on the path (so a worktree's code runs, not an installed copy)."""
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
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def running_server(env: dict[str, str], log: Path, workers: int = 1) -> Iterator[httpx.Client]:
    """``emotivoice serve`` on a free port, ready; yields an API client (base ``/api/v1``)."""
    port = free_port()
    process = spawn(["serve", "--port", str(port), "--workers", str(workers)], env, log)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=30)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield client
    finally:
        client.close()
        stop(process)
