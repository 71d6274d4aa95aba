"""A dead worker is noticed and replaced; ``serve`` stops its workers on SIGTERM; the janitor
sends a lost message again whatever else waits (issue 26, items 6 and 13). Real ``serve``
processes and real workers over the embedded queue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from emotivoice.evaluation.processes import free_port, service_env, spawn, stop
from emotivoice.service.app import create_app
from emotivoice.service.jobs import QUEUE_NAME, Janitor
from emotivoice.service.settings import load_settings
from emotivoice.service.storage import Store

API = "/api/v1"


_CLASS_AFTER_LOWERING = (
    "import os; from emotivoice.service.server import lower_worker_priority; "
    "from emotivoice.service.settings import load_settings; "
    "lower_worker_priority(load_settings()); "
    "print(os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0))"
)


@pytest.mark.parametrize(
    ("scheduling", "policy"),
    [("idle", "SCHED_IDLE"), ("batch", "SCHED_BATCH"), ("normal", "SCHED_OTHER")],
)
def test_a_worker_lowers_its_priority_to_the_configured_class(
    tmp_path: Path, scheduling: str, policy: str
) -> None:
    env = service_env(tmp_path / "home", worker_scheduling=scheduling, worker_nice=3)
    # in a process of its own: the class and niceness cannot be raised again
    out = subprocess.run(
        [sys.executable, "-c", _CLASS_AFTER_LOWERING],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    niceness = os.getpriority(os.PRIO_PROCESS, 0)
    assert [int(x) for x in out] == [getattr(os, policy), min(niceness + 3, 19)]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/ready").status_code == 200
    except httpx.TransportError:
        return False


def _queue_length(store: Store, janitor: Janitor) -> int:
    with janitor.app.connection_for_read() as conn:
        _, waiting, _ = conn.default_channel.queue_declare(queue=QUEUE_NAME, passive=True)
    return int(waiting)


def test_the_janitor_resends_a_lost_message_whatever_the_queue_length(
    tmp_path: Path, short_wav: Path
) -> None:
    settings = load_settings(home=tmp_path / "home", stale_after_s=0.1)
    app = create_app(settings, janitor=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        store: Store = client.app.state.store  # type: ignore[attr-defined]
        janitor = Janitor(store, client.app.state.services.celery)  # type: ignore[attr-defined]
        with short_wav.open("rb") as f:
            upload = client.post(f"{API}/uploads", files={"file": ("a.wav", f)}).json()
        client.post(f"{API}/analyses", json={"upload_id": upload["id"]})  # waits in the queue
        # a job whose message went with a dead worker: the queue is not empty, yet it is lost
        lost = store.create_analysis("anonymous", upload["id"], {}, None)
        assert _queue_length(store, janitor) == 1
        time.sleep(0.5)
        assert janitor.sweep() == 2
        assert _queue_length(store, janitor) == 3
        row = store.get_analysis("anonymous", lost.id)
        assert row.status == "queued" and row.attempt == 0  # resent, not counted as a failure
        assert store.claim(lost.id, 0, "worker") is not None


@pytest.mark.slow
def test_serve_restarts_a_killed_worker_and_ready_says_so(tmp_path: Path, short_wav: Path) -> None:
    home = tmp_path / "home"
    env = service_env(home, stale_after_s=2, worker_scheduling="idle")
    port = free_port()
    log = tmp_path / "serve.log"
    serve = spawn(["serve", "--port", str(port), "--workers", "1"], env, log)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}{API}", timeout=30) as client:
            _wait(lambda: _ready(client), 120, "the first worker")
            [worker] = _wait(lambda: _children(serve.pid), 10, "the worker process")
            # a worker yields the CPU to the API (WORKER_NICE, default 10; 19 is the most)
            niceness = os.getpriority(os.PRIO_PROCESS, serve.pid)
            assert os.getpriority(os.PRIO_PROCESS, worker) == min(niceness + 10, 19)
            # ... and runs in the scheduling class asked for (WORKER_SCHEDULING=idle), as does
            # the pool process Celery forks for the jobs; the API stays in the normal class
            pool = _wait(lambda: _children(worker), 30, "the worker's pool process")
            assert {os.sched_getscheduler(p) for p in [worker, *pool]} == {os.SCHED_IDLE}
            assert os.sched_getscheduler(serve.pid) == os.SCHED_OTHER
            os.kill(worker, signal.SIGKILL)
            replacement = _wait(
                lambda: [p for p in _children(serve.pid) if p != worker], 60, "a new worker"
            )[0]
            _wait(lambda: _ready(client), 120, "the new worker")
            assert not _alive(worker)  # reaped, not a zombie
            assert _alive(replacement) and _children(serve.pid) == [replacement]
            with short_wav.open("rb") as f:
                upload = client.post("/uploads", files={"file": ("a.wav", f)}).json()
            options = {"features": False, "emotion": False}
            job = client.post("/analyses", json={"upload_id": upload["id"], "options": options})
            aid = job.json()["id"]

            def finished() -> dict[str, Any] | None:
                body: dict[str, Any] = client.get(f"/analyses/{aid}").json()
                return body if body["status"] in ("completed", "failed") else None

            assert _wait(finished, 240, "the analysis")["status"] == "completed"
        assert "restarting it" in log.read_text()
    finally:
        stop(serve)


@pytest.mark.slow
def test_ready_notices_a_dead_worker(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = service_env(home, stale_after_s=2)
    port = free_port()
    serve = spawn(["serve", "--port", str(port), "--workers", "0"], env, tmp_path / "serve.log")
    worker = spawn(["worker"], env, tmp_path / "worker.log")  # nobody restarts this one
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}{API}", timeout=30) as client:
            _wait(lambda: _ready(client), 120, "the worker")
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
            gone = _wait(lambda: client.get("/ready").status_code == 503 or None, 30, "503")
            assert gone
            body = client.get("/ready").json()
            assert body["code"] == "NOT_READY" and "No worker" in body["message"]
            assert client.get("/health").json()["status"] == "ok"  # the API itself is fine
    finally:
        stop(worker)
        stop(serve)


@pytest.mark.slow
def test_sigterm_stops_serve_and_its_workers_together(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    log = tmp_path / "serve.log"
    serve = spawn(["serve", "--port", str(port), "--workers", "1"], service_env(home), log)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}{API}", timeout=30) as client:
            _wait(lambda: _ready(client), 120, "the worker")
        [worker] = _children(serve.pid)
        os.kill(serve.pid, signal.SIGTERM)  # serve alone, as a service manager does
        serve.wait(timeout=60)
        # serve waited for its worker: it is gone the moment serve is (not 2 s later)
        assert not _alive(worker), "the worker outlived serve"
        assert "Warm shutdown" in log.read_text()  # stopped cleanly, not killed
    finally:
        stop(serve)
