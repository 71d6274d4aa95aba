"""``/wakeword``: the wake-word studio over HTTP.

Start a training job for a typed phrase (generate the data with the offline voices, train the
small streaming student, evaluate it as a stream), follow its progress, listen to a few of the
generated clips, fetch the DET curve and the model. The job runs in a worker process
(:mod:`emotivoice.service.wakeword_runner`), never in the API's; a completed job's id is a
``wake_word`` the live stream (``/stream``) accepts from the same key.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from emotivoice.service.deps import Owner, StoreDep, Svc
from emotivoice.service.errors import NotFoundError, NotReadyError, QuotaExceededError
from emotivoice.service.jobs import enqueue_wakeword
from emotivoice.service.routes import API_PREFIX, ERROR_RESPONSES
from emotivoice.service.schemas import (
    Page,
    WakeWordJob,
    WakeWordJobCreate,
    WakeWordSample,
)
from emotivoice.service.storage.wakeword import EVALUATION_FOLDER, RUN_FOLDER, SAMPLES_FOLDER

__all__ = ["router"]

router = APIRouter(responses=ERROR_RESPONSES, tags=["wake word"])

_SAMPLE_NAME = re.compile(r"^(positive|confusable|sentence)-[0-9]{1,3}\.wav$")
_SAMPLES_FILE = "samples.json"  # the runner's SAMPLES_FILE (not imported: it loads numpy)


@router.post("/wakeword/jobs", status_code=202)
def create_job(svc: Svc, owner: Owner, body: WakeWordJobCreate) -> WakeWordJob:
    """Queue a training job for ``phrase``; poll ``GET /wakeword/jobs/{id}``.

    The phrase is checked at once (``INVALID_PHRASE``), as is the server's real-speech folder
    (``NO_TRAINING_DATA``).
    """
    from emotivoice.service.wakeword_runner import real_speech_dir
    from emotivoice.wakeword.phrase import WakePhrase

    phrase = WakePhrase.parse(body.phrase)
    real_speech_dir(svc.settings)
    quota = svc.settings.max_active_jobs
    if quota and svc.store.active_wakeword_jobs(owner) >= quota:
        raise QuotaExceededError(
            f"This key has {quota} wake-word jobs queued or running, its limit; wait for one "
            "to finish (or delete it) first."
        )
    options = body.options.model_dump(exclude_none=True)
    row = svc.store.create_wakeword_job(owner, phrase.text, options)
    enqueue_wakeword(svc.celery, row.id)
    return WakeWordJob.from_row(row)


@router.get("/wakeword/jobs")
def list_jobs(
    store: StoreDep,
    owner: Owner,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> Page[WakeWordJob]:
    rows, total = store.list_wakeword_jobs(owner, limit, offset)
    items = [WakeWordJob.from_row(r) for r in rows]
    return Page[WakeWordJob](items=items, total=total, limit=limit, offset=offset)


@router.get("/wakeword/jobs/{job_id}")
def get_job(store: StoreDep, owner: Owner, job_id: str) -> WakeWordJob:
    """Status, stage, percent, the latest epoch's loss and validation figures; once completed,
    the streaming evaluation."""
    return WakeWordJob.from_row(store.get_wakeword_job(owner, job_id))


@router.delete("/wakeword/jobs/{job_id}")
def delete_job(store: StoreDep, owner: Owner, job_id: str) -> WakeWordJob:
    """Cancel the job if it still runs and remove it with its files."""
    row = store.get_wakeword_job(owner, job_id)
    store.delete_wakeword_job(owner, job_id)
    row.status, row.stage = "cancelled", "cancelled"
    return WakeWordJob.from_row(row)


@router.get("/wakeword/jobs/{job_id}/samples")
def samples(store: StoreDep, owner: Owner, job_id: str) -> list[WakeWordSample]:
    """A few of the generated training clips (positives, confusables, sentences), once the
    data set is made; empty before."""
    store.get_wakeword_job(owner, job_id)
    listing = store.wakeword_dir(job_id) / SAMPLES_FOLDER / _SAMPLES_FILE
    if not listing.is_file():
        return []
    base = f"{API_PREFIX}/wakeword/jobs/{job_id}/samples"
    return [
        WakeWordSample(
            name=s["name"],
            kind=s["kind"],
            text=s["text"],
            voice=s["voice"],
            seconds=s["seconds"],
            url=f"{base}/{s['name']}",
        )
        for s in json.loads(listing.read_text())
    ]


@router.get("/wakeword/jobs/{job_id}/samples/{name}", response_model=None)
def sample(store: StoreDep, owner: Owner, job_id: str, name: str) -> FileResponse:
    """One generated clip as WAV (16 kHz mono)."""
    store.get_wakeword_job(owner, job_id)
    path = store.wakeword_dir(job_id) / SAMPLES_FOLDER / name
    if not _SAMPLE_NAME.match(name) or not path.is_file():
        raise NotFoundError(f"No sample {name!r} for wake-word job {job_id}.")
    return FileResponse(path, media_type="audio/wav")


def _completed_file(store: StoreDep, owner: str, job_id: str, *parts: str) -> Path:
    row = store.get_wakeword_job(owner, job_id)
    if row.status != "completed":
        raise NotReadyError(
            f"Wake-word job {job_id} is {row.status}; its figures and model exist once it "
            "completed."
        )
    path = store.wakeword_dir(job_id).joinpath(*parts)
    if not path.is_file():
        raise NotFoundError(f"Wake-word job {job_id} has no {parts[-1]}.")
    return path


@router.get("/wakeword/jobs/{job_id}/det.png", response_model=None)
def det_png(store: StoreDep, owner: Owner, job_id: str) -> FileResponse:
    """The DET curve: false rejects against false accepts per hour, one point a threshold."""
    path = _completed_file(store, owner, job_id, EVALUATION_FOLDER, "det.png")
    return FileResponse(path, media_type="image/png")


@router.get("/wakeword/jobs/{job_id}/det.json", response_model=None)
def det_json(store: StoreDep, owner: Owner, job_id: str) -> FileResponse:
    """The DET curve's points (threshold, false_reject_rate, false_accepts, fa_per_hour)."""
    path = _completed_file(store, owner, job_id, EVALUATION_FOLDER, "det.json")
    return FileResponse(path, media_type="application/json")


@router.get("/wakeword/jobs/{job_id}/model", response_model=None)
def model(
    store: StoreDep,
    owner: Owner,
    job_id: str,
    int8: Annotated[
        bool, Query(description="The int8 quantisation (smaller, a bit less exact)")
    ] = False,
) -> FileResponse:
    """The trained model as ONNX, for ``emotivoice wakeword listen --model FILE``."""
    name = "model.int8.onnx" if int8 else "model.onnx"
    path = _completed_file(store, owner, job_id, RUN_FOLDER, name)
    row = store.get_wakeword_job(owner, job_id)
    slug = re.sub(r"[^a-z0-9]+", "_", row.phrase).strip("_") or "wakeword"
    filename = f"{slug}{'.int8' if int8 else ''}.onnx"
    return FileResponse(path, media_type="application/octet-stream", filename=filename)
