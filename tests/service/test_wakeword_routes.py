"""The wake-word studio's routes against a real ``emotivoice serve``: a tiny training job runs in
the embedded worker (real voices, real speech, two epochs), reports its progress, and leaves
samples, a DET curve and a model that the live stream accepts by the job's id; bad input gets
clear codes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from emotivoice.evaluation.processes import running_server, service_env

pytestmark = pytest.mark.slow

LOCAL = "http://127.0.0.1"
# the quick preset with fewer clips still: the test is about the routes, not the model
TINY = {"preset": "quick", "positives": 40, "confusables": 30, "epochs": 2}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wakeword-home")


@pytest.fixture(scope="module")
def api(home: Path, data_dir: Path) -> Iterator[httpx.Client]:
    env = service_env(home, wakeword_speech_dir=data_dir)
    with running_server(env, home / "serve.log", workers=1) as client:
        yield client


def _wait(api: httpx.Client, job_id: str, timeout_s: float = 240) -> tuple[dict[str, Any], list]:
    """Poll the job until it finishes; the job and the (progress, stage) seen on the way."""
    seen = []
    deadline = time.monotonic() + timeout_s
    while True:
        job = api.get(f"/wakeword/jobs/{job_id}").json()
        seen.append((job["progress"], job["stage"]))
        if job["status"] in ("completed", "failed"):
            return job, seen
        assert time.monotonic() < deadline, f"job still {job['status']} at {job['stage']}"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def trained(api: httpx.Client) -> tuple[dict[str, Any], list]:
    response = api.post("/wakeword/jobs", json={"phrase": "  Hey   Jarvis ", "options": TINY})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued" and job["phrase"] == "hey jarvis"
    return _wait(api, job["id"])


def test_a_tiny_job_trains_in_the_worker_and_reports_its_progress(
    api: httpx.Client, trained: tuple[dict[str, Any], list]
) -> None:
    job, seen = trained
    assert job["status"] == "completed", job["error"]
    assert job["progress"] == 100 and job["wake_word"] == job["id"]
    progress = [p for p, _ in seen]
    assert progress == sorted(progress)  # never goes back
    stages = " | ".join(s for _, s in seen)
    assert "generating clips" in stages or "training" in stages
    metrics = job["metrics"]  # the last epoch's figures stay on the job
    assert metrics["epoch"] == 2 and metrics["epochs"] == 2
    assert np.isfinite(metrics["train_loss"]) and 0 <= metrics["val_frr"] <= 1
    result = job["result"]
    figures = result["evaluation"]
    assert set(figures["at_target"]) == {"0.5", "1.0"}
    assert 0.02 < figures["negative_hours"] <= 0.06 and figures["positives"] == 16
    assert 0 <= figures["eer"] <= 1 and "fewer than" in figures["notes"][0]
    assert result["data"]["clips"]["train"]["positive"] == 40
    assert [e["epoch"] for e in result["epochs"]] == [1, 2]
    listed = api.get("/wakeword/jobs").json()  # stored: a reload finds it
    assert listed["total"] >= 1 and job["id"] in [j["id"] for j in listed["items"]]


def test_samples_det_curve_and_model_are_served(
    api: httpx.Client, trained: tuple[dict[str, Any], list], tmp_path: Path
) -> None:
    from emotivoice.audio import load_audio
    from emotivoice.wakeword import load_model

    job_id = trained[0]["id"]
    samples = api.get(f"/wakeword/jobs/{job_id}/samples").json()
    kinds = [s["kind"] for s in samples]
    assert kinds.count("positive") == 4 and kinds.count("confusable") == 4
    positive = next(s for s in samples if s["kind"] == "positive")
    assert "jarvis" in positive["text"].lower()
    wav = httpx.get(str(api.base_url).removesuffix("/api/v1/") + positive["url"])
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    (tmp_path / "sample.wav").write_bytes(wav.content)
    audio = load_audio(tmp_path / "sample.wav")
    assert abs(audio.duration - positive["seconds"]) < 0.05
    png = api.get(f"/wakeword/jobs/{job_id}/det.png")
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    det = api.get(f"/wakeword/jobs/{job_id}/det.json").json()
    assert det["phrase"] == "hey jarvis" and len(det["points"]) > 50
    for int8 in (False, True):
        model = api.get(f"/wakeword/jobs/{job_id}/model", params={"int8": int8})
        assert model.status_code == 200
        assert model.headers["content-disposition"].startswith('attachment; filename="hey_jarvis')
        (tmp_path / "m.onnx").write_bytes(model.content)
        loaded = load_model(tmp_path / "m.onnx")
        assert loaded.phrase == "hey jarvis"
        assert abs(loaded.threshold - trained[0]["result"]["threshold"]) < 1e-6


def _stream_url(api: httpx.Client) -> str:
    return str(api.base_url).replace("http://", "ws://").rstrip("/") + "/stream"


def test_the_live_stream_takes_a_trained_model_by_job_id(
    api: httpx.Client, trained: tuple[dict[str, Any], list]
) -> None:
    from emotivoice.client.stream import StreamClient, pcm_frames
    from emotivoice.wakeword.tts import Voice, synthesize

    said = synthesize("hey jarvis", Voice("espeak-ng", "en-029+Andy", "Andy"))
    pause = np.zeros(16000, np.float32)
    frames = pcm_frames(np.concatenate([pause, said, pause]), 100)
    client = StreamClient(_stream_url(api))
    session = asyncio.run(
        client.stream_frames(frames, wake_word=trained[0]["id"], partials=False, save=False)
    )
    assert session.close_code == 1000 and not session.errors
    assert all(w["phrase"] == "hey jarvis" for w in session.of_type("wake"))
    unknown = asyncio.run(
        client.stream_frames(frames, wake_word="0" * 32, partials=False, save=False)
    )
    (error,) = unknown.errors
    assert error["code"] == "PROTOCOL_ERROR" and "completed wake-word job" in error["message"]
    assert unknown.close_code == 1007


def test_bad_input_gets_clear_codes(api: httpx.Client) -> None:
    def refused(body: dict[str, Any]) -> dict[str, Any]:
        response = api.post("/wakeword/jobs", json=body)
        assert response.status_code == 422, response.text
        return dict(response.json())

    assert refused({"phrase": "123 !!"})["code"] == "INVALID_PHRASE"
    assert refused({"phrase": "   "})["code"] == "INVALID_PHRASE"
    assert "too long" in refused({"phrase": "a b c d e f g"})["message"]
    for options in ({"epochs": 0}, {"positives": 100000}, {"preset": "huge"}, {"voices": 3}):
        error = refused({"phrase": "hey jarvis", "options": options})
        assert error["code"] == "VALIDATION_ERROR", options
    assert refused({"words": "hey jarvis"})["code"] == "VALIDATION_ERROR"
    missing = "0123456789abcdef" * 2
    for path in ("", "/samples", "/samples/positive-1.wav", "/det.png", "/det.json", "/model"):
        response = api.get(f"/wakeword/jobs/{missing}{path}")
        assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND", path
    assert api.delete(f"/wakeword/jobs/{missing}").status_code == 404


def test_a_job_not_done_has_no_figures_and_can_be_deleted(api: httpx.Client, home: Path) -> None:
    job = api.post("/wakeword/jobs", json={"phrase": "okay computer", "options": TINY}).json()
    early = api.get(f"/wakeword/jobs/{job['id']}/det.png")
    assert early.status_code == 409 and early.json()["code"] == "NOT_READY"
    assert api.get(f"/wakeword/jobs/{job['id']}/samples/../../emotivoice.sqlite").status_code == 404
    deleted = api.delete(f"/wakeword/jobs/{job['id']}").json()
    assert deleted["status"] == "cancelled"
    assert api.get(f"/wakeword/jobs/{job['id']}").status_code == 404
    # the worker skips it (not yet claimed) or stops at its next progress report
    log = home / "serve.log"
    deadline = time.monotonic() + 60
    while f"job {job['id']}" not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, "the worker never gave the deleted job up"
        time.sleep(0.2)
    time.sleep(0.5)
    assert not (home / "wakeword" / job["id"]).exists()


def test_a_server_whose_speech_folder_is_missing_says_so(tmp_path: Path) -> None:
    from emotivoice.service.app import create_app
    from emotivoice.service.settings import load_settings

    settings = load_settings(home=tmp_path / "home", wakeword_speech_dir=tmp_path / "nowhere")
    with TestClient(base_url=LOCAL, app=create_app(settings, janitor=False)) as client:
        response = client.post("/api/v1/wakeword/jobs", json={"phrase": "hey jarvis"})
    assert response.status_code == 422
    body = response.json()
    assert (
        body["code"] == "NO_TRAINING_DATA" and "EMOTIVOICE_WAKEWORD_SPEECH_DIR" in body["message"]
    )
    assert json.dumps(body).count("Traceback") == 0


def test_the_janitor_fails_a_job_whose_worker_died(tmp_path: Path) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from emotivoice.service.db import WakeWordJobRow, utcnow
    from emotivoice.service.jobs import Janitor, make_celery
    from emotivoice.service.settings import load_settings
    from emotivoice.service.storage import Store

    settings = load_settings(home=tmp_path / "home", stale_after_s=30)
    store = Store(settings)
    row = store.create_wakeword_job("anonymous", "hey jarvis", {})
    assert store.claim_wakeword(row.id, "gone:1") is not None
    assert store.claim_wakeword(row.id, "other:2") is None  # a redelivery never runs it twice
    assert store.wakeword_progress(row.id, 40.0, "training", {"epoch": 1})
    Janitor(store, make_celery(settings)).sweep()
    assert store.get_wakeword_job("anonymous", row.id).status == "running"  # beating: alive
    with store.session() as s:
        stale = utcnow() - timedelta(seconds=31)
        s.execute(update(WakeWordJobRow).values(heartbeat_at=stale))
    Janitor(store, make_celery(settings)).sweep()
    job = store.get_wakeword_job("anonymous", row.id)
    assert job.status == "failed" and job.error_code == "WORKER_LOST"
    assert not store.wakeword_progress(row.id, 50.0)  # the lost worker's writes are refused
    store.dispose()
