"""The service as users run it: real ``emotivoice serve`` / ``emotivoice worker`` processes over
HTTP, the embedded SQLite queue, and Redis + PostgreSQL on loopback (``scripts/ensure_services.sh``
starts them when they are not running).
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emotivoice.evaluation.processes import free_port, running_server, service_env, spawn, stop

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/7"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _upload(client: httpx.Client, path: Path) -> str:
    with path.open("rb") as f:
        response = client.post("/uploads", files={"file": (path.name, f)})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _analyse(client: httpx.Client, upload_id: str, **options: Any) -> str:
    response = client.post("/analyses", json={"upload_id": upload_id, "options": options})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _wait(client: httpx.Client, analysis_id: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/analyses/{analysis_id}").json()
        if body["status"] in ("completed", "failed", "cancelled"):
            return body
        time.sleep(0.5)
    raise AssertionError(f"analysis {analysis_id} did not finish: {body}")


def _check_exports(client: httpx.Client, analysis_id: str) -> None:
    from pypdf import PdfReader

    data = client.get(f"/analyses/{analysis_id}/export", params={"format": "json"}).json()
    assert "fellow Americans" in data["text"]
    csv_text = client.get(f"/analyses/{analysis_id}/export", params={"format": "csv"}).text
    assert "fellow Americans" in csv_text
    pdf = client.get(f"/analyses/{analysis_id}/export", params={"format": "pdf"}).content
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "fellow Americans" in text


def test_embedded_mode_end_to_end_and_queued_jobs_survive_a_restart(
    tmp_path: Path, jfk_path: Path
) -> None:
    env = service_env(tmp_path / "home")
    log = tmp_path / "serve.log"
    # No worker yet: jobs wait in the embedded queue while the server is stopped.
    with running_server(env, log, workers=0) as client:
        upload_id = _upload(client, jfk_path)
        first = _analyse(client, upload_id)
        second = _analyse(client, upload_id, emotion=False, features=False, beam_size=1)
        assert client.get(f"/analyses/{first}").json()["status"] == "queued"
    with running_server(env, log, workers=1) as client:
        done = [_wait(client, first), _wait(client, second)]
        assert [d["status"] for d in done] == ["completed", "completed"], done
        assert done[0]["dominant_emotion"] is not None and done[1]["dominant_emotion"] is None
        assert "fellow Americans" in done[1]["result"]["text"]
        _check_exports(client, first)
        listed = client.get("/analyses").json()
        assert listed["total"] == 2


@pytest.fixture
def scale_out(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database and Redis database, removed afterwards."""
    subprocess.run(["bash", str(ROOT / "scripts" / "ensure_services.sh")], check=True)
    import psycopg
    import redis

    name = f"emotivoice_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()
    env = service_env(
        tmp_path / "home",
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
        broker_url=REDIS_URL,
        embedded_worker="false",
        stale_after_s=4,
        janitor_interval_s=1,
    )
    try:
        yield env
    finally:
        broker.flushdb()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_scale_out_a_killed_worker_job_is_finished_by_another_exactly_once(
    tmp_path: Path, data_dir: Path, jfk_path: Path, scale_out: dict[str, str]
) -> None:
    log = tmp_path / "scale.log"
    with running_server(scale_out, log, workers=0) as client:
        assert client.get("/health").json()["mode"] == "scale-out"
        workers = [spawn(["worker"], scale_out, tmp_path / f"worker{i}.log") for i in range(2)]
        try:
            long_id = _analyse(client, _upload(client, data_dir / "speech" / "multilingual.mp3"))
            deadline = time.monotonic() + 120
            while True:  # wait until the job is really being worked on
                body = client.get(f"/analyses/{long_id}").json()
                if body["status"] == "running" and body["stage"].startswith("analysing"):
                    break
                assert time.monotonic() < deadline, body
                time.sleep(0.2)
            from sqlalchemy import create_engine, text

            engine = create_engine(scale_out["EMOTIVOICE_DATABASE_URL"])
            with engine.connect() as conn:
                holder = conn.execute(
                    text("select worker from analyses where id = :id"), {"id": long_id}
                ).scalar_one()
            pid = int(holder.rsplit(":", 1)[1])
            victim = next(w for w in workers if os.getpgid(pid) == w.pid)
            stop(victim, signal.SIGKILL)  # the worker and its pool child, mid-job
            survivor = next(w for w in workers if w is not victim)
            done = _wait(client, long_id, timeout=300)
            assert done["status"] == "completed", done
            assert done["attempt"] == 1 and survivor.poll() is None
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "select attempt, count(*) from analysis_segments where analysis_id = :id "
                        "group by attempt"
                    ),
                    {"id": long_id},
                ).all()
                completed = conn.execute(
                    text("select count(*) from analyses where result is not null")
                ).scalar_one()
            engine.dispose()
            assert rows == [(1, len(done["result"]["segments"]))]  # one attempt's segments only
            assert completed == 1
            assert {"en", "de"} <= {s["language"] for s in done["result"]["languages"]}
            # The surviving worker keeps serving: a second job over Redis completes too.
            short = _wait(client, _analyse(client, _upload(client, jfk_path)))
            assert short["status"] == "completed"
            _check_exports(client, short["id"])
        finally:
            for w in workers:
                stop(w)


def _embedded_workers_of(serve_pid: int) -> list[int]:
    """Processes started by ``serve`` as its embedded workers (Linux /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if f"EMOTIVOICE_EMBEDDED_PARENT={serve_pid}".encode() in environ:
            found.append(int(proc.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_embedded_workers_stop_when_serve_is_killed(tmp_path: Path) -> None:
    env = service_env(tmp_path / "home")
    process = spawn(["serve", "--port", str(free_port()), "--workers", "1"], env, tmp_path / "log")
    try:
        deadline = time.monotonic() + 60
        while not (workers := _embedded_workers_of(process.pid)):
            assert time.monotonic() < deadline, "serve started no worker"
            time.sleep(0.5)
        stop(process, signal.SIGKILL)  # no clean shutdown: serve cannot stop its workers
        deadline = time.monotonic() + 60
        while _embedded_workers_of(process.pid):
            assert time.monotonic() < deadline, f"workers {workers} outlived serve"
            time.sleep(0.5)
    finally:
        stop(process, signal.SIGKILL)
        for pid in _embedded_workers_of(process.pid):
            os.kill(pid, signal.SIGKILL)
