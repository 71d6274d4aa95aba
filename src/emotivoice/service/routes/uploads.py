"""``/uploads``: store recordings (format judged from the content), list, fetch and delete them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import FileResponse

from emotivoice.service.deps import Owner, StoreDep
from emotivoice.service.routes import ERROR_RESPONSES
from emotivoice.service.schemas import Page, UploadDeleted, UploadInfo

__all__ = ["router"]

router = APIRouter(responses=ERROR_RESPONSES, tags=["uploads"])


@router.post("/uploads", status_code=201)
def create_upload(
    store: StoreDep, owner: Owner, file: Annotated[UploadFile, File(description="An audio file")]
) -> UploadInfo:
    """Store a recording; its format is judged from the content, never the file name."""
    row = store.create_upload(owner, file.file, file.filename)
    return UploadInfo.from_row(row)


@router.get("/uploads")
def list_uploads(
    store: StoreDep,
    owner: Owner,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> Page[UploadInfo]:
    rows, total = store.list_uploads(owner, limit, offset)
    items = [UploadInfo.from_row(r) for r in rows]
    return Page[UploadInfo](items=items, total=total, limit=limit, offset=offset)


@router.get("/uploads/{upload_id}")
def get_upload(store: StoreDep, owner: Owner, upload_id: str) -> UploadInfo:
    return UploadInfo.from_row(store.get_upload(owner, upload_id))


@router.get("/uploads/{upload_id}/audio", response_model=None)
def get_upload_audio(store: StoreDep, owner: Owner, upload_id: str) -> FileResponse:
    """The stored recording, as uploaded (for players)."""
    row = store.get_upload(owner, upload_id)
    return FileResponse(
        store.upload_path(row.id),
        media_type=f"audio/{row.format}",
        filename=row.filename,
    )


@router.delete("/uploads/{upload_id}")
def delete_upload(store: StoreDep, owner: Owner, upload_id: str) -> UploadDeleted:
    """Remove the recording and every analysis of it."""
    store.delete_upload(owner, upload_id)
    return UploadDeleted(id=upload_id, deleted=True)
