"""Jobs in process: attempt fencing of segments and files, cancellation, explanations.

Real audio, a real SQLite database, the real engine and the real job runner; only the Celery
worker process is absent (jobs run with :func:`run_job`, deliveries are simulated with the
store's own claim and requeue).
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from emotivoice.service.app import create_app
from emotivoice.service.db import SegmentRow
from emotivoice.service.errors import NotFoundError
from emotivoice.service.runner import run_job
from emotivoice.service.settings import load_settings
from emotivoice.service.storage import Store

API = "/api/v1"
LOCAL = "http://127.0.0.1"  # a loopback Host: with keys off the server answers only to those
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FAST = {"features": False, "emotion": False}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(home=tmp_path / "home", explain_max_segments=1)
    with TestClient(base_url=LOCAL, app=create_app(settings, janitor=False)) as c:
        yield c


def _store(client: TestClient) -> Store:
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    return store


def _queue(client: TestClient, audio: Path, options: dict[str, Any]) -> str:
    with audio.open("rb") as f:
        upload = client.post(f"{API}/uploads", files={"file": (audio.name, f)})
    assert upload.status_code == 201, upload.text
    body = {"upload_id": upload.json()["id"], "options": options}
    response = client.post(f"{API}/analyses", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _exports(tmp_path: Path, name: str, text: str) -> Path:
    """A worker's finished export folder (its ``analysis.json`` carrying ``text``)."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "analysis.json").write_text(json.dumps({"text": text}))
    return folder


def _segment_attempts(store: Store, analysis_id: str) -> list[int]:
    with store.session() as s:
        rows = s.scalars(select(SegmentRow.attempt).where(SegmentRow.analysis_id == analysis_id))
        return list(rows)


def test_a_running_status_holds_the_current_attempts_segments_in_two_statements(
    client: TestClient, short_wav: Path
) -> None:
    store = _store(client)
    aid = _queue(client, short_wav, FAST)
    assert store.claim(aid, 0, "worker") is not None
    assert store.add_segment(aid, 0, 0, {"text": "from delivery 0"})
    assert store.requeue(aid, 0, "requeued: worker stopped responding") == 1
    assert store.claim(aid, 1, "worker") is not None
    for idx in (2, 0, 1):  # stored out of order, answered in order
        assert store.add_segment(aid, 1, idx, {"text": f"segment {idx}"})
    assert store.heartbeat(aid, 1, progress=42.04, stage="transcribing")
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        body = client.get(f"{API}/analyses/{aid}").json()
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    # the row and its attempt's segments: one statement each, no transaction around them
    assert len(statements) == 2, statements
    assert body["segments"] == [{"text": f"segment {i}"} for i in range(3)]
    row = store.get_analysis("anonymous", aid)
    assert body == {
        "id": aid,
        "upload_id": row.upload_id,
        "status": "running",
        "progress": 42,
        "stage": "transcribing",
        "attempt": 1,
        "created_at": body["created_at"],
        "started_at": body["started_at"],
        "finished_at": None,
        "duration": None,
        "language": None,
        "dominant_emotion": None,
        "emotion_uncertain": None,
        "error": None,
        "options": row.options,
        "segments": body["segments"],
        "result": None,
        "callback_status": None,
    }
    assert body["created_at"] and body["started_at"]
    # another owner's analysis is not found, as before
    assert store.segments(aid) == body["segments"]
    with pytest.raises(NotFoundError):
        store.status("someone-else", aid)


@pytest.mark.slow
def test_a_stale_delivery_cannot_write_segments_or_files(
    client: TestClient, short_wav: Path, tmp_path: Path
) -> None:
    store = _store(client)
    aid = _queue(client, short_wav, FAST)
    # Delivery 0 claims the job and stores a segment; then its worker freezes and the janitor
    # hands the job to delivery 1.
    assert store.claim(aid, 0, "frozen-worker") is not None
    assert store.add_segment(aid, 0, 0, {"text": "written by delivery 0"})
    assert store.requeue(aid, 0, "requeued: worker stopped responding") == 1
    assert not store.add_segment(aid, 0, 0, {"text": "stale"})
    assert run_job(store, aid, 1, "new-worker") == "completed"
    good = client.get(f"{API}/analyses/{aid}").json()
    assert good["status"] == "completed" and "fellow" in good["result"]["text"]
    good_pdf = client.get(f"{API}/analyses/{aid}/export?format=pdf").content
    # The frozen delivery wakes up and tries to finish: its segment and its files are refused,
    # and what delivery 1 stored stays as it was.
    assert not store.add_segment(aid, 0, 0, {"text": "stale"})
    stale = _exports(tmp_path, "stale-exports", "stale")
    assert not store.complete(aid, 0, {"text": "stale"}, stale)
    assert not stale.exists() and not store.result_dir(aid, 0).exists()
    # A repeated completion by the delivery that won changes nothing either.
    again = _exports(tmp_path, "again", "again")
    assert not store.complete(aid, 1, {"text": "again"}, again)
    assert not store.complete(aid, 1, {"text": "again"})
    assert not again.exists()
    after = client.get(f"{API}/analyses/{aid}").json()
    assert after["segments"] == good["segments"] and after["result"] == good["result"]
    assert set(_segment_attempts(store, aid)) == {1}
    exported = client.get(f"{API}/analyses/{aid}/export?format=json").json()
    assert exported["text"] == good["result"]["text"]
    assert client.get(f"{API}/analyses/{aid}/export?format=pdf").content == good_pdf
    assert [p.name for p in store.artefact_dir(aid).iterdir()] == ["attempt-1"]


def test_a_cancelled_delivery_publishes_nothing(
    client: TestClient, short_wav: Path, tmp_path: Path
) -> None:
    store = _store(client)
    aid = _queue(client, short_wav, FAST)
    assert store.claim(aid, 0, "worker") is not None
    assert store.add_segment(aid, 0, 0, {"text": "first segment"})
    # The worker has written its exports; the client deletes the analysis before the worker
    # records the result (the window between the last heartbeat and the completion).
    exports = _exports(tmp_path, "exports", "finished")
    assert client.delete(f"{API}/analyses/{aid}").json()["status"] == "cancelled"
    assert not store.add_segment(aid, 0, 1, {"text": "late segment"})
    assert not store.complete(aid, 0, {"text": "finished"}, exports)
    assert not exports.exists() and not store.artefact_dir(aid).exists()
    gone = client.get(f"{API}/analyses/{aid}").json()
    assert gone["status"] == "cancelled" and gone["segments"] == [] and gone["result"] is None
    assert _segment_attempts(store, aid) == []


@pytest.mark.slow
def test_deleting_a_running_job_leaves_no_files(client: TestClient, jfk_path: Path) -> None:
    store = _store(client)
    aid = _queue(client, jfk_path, {"emotion": False})
    outcome: list[str] = []
    worker = threading.Thread(target=lambda: outcome.append(run_job(store, aid, 0, "worker")))
    worker.start()
    deadline = time.monotonic() + 60
    while client.get(f"{API}/analyses/{aid}").json()["status"] == "queued":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.02)
    assert client.delete(f"{API}/analyses/{aid}").json()["status"] == "cancelled"
    worker.join(timeout=120)
    # Whether the worker noticed at its next write or had already finished, nothing stays.
    assert outcome and outcome[0] in ("skipped", "completed"), outcome
    settings = store.settings
    assert not store.artefact_dir(aid).exists() and not store.work_dir(aid, 0).exists()
    assert not [p for p in settings.artefacts_dir.iterdir() if p.name.startswith(aid)]
    gone = client.get(f"{API}/analyses/{aid}").json()
    assert gone["status"] == "cancelled" and gone["segments"] == [] and gone["result"] is None


@pytest.mark.slow
def test_explanations_through_the_service(client: TestClient, short_wav: Path) -> None:
    from PIL import Image
    from pypdf import PdfReader

    store = _store(client)
    aid = _queue(client, short_wav, {"explain": True, "explain_windows": 3})
    assert run_job(store, aid, 0, "worker") == "completed"
    data = client.get(f"{API}/analyses/{aid}/explanations")
    assert data.status_code == 200, data.text
    body = data.json()
    [segment] = body["segments"]  # explain_max_segments = 1
    assert segment["predicted"] in segment["probabilities"]
    assert len(segment["attribution"]["windows"]) == 3
    assert segment["counterfactual"]
    names = {v["name"] for v in body["visualizations"]}
    assert {f"segment-{segment['segment']}-windows", "distribution", "timeline"} <= names
    for figure in body["visualizations"]:
        png = client.get(figure["url"])
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert png.content.startswith(PNG_SIGNATURE)
        with Image.open(io.BytesIO(png.content)) as image:
            image.verify()
            assert image.width > 100 and image.height > 100
    missing = client.get(f"{API}/analyses/{aid}/visualizations/no-such-figure.png")
    assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"
    pdf = client.get(f"{API}/analyses/{aid}/export?format=pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Explanations" in text and "Where in the segment" in text and "fellow" in text


def test_serve_creates_the_embedded_queue_before_its_workers(tmp_path: Path) -> None:
    # kombu's SQLite transport creates a queue on first use in each process, guarded by a lock
    # of that process only: an API process and a worker doing it at once collide, and the
    # worker dies (UNIQUE constraint failed: kombu_queue.name). serve declares it first.
    import sqlite3

    from emotivoice.service.jobs import QUEUE_NAME, declare_queue, make_celery

    settings = load_settings(home=tmp_path)
    assert settings.embedded_queue
    declare_queue(make_celery(settings))
    declare_queue(make_celery(settings))  # a second declaration finds it
    with sqlite3.connect(tmp_path / "queue.sqlite") as db:
        assert db.execute("SELECT name FROM kombu_queue").fetchall() == [(QUEUE_NAME,)]
