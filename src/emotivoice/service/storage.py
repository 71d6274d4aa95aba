"""Persistent state of the service: uploads, analyses, segment results, API keys and files.

Every query is scoped by ``owner`` (an API key id, or ``anonymous`` when keys are off), so one
key never sees another key's data. Worker writes are fenced by the analysis' ``attempt``: only the
delivery that currently holds a job may write its progress, segments, result and files, which
makes result writes idempotent when a job is redelivered.

Files of an analysis live in :meth:`Store.artefact_dir`, one folder per delivery
(``attempt-N``); the API serves the folder of the attempt that completed the job, so a stale or
cancelled delivery never overwrites or resurrects anything a client can fetch.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import secrets
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from emotivoice.audio import load_audio, sniff_format
from emotivoice.errors import (
    EmptyAudioError,
    FileTooLargeError,
    NotFoundError,
    UnsupportedFormatError,
)
from emotivoice.service.db import (
    AnalysisRow,
    ApiKeyRow,
    SegmentRow,
    UploadRow,
    make_engine,
    migrate,
    session_factory,
    utcnow,
)
from emotivoice.service.settings import Settings

__all__ = ["ACTIVE", "FINISHED", "NewKey", "Store"]

logger = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
FINISHED = ("completed", "failed", "cancelled")
_CHUNK = 1024 * 1024
_SNIFF_BYTES = 64
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


def new_id() -> str:
    return uuid.uuid4().hex


def hash_key(secret: str) -> str:
    """SHA-256 of an API key (keys are 256-bit random, so a fast hash is safe)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def display_name(filename: str | None) -> str:
    """A client file name reduced to a harmless label (never used as a path)."""
    name = Path(filename or "").name
    return _SAFE_NAME.sub("_", name)[:200] or "upload"


@dataclass(frozen=True)
class NewKey:
    """A freshly created API key; ``secret`` is shown once and stored only hashed."""

    id: str
    name: str
    secret: str


class Store:
    """Database and data directory of one service deployment."""

    def __init__(self, settings: Settings, *, migrate_schema: bool = True) -> None:
        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True)
        settings.uploads_dir.mkdir(parents=True, exist_ok=True)
        settings.artefacts_dir.mkdir(parents=True, exist_ok=True)
        if migrate_schema:
            migrate(settings.db_url)
        self.engine = make_engine(settings.db_url)
        self._sessions = session_factory(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    def ping(self) -> bool:
        """Whether the database answers."""
        try:
            with self.session() as s:
                s.execute(select(1))
            return True
        except Exception:  # health check reports, never raises
            logger.warning("Database unreachable", exc_info=True)
            return False

    def dispose(self) -> None:
        self.engine.dispose()

    # --- uploads -------------------------------------------------------------------------

    def upload_path(self, upload_id: str) -> Path:
        return self.settings.uploads_dir / upload_id

    def create_upload(self, owner: str, data: bytes | IO[bytes], filename: str | None) -> UploadRow:
        """Store an uploaded recording after checking that it is audio we can decode.

        Raises:
            FileTooLargeError: more than ``max_upload_mb``.
            UnsupportedFormatError: the content is not an audio container we read.
            AudioError: empty, corrupt or truncated audio, or longer than ``max_duration_s``.
        """
        upload_id = new_id()
        target = self.upload_path(upload_id)
        partial = target.with_suffix(".part")
        try:
            size, head = self._write_limited(data, partial)
            name = display_name(filename)
            if size == 0:
                raise EmptyAudioError(f"{name} is empty (0 bytes).")
            kind = sniff_format(head)
            if kind is None:
                raise UnsupportedFormatError(
                    f"{name} is not an audio file EmotiVoice can read (judged from its content); "
                    "send WAV, FLAC, MP3, Ogg/Opus, M4A/AAC, WebM or AIFF."
                )
            audio = load_audio(partial, max_duration=self.settings.max_duration_s)
            partial.rename(target)
        finally:
            partial.unlink(missing_ok=True)
        info = audio.info
        row = UploadRow(
            id=upload_id,
            owner=owner,
            filename=name,
            format=info.format or kind,
            codec=info.codec,
            sample_rate=info.sample_rate,
            channels=info.channels,
            duration=round(audio.duration, 3),
            size_bytes=size,
        )
        try:
            with self.session() as s:
                s.add(row)
        except Exception:
            target.unlink(missing_ok=True)
            raise
        logger.info("Stored upload %s (%s, %.1f s)", upload_id, row.format, row.duration)
        return row

    def _write_limited(self, data: bytes | IO[bytes], path: Path) -> tuple[int, bytes]:
        limit = self.settings.max_upload_bytes
        too_large = FileTooLargeError(
            f"The upload is larger than the limit of {self.settings.max_upload_mb:g} MB."
        )
        if isinstance(data, bytes | bytearray):
            if len(data) > limit:
                raise too_large
            path.write_bytes(data)
            return len(data), bytes(data[:_SNIFF_BYTES])
        size, head = 0, b""
        with path.open("wb") as out:
            while chunk := data.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise too_large
                if len(head) < _SNIFF_BYTES:
                    head += chunk[: _SNIFF_BYTES - len(head)]
                out.write(chunk)
        return size, head

    def _owned(self, model: type[Any], owner: str, row_id: str, what: str) -> Any:
        """The row ``row_id`` of ``model`` if ``owner`` owns it; another owner's is not found."""
        with self.session() as s:
            row = s.get(model, row_id)
        if row is None or row.owner != owner:
            raise NotFoundError(f"No {what} with id {row_id}.")
        return row

    def get_upload(self, owner: str, upload_id: str) -> UploadRow:
        row: UploadRow = self._owned(UploadRow, owner, upload_id, "upload")
        return row

    def list_uploads(self, owner: str, limit: int, offset: int) -> tuple[list[UploadRow], int]:
        query = select(UploadRow).where(UploadRow.owner == owner)
        return self._page(query.order_by(UploadRow.created_at.desc()), limit, offset)

    def _page(self, query: Any, limit: int, offset: int) -> tuple[list[Any], int]:
        """One page of ``query``'s rows and the total count."""
        with self.session() as s:
            total = s.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
            rows = s.scalars(query.limit(limit).offset(offset)).all()
        return list(rows), total or 0

    def delete_upload(self, owner: str, upload_id: str) -> None:
        """Remove an upload, its file and every analysis of it."""
        self.get_upload(owner, upload_id)
        with self.session() as s:
            ids = s.scalars(select(AnalysisRow.id).where(AnalysisRow.upload_id == upload_id)).all()
            s.execute(delete(SegmentRow).where(SegmentRow.analysis_id.in_(ids)))
            s.execute(delete(AnalysisRow).where(AnalysisRow.upload_id == upload_id))
            s.execute(delete(UploadRow).where(UploadRow.id == upload_id))
        for analysis_id in ids:
            shutil.rmtree(self.artefact_dir(analysis_id), ignore_errors=True)
        self.upload_path(upload_id).unlink(missing_ok=True)

    # --- analyses (API side) --------------------------------------------------------------

    def create_analysis(
        self, owner: str, upload_id: str, options: dict[str, Any], callback_url: str | None
    ) -> AnalysisRow:
        self.get_upload(owner, upload_id)
        row = AnalysisRow(
            id=new_id(),
            owner=owner,
            upload_id=upload_id,
            status="queued",
            progress=0.0,
            stage="queued",
            options=options,
            attempt=0,
            callback_url=callback_url,
        )
        with self.session() as s:
            s.add(row)
        return row

    def get_analysis(self, owner: str, analysis_id: str) -> AnalysisRow:
        row: AnalysisRow = self._owned(AnalysisRow, owner, analysis_id, "analysis")
        return row

    def list_analyses(
        self, owner: str, limit: int, offset: int, status: str | None = None
    ) -> tuple[list[AnalysisRow], int]:
        query = select(AnalysisRow).where(AnalysisRow.owner == owner)
        if status is not None:
            query = query.where(AnalysisRow.status == status)
        return self._page(query.order_by(AnalysisRow.created_at.desc()), limit, offset)

    def segments(self, analysis_id: str) -> list[dict[str, Any]]:
        """Segment results stored so far by the attempt that holds the job, in order."""
        with self.session() as s:
            attempt = s.scalar(select(AnalysisRow.attempt).where(AnalysisRow.id == analysis_id))
            rows = s.scalars(
                select(SegmentRow)
                .where(SegmentRow.analysis_id == analysis_id, SegmentRow.attempt == attempt)
                .order_by(SegmentRow.idx)
            ).all()
        return [r.data for r in rows]

    def delete_analysis(self, owner: str, analysis_id: str) -> None:
        """Cancel the job if it has not finished and remove its results and files.

        The row stays as a ``cancelled`` record (no transcript, no result); a worker still
        running the job notices at its next write and stops.
        """
        self.get_analysis(owner, analysis_id)
        with self.session() as s:
            # Cancel first: the row lock (PostgreSQL) or write lock (SQLite) then orders this
            # against a worker's fenced segment write, so no segment slips in after the delete.
            s.execute(
                update(AnalysisRow)
                .where(AnalysisRow.id == analysis_id)
                .values(
                    status="cancelled",
                    stage="cancelled",
                    result=None,
                    callback_url=None,
                    finished_at=utcnow(),
                )
            )
            s.execute(delete(SegmentRow).where(SegmentRow.analysis_id == analysis_id))
        shutil.rmtree(self.artefact_dir(analysis_id), ignore_errors=True)

    def artefact_dir(self, analysis_id: str) -> Path:
        """The folder of all of an analysis' exports and figures (one sub-folder per delivery)."""
        return self.settings.artefacts_dir / analysis_id

    def result_dir(self, analysis_id: str, attempt: int) -> Path:
        """The exports of delivery ``attempt``; served only once that delivery completed the job."""
        return self.artefact_dir(analysis_id) / f"attempt-{attempt}"

    def work_dir(self, analysis_id: str, attempt: int) -> Path:
        """Scratch space of one delivery; :meth:`complete` moves its exports to ``result_dir``."""
        return self.settings.artefacts_dir / f"{analysis_id}.attempt-{attempt}"

    # --- analyses (worker side, fenced by attempt) ----------------------------------------

    def claim(self, analysis_id: str, attempt: int, worker: str) -> AnalysisRow | None:
        """Take a queued job for delivery ``attempt``; ``None`` when it is not this delivery's.

        A job is claimable when it is queued with this attempt number. Anything else (finished,
        deleted, held by a newer delivery, running under a live worker) is skipped, so a
        redelivered message never runs a job twice at once.
        """
        now = utcnow()
        with self.session() as s:
            done = s.execute(
                update(AnalysisRow)
                .where(
                    AnalysisRow.id == analysis_id,
                    AnalysisRow.attempt == attempt,
                    AnalysisRow.status == "queued",
                )
                .values(
                    status="running",
                    worker=worker,
                    heartbeat_at=now,
                    started_at=now,
                    stage="starting",
                    progress=0.0,
                )
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                return None
            s.execute(
                delete(SegmentRow).where(
                    SegmentRow.analysis_id == analysis_id, SegmentRow.attempt != attempt
                )
            )
            return s.get(AnalysisRow, analysis_id)

    @staticmethod
    def _fence(s: Session, analysis_id: str, attempt: int, **values: Any) -> bool:
        """Update the job row if delivery ``attempt`` still holds it (running), inside ``s``.

        The update locks the row (PostgreSQL) or the database (SQLite) until ``s`` commits, so
        further writes in the same transaction cannot race a requeue or a cancellation.
        """
        done = s.execute(
            update(AnalysisRow)
            .where(
                AnalysisRow.id == analysis_id,
                AnalysisRow.attempt == attempt,
                AnalysisRow.status == "running",
            )
            .values(**values)
        )
        return bool(done.rowcount == 1)  # type: ignore[attr-defined]

    def _fenced(self, analysis_id: str, attempt: int, **values: Any) -> bool:
        with self.session() as s:
            return self._fence(s, analysis_id, attempt, **values)

    def heartbeat(
        self,
        analysis_id: str,
        attempt: int,
        progress: float | None = None,
        stage: str | None = None,
    ) -> bool:
        """Record that the job is alive (and its progress); ``False`` if the job was lost."""
        values: dict[str, Any] = {"heartbeat_at": utcnow()}
        if progress is not None:
            values["progress"] = round(progress, 1)
        if stage is not None:
            values["stage"] = stage[:200]
        return self._fenced(analysis_id, attempt, **values)

    def add_segment(self, analysis_id: str, attempt: int, idx: int, data: dict[str, Any]) -> bool:
        """Store a finished segment; ``False`` (nothing written) when ``attempt`` lost the job."""
        with self.session() as s:
            if not self._fence(s, analysis_id, attempt, heartbeat_at=utcnow()):
                return False
            s.merge(SegmentRow(analysis_id=analysis_id, idx=idx, attempt=attempt, data=data))
            return True

    def complete(
        self,
        analysis_id: str,
        attempt: int,
        result: dict[str, Any],
        exports: Path | None = None,
    ) -> bool:
        """Store the result, and the folder ``exports`` as the job's files, once.

        The folder becomes :meth:`result_dir` of this attempt, which the API serves only after
        the fenced update below marks the job completed by this attempt. Returns ``False`` when
        another delivery owns (or finished) the job or it was cancelled; then the folder is
        removed and no file of this call stays behind.
        """
        target = self.result_dir(analysis_id, attempt)
        if exports is not None:
            if target.exists():  # this attempt completed before: a repeated call keeps its files
                shutil.rmtree(exports, ignore_errors=True)
                return False
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                exports.rename(target)
            except FileNotFoundError:
                # The analysis folder vanished between mkdir and rename: a DELETE, which cancels
                # the job before it removes files, so the fence below would fail anyway.
                shutil.rmtree(exports, ignore_errors=True)
                return False
        done = self._fenced(
            analysis_id,
            attempt,
            status="completed",
            progress=100.0,
            stage="completed",
            result=result,
            finished_at=utcnow(),
        )
        if not done and exports is not None:
            self._discard(analysis_id, attempt)
        return done

    def _discard(self, analysis_id: str, attempt: int) -> None:
        """Remove the files of a delivery that lost its job, and the analysis folder if empty."""
        shutil.rmtree(self.result_dir(analysis_id, attempt), ignore_errors=True)
        # Absent, or it holds the files of the delivery that completed: leave it.
        with contextlib.suppress(OSError):
            self.artefact_dir(analysis_id).rmdir()

    def fail(self, analysis_id: str, attempt: int, code: str, message: str) -> bool:
        return self._fenced(
            analysis_id,
            attempt,
            status="failed",
            stage="failed",
            error_code=code,
            error_message=message,
            finished_at=utcnow(),
        )

    def set_callback_status(self, analysis_id: str, status: str) -> None:
        with self.session() as s:
            s.execute(
                update(AnalysisRow)
                .where(AnalysisRow.id == analysis_id)
                .values(callback_status=status[:200])
            )

    def requeue(self, analysis_id: str, attempt: int, reason: str) -> int | None:
        """Hand a job to a new delivery; returns the new attempt, or ``None`` if it moved on.

        After ``max_attempts`` deliveries the job fails instead of being requeued.
        """
        with self.session() as s:
            row = s.get(AnalysisRow, analysis_id)
            if row is None or row.attempt != attempt or row.status not in ACTIVE:
                return None
            if attempt + 1 >= self.settings.max_attempts:
                row.status, row.stage = "failed", "failed"
                row.error_code = "WORKER_LOST"
                row.error_message = (
                    f"The job was interrupted {attempt + 1} times ({reason}); giving up."
                )
                row.finished_at = utcnow()
                return None
            row.attempt, row.status, row.stage, row.progress = attempt + 1, "queued", reason, 0.0
            row.worker, row.queued_at = None, utcnow()
        # The lost delivery's unfinished files.
        shutil.rmtree(self.work_dir(analysis_id, attempt), ignore_errors=True)
        self._discard(analysis_id, attempt)
        return attempt + 1

    def stalled(self) -> list[tuple[str, int]]:
        """Running jobs whose worker stopped sending heartbeats (killed or hung)."""
        cutoff = utcnow() - timedelta(seconds=self.settings.stale_after_s)
        with self.session() as s:
            rows = s.execute(
                select(AnalysisRow.id, AnalysisRow.attempt).where(
                    AnalysisRow.status == "running", AnalysisRow.heartbeat_at < cutoff
                )
            ).all()
        return [(r[0], r[1]) for r in rows]

    def orphaned(self, older_than: datetime) -> list[tuple[str, int]]:
        """Queued jobs not picked up since ``older_than`` (their message may have been lost)."""
        with self.session() as s:
            rows = s.execute(
                select(AnalysisRow.id, AnalysisRow.attempt).where(
                    AnalysisRow.status == "queued",
                    AnalysisRow.queued_at < older_than,
                )
            ).all()
        return [(r[0], r[1]) for r in rows]

    # --- API keys -------------------------------------------------------------------------

    def create_key(self, name: str) -> NewKey:
        secret = "ev_" + secrets.token_urlsafe(32)
        row = ApiKeyRow(id=new_id(), name=name, prefix=secret[:10], key_hash=hash_key(secret))
        with self.session() as s:
            s.add(row)
        return NewKey(id=row.id, name=name, secret=secret)

    def list_keys(self) -> list[ApiKeyRow]:
        with self.session() as s:
            return list(s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at)).all())

    def revoke_key(self, key_id: str) -> None:
        with self.session() as s:
            row = s.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFoundError(f"No API key with id {key_id}.")
            row.revoked_at = row.revoked_at or utcnow()

    def key_owner(self, secret: str) -> str | None:
        """The id of the active key ``secret``, or ``None``."""
        with self.session() as s:
            row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_key(secret)))
        if row is None or row.revoked_at is not None:
            return None
        return row.id
