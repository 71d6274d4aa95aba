"""``/health`` and ``/ready``: whether this process, its database and its queue are up."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from emotivoice._version import __version__
from emotivoice.service.deps import Svc
from emotivoice.service.routes import ERROR_RESPONSES
from emotivoice.service.schemas import ErrorBody, Health, Ready

__all__ = ["router"]

router = APIRouter(responses=ERROR_RESPONSES, tags=["service"])


@router.get("/health")
def health(svc: Svc) -> Health:
    """Version, models loaded in this process, and whether database and queue answer."""
    database, queue = svc.store.ping(), svc.queue_ok()
    return Health(
        status="ok" if database and queue else "degraded",
        version=__version__,
        mode="embedded" if svc.settings.embedded_queue else "scale-out",
        models_loaded=svc.models_loaded,
        database=database,
        queue=queue,
    )


@router.get("/ready", response_model=Ready, responses={503: {"model": ErrorBody}})
def ready(svc: Svc) -> Ready | JSONResponse:
    """200 when the database and the queue answer and a worker is alive, else 503."""
    problem = None
    if not (svc.store.ping() and svc.queue_ok()):
        problem = "The database or the job queue is not reachable."
    elif not svc.store.live_workers(svc.settings.stale_after_s):
        problem = (
            "No worker is running: analyses would stay queued. Start one (emotivoice worker), "
            "or wait for serve to restart its embedded worker."
        )
    if problem is None:
        return Ready(ready=True)
    body = ErrorBody(code="NOT_READY", message=problem)
    return JSONResponse(body.model_dump(), status_code=503)
