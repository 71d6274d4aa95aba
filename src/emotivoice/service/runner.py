"""What a worker does with one job: analyse, store segments as they finish, write artefacts.

Exports are written to the delivery's own scratch folder and handed to the fenced
:meth:`~emotivoice.service.storage.Store.complete`, which publishes them only if this delivery
still holds the job; a cancelled or taken-over delivery leaves no file behind.

Independent of Celery (the task in :mod:`emotivoice.service.jobs` is a thin wrapper), so the same
code runs in an embedded worker, a scale-out worker and the tests.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Self

from emotivoice.errors import EmotiVoiceError
from emotivoice.service.errors import api_error
from emotivoice.service.schemas import AnalysisOptionsIn, iso
from emotivoice.service.settings import Settings
from emotivoice.service.storage import EXPLAIN_FOLDER, REPORT_FILE, RESULT_STEM, Store

__all__ = ["JobLostError", "run_job", "sign_body"]

logger = logging.getLogger(__name__)

_ANALYSIS_SHARE = 90.0  # progress percent reached when every segment is analysed
_RESULT_DIR = "result"

CALLBACK_SIGNATURE_HEADER = "X-EmotiVoice-Signature"


class JobLostError(Exception):
    """This delivery no longer holds the job (cancelled, deleted or handed to another worker)."""


def sign_body(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of a callback body with the server's callback secret."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class Heartbeat:
    """A thread that calls :meth:`beat` every ``period`` seconds while a job runs and sets
    ``lost`` when a beat says the job is no longer this worker's. Subclasses define ``beat``."""

    def __init__(self, period: float, name: str) -> None:
        self.period = period
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def beat(self) -> bool:
        """Refresh the job's heartbeat; False when the job is lost."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                if not self.beat():
                    self.lost.set()
            except Exception:  # a missed beat is retried next period
                logger.warning("Heartbeat of %s failed", self._thread.name, exc_info=True)


class _Heartbeat(Heartbeat):
    """Keeps the analysis job's heartbeat fresh while the analysis runs; notices a lost job."""

    def __init__(self, store: Store, analysis_id: str, attempt: int, period: float) -> None:
        super().__init__(period, f"heartbeat-{analysis_id}")
        self.store, self.analysis_id, self.attempt = store, analysis_id, attempt

    def beat(self) -> bool:
        return bool(self.store.heartbeat(self.analysis_id, self.attempt))

    def update(self, progress: float, stage: str) -> None:
        if self.lost.is_set() or not self.store.heartbeat(
            self.analysis_id, self.attempt, progress, stage
        ):
            self.lost.set()
            raise JobLostError(self.analysis_id)


def run_job(store: Store, analysis_id: str, attempt: int, worker: str) -> str:
    """Run delivery ``attempt`` of a job; returns ``completed``, ``failed`` or ``skipped``.

    Raises:
        Exception: transient infrastructure errors (database unreachable) propagate so that the
            queue retries the delivery; input and option errors mark the job failed instead.
    """
    row = store.claim(analysis_id, attempt, worker)
    if row is None:
        logger.info("Skipping %s attempt %d: not this delivery's job", analysis_id, attempt)
        return "skipped"
    settings = store.settings
    period = max(0.5, min(5.0, settings.stale_after_s / 4))
    work = store.work_dir(analysis_id, attempt)
    try:
        with _Heartbeat(store, analysis_id, attempt, period) as beat:
            result = _analyse(
                store, row.upload_id, row.options, beat, work, settings, _upload_name(store, row)
            )
            if not store.complete(analysis_id, attempt, result, work / _RESULT_DIR):
                raise JobLostError(analysis_id)
        logger.info("Completed %s (attempt %d)", analysis_id, attempt)
        outcome = "completed"
    except JobLostError:
        logger.info("Job %s attempt %d was cancelled or taken over; stopping", analysis_id, attempt)
        return "skipped"
    except EmotiVoiceError as e:
        _, code = api_error(e)
        if not store.fail(analysis_id, attempt, code, e.message):
            return "skipped"  # another delivery holds the job: its outcome is the one to report
        logger.info("Job %s failed: %s", analysis_id, e.message)
        outcome = "failed"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _notify(store, analysis_id)
    return outcome


def _upload_name(store: Store, row: Any) -> str | None:
    """The file name the upload was sent with (the stored file is named by its id)."""
    try:
        return str(store.get_upload(row.owner, row.upload_id).filename)
    except EmotiVoiceError:  # deleted meanwhile: the analysis names the id, as before
        return None


def _analyse(
    store: Store,
    upload_id: str,
    raw_options: dict[str, Any],
    beat: _Heartbeat,
    work: Path,
    settings: Settings,
    filename: str | None = None,
) -> dict[str, Any]:
    from emotivoice.pipeline import AnalyzeOptions, Analyzer, SegmentResult
    from emotivoice.workflow import STAGE_WRITING, analyze_and_write

    started = time.perf_counter()  # model loading and decoding count, as they always did
    options = AnalysisOptionsIn(**raw_options)
    analyzer = Analyzer(
        AnalyzeOptions.from_kwargs(
            **options.analyzer_kwargs(), max_duration=settings.max_duration_s
        )
    )
    beat.update(1.0, "decoding audio")
    audio = analyzer.load(store.upload_path(upload_id))
    if filename:  # results, exports and the PDF report name the recording as its sender did
        audio = dataclasses.replace(audio, info=dataclasses.replace(audio.info, name=filename))

    def progress(done: float, total: float, message: str) -> None:
        beat.update(_ANALYSIS_SHARE * done / max(total, 1e-9), f"analysing {message}")

    def store_segment(finished: SegmentResult) -> None:
        segment = finished.segment
        if not store.add_segment(
            beat.analysis_id, beat.attempt, segment.id, dataclasses.asdict(segment)
        ):
            raise JobLostError(beat.analysis_id)

    def stage(name: str) -> None:
        beat.update(_ANALYSIS_SHARE + (5 if name == STAGE_WRITING else 0), name)

    def explaining(done: float, total: float, message: str) -> None:
        beat.update(_ANALYSIS_SHARE + 4 * done / max(total, 1e-9), message)

    shutil.rmtree(work, ignore_errors=True)
    out = work / _RESULT_DIR
    written = analyze_and_write(
        analyzer,
        audio,
        out,
        RESULT_STEM,
        ["json", "csv", "srt", "vtt", "pdf"],
        explain=options.explain_options() if options.explain else None,
        explain_dir=out / EXPLAIN_FOLDER,
        explain_max_segments=settings.explain_max_segments,
        file_names={"pdf": REPORT_FILE},
        progress=progress,
        explain_progress=explaining,
        on_segment=store_segment,
        on_stage=stage,
        started=started,
    )
    return written.analysis.to_dict()


def callback_body(store: Store, analysis_id: str) -> tuple[str, bytes] | None:
    """The completion notice of an analysis and the URL to send it to, if it asked for one."""
    with store.session() as s:
        from emotivoice.service.db import AnalysisRow

        row = s.get(AnalysisRow, analysis_id)
    if row is None or not row.callback_url:
        return None
    result = row.result or {}
    emotion = result.get("emotion") or {}
    body = {
        "event": f"analysis.{row.status}",
        "id": row.id,
        "status": row.status,
        "upload_id": row.upload_id,
        "finished_at": iso(row.finished_at),
        "duration": result.get("duration"),
        "language": result.get("language"),
        "text": result.get("text"),
        "dominant_emotion": emotion.get("dominant"),
        "emotion_uncertain": emotion.get("uncertain"),
        "error": {"code": row.error_code, "message": row.error_message} if row.error_code else None,
    }
    return row.callback_url, json.dumps(body, separators=(",", ":")).encode("utf-8")


def _notify(store: Store, analysis_id: str) -> None:
    """Hand the signed completion notice to this process' courier; never waits for it.

    The delivery (retries, back-off, the address checks) runs on the courier's own threads
    (:mod:`emotivoice.service.callbacks`), so a slow receiver never holds the job queue.
    """
    from emotivoice.service.callbacks import FAILED, PENDING, courier, deliver

    notice = callback_body(store, analysis_id)
    if notice is None:
        return
    url, body = notice
    settings = store.settings
    if not settings.callback_secret:
        # The API took the URL with a secret set, but this worker has none: never sign with ''.
        logger.warning("Callback for %s not sent: no callback secret is configured", analysis_id)
        store.set_callback_status(analysis_id, FAILED)
        return
    headers = {
        "Content-Type": "application/json",
        CALLBACK_SIGNATURE_HEADER: sign_body(settings.callback_secret, body),
    }
    store.set_callback_status(analysis_id, PENDING)
    courier(settings).submit(
        analysis_id,
        lambda: deliver(settings, url, body, headers),
        lambda status: store.set_callback_status(analysis_id, status),
    )
