"""``/analyses``: queue analyses of uploads (one or a batch), poll, list, cancel and export them.

Options are checked against this server before a job is queued, so a bad request fails at once
(422) instead of in the worker.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response

from emotivoice.errors import EmotiVoiceError, InvalidConfigError, InvalidResultError
from emotivoice.service.callbacks import check_callback_url
from emotivoice.service.deps import Owner, Services, StoreDep, Svc, charge
from emotivoice.service.errors import (
    CallbacksNotConfiguredError,
    NotFoundError,
    QuotaExceededError,
    api_error,
)
from emotivoice.service.jobs import enqueue
from emotivoice.service.routes import ERROR_RESPONSES
from emotivoice.service.schemas import (
    AnalysisCreate,
    AnalysisDetail,
    AnalysisOptionsIn,
    AnalysisState,
    AnalysisSummary,
    BatchCreate,
    BatchFailed,
    BatchQueued,
    BatchResult,
    ErrorBody,
    Page,
)
from emotivoice.service.settings import Settings
from emotivoice.service.storage import EXPLAIN_FOLDER, REPORT_FILE, RESULT_STEM

if TYPE_CHECKING:
    from emotivoice.results import Analysis

__all__ = ["EXPORTS", "router"]

logger = logging.getLogger(__name__)

router = APIRouter(responses=ERROR_RESPONSES, tags=["analyses"])

#: Export formats: the file in an analysis' result folder and its media type
EXPORTS = {
    "json": (f"{RESULT_STEM}.json", "application/json"),
    "csv": (f"{RESULT_STEM}.csv", "text/csv"),
    "srt": (f"{RESULT_STEM}.srt", "application/x-subrip"),
    "vtt": (f"{RESULT_STEM}.vtt", "text/vtt"),
    "pdf": (REPORT_FILE, "application/pdf"),
}


def _check_options(settings: Settings, options: AnalysisOptionsIn) -> dict[str, Any]:
    """Validate options against this server before a job is queued."""
    from emotivoice.explain.options import check_method_names
    from emotivoice.models.registry import available_models
    from emotivoice.pipeline import AnalyzeOptions
    from emotivoice.transcription import supported_languages

    if options.model not in available_models():
        raise InvalidConfigError(
            f"Unknown model {options.model!r}; available models = {available_models()}"
        )
    if options.language is not None and options.language not in supported_languages():
        raise InvalidConfigError(f"Unknown language {options.language!r}; see GET /languages.")
    if options.emotion_model not in settings.emotion_models:
        raise InvalidConfigError(
            f"Emotion model {options.emotion_model!r} is not offered by this server; "
            f"choose from {settings.emotion_models}."
        )
    if options.explain and not options.emotion:
        raise InvalidConfigError("explain explains emotions; it needs emotion turned on.")
    if options.explain:
        options.explain_options()  # the one check of methods, model and budget
    else:  # kept for a later explanation: only the names can be checked
        check_method_names(options.explain_methods or ())
    AnalyzeOptions.from_kwargs(**options.analyzer_kwargs())
    return options.model_dump()


def _check_callback(settings: Settings, callback_url: Any) -> None:
    """Refuse a callback URL this server cannot sign for or may not send to.

    Raises:
        CallbacksNotConfiguredError: the server has no callback secret.
        CallbackRefusedError: not https, credentials in the URL, or a host that is not public
            (see :func:`emotivoice.service.callbacks.check_callback_url`).
    """
    if callback_url is None:
        return
    if not settings.callback_secret:
        raise CallbacksNotConfiguredError(
            "This server has no callback secret (EMOTIVOICE_CALLBACK_SECRET), so it cannot sign "
            "completion notices; leave callback_url out, or ask the operator to set the secret."
        )
    check_callback_url(settings, str(callback_url))


def _queue(svc: Services, owner: str, upload_id: str, options: dict[str, Any], cb: Any) -> str:
    quota = svc.settings.max_active_jobs
    if quota and svc.store.active_jobs(owner) >= quota:
        raise QuotaExceededError(
            f"This key has {quota} analyses queued or running, its limit; wait for some to "
            "finish (or cancel them) before queueing more."
        )
    row = svc.store.create_analysis(owner, upload_id, options, str(cb) if cb else None)
    enqueue(svc.celery, row.id, row.attempt)
    return row.id


@router.post("/analyses", status_code=202)
def create_analysis(svc: Svc, owner: Owner, body: AnalysisCreate) -> AnalysisState:
    """Queue an analysis of an upload; poll ``GET /analyses/{id}``."""
    options = _check_options(svc.settings, body.options)
    _check_callback(svc.settings, body.callback_url)
    analysis_id = _queue(svc, owner, body.upload_id, options, body.callback_url)
    return AnalysisState(id=analysis_id, status="queued")


@router.post("/analyses/batch", status_code=202)
def create_batch(request: Request, svc: Svc, owner: Owner, body: BatchCreate) -> BatchResult:
    """Queue one analysis per distinct upload; a bad upload id fails alone, the rest are queued.

    Each analysis counts as one request against the rate limit (the batch itself is the
    first); an upload id given twice is analysed once.
    """
    upload_ids = list(dict.fromkeys(body.upload_ids))
    charge(request, len(upload_ids) - 1, "analyses")
    options = _check_options(svc.settings, body.options)
    _check_callback(svc.settings, body.callback_url)
    items: list[BatchQueued | BatchFailed] = []
    for upload_id in upload_ids:
        try:
            analysis_id = _queue(svc, owner, upload_id, options, body.callback_url)
            items.append(BatchQueued(upload_id=upload_id, id=analysis_id, status="queued"))
        except EmotiVoiceError as e:
            _, code = api_error(e)
            error = ErrorBody(code=code, message=e.message)
            items.append(BatchFailed(upload_id=upload_id, error=error))
    return BatchResult(items=items)


@router.get("/analyses")
def list_analyses(
    store: StoreDep,
    owner: Owner,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    status: Annotated[
        str | None, Query(pattern="^(queued|running|completed|failed|cancelled)$")
    ] = None,
) -> Page[AnalysisSummary]:
    rows, total = store.list_analyses(owner, limit, offset, status)
    items = [AnalysisSummary.from_row(r) for r in rows]
    return Page[AnalysisSummary](items=items, total=total, limit=limit, offset=offset)


@router.get("/analyses/{analysis_id}")
def get_analysis(store: StoreDep, owner: Owner, analysis_id: str) -> AnalysisDetail:
    """Status, progress, stage, segments finished so far and, once completed, the result."""
    return AnalysisDetail.from_row(*store.status(owner, analysis_id))


@router.delete("/analyses/{analysis_id}")
def delete_analysis(store: StoreDep, owner: Owner, analysis_id: str) -> AnalysisState:
    """Cancel the analysis if it is still running and remove its results and files."""
    store.delete_analysis(owner, analysis_id)
    return AnalysisState(id=analysis_id, status="cancelled")


@router.get("/analyses/{analysis_id}/export", response_model=None)
def export(
    store: StoreDep,
    owner: Owner,
    analysis_id: str,
    format: Annotated[str, Query(pattern="^(json|csv|pdf|srt|vtt)$")] = "json",
    max_line_width: Annotated[
        int | None, Query(ge=1, le=1000, description="SRT/VTT: characters a line (default 42)")
    ] = None,
    max_line_count: Annotated[
        int | None, Query(ge=1, le=20, description="SRT/VTT: lines a cue (default 2)")
    ] = None,
    max_cue_duration: Annotated[
        float | None, Query(gt=0, le=3600, description="SRT/VTT: seconds a cue (default 7)")
    ] = None,
) -> FileResponse | Response:
    """The result as JSON, CSV, SRT, WebVTT or a PDF report. Subtitle cues are cut at word
    times; the ``max_*`` parameters change how (the defaults are the stored file's)."""
    name, media = EXPORTS[format]
    folder = store.completed_dir(owner, analysis_id)
    cut = {
        "max_line_width": max_line_width,
        "max_line_count": max_line_count,
        "max_cue_duration": max_cue_duration,
    }
    if format in ("srt", "vtt") and any(v is not None for v in cut.values()):
        return _subtitles(folder, format, analysis_id, {k: v for k, v in cut.items() if v})
    path = folder / name
    if not path.is_file():
        _write_missing_export(folder, format, path, analysis_id)
    return FileResponse(path, media_type=media, filename=f"{analysis_id}.{format}")


def _subtitles(folder: Path, fmt: str, analysis_id: str, cut: dict[str, Any]) -> Response:
    """Subtitles cut other than the stored file's, rendered from the stored analysis."""
    from emotivoice.export import SubtitleOptions, get_writer

    options = SubtitleOptions(**cut)
    text = get_writer(fmt, options).render(_stored_analysis(folder, fmt, analysis_id))
    disposition = f'attachment; filename="{analysis_id}.{fmt}"'
    return Response(text, media_type=EXPORTS[fmt][1], headers={"Content-Disposition": disposition})


def _stored_analysis(folder: Path, fmt: str, analysis_id: str) -> Analysis:
    from emotivoice.results import load_analysis

    stored = folder / EXPORTS["json"][0]
    if not stored.is_file():
        raise NotFoundError(f"No {fmt} export for analysis {analysis_id}.")
    try:
        return load_analysis(stored)
    except InvalidResultError as error:  # its message names a server path
        logger.error("Analysis %s: %s", analysis_id, error.message)
        raise InvalidResultError(
            f"The stored result of analysis {analysis_id} is unreadable, so its {fmt} "
            "export cannot be written."
        ) from None


def _write_missing_export(folder: Path, fmt: str, path: Path, analysis_id: str) -> None:
    """Write an export the result folder lacks (an analysis finished before its format
    existed) from the stored ``analysis.json``, once: later requests find the file."""
    from emotivoice.export import write_export

    analysis = _stored_analysis(folder, fmt, analysis_id)
    partial = folder / f".{uuid.uuid4().hex}.{fmt}"  # concurrent requests race harmlessly
    try:
        write_export(analysis, fmt, partial, folder / EXPLAIN_FOLDER)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    logger.info("Wrote the missing %s export of analysis %s", fmt, analysis_id)
