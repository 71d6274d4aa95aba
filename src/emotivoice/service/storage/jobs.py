"""The worker side of analyses: every write is fenced by the delivery's ``attempt``.

Only the delivery that currently holds a job may write its progress, segments, result and files,
which makes result writes idempotent when a job is redelivered. The janitor's queries (stalled and
orphaned jobs) and :meth:`JobStore.requeue` hand a job to a new delivery.
"""

from __future__ import annotations

import contextlib
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from emotivoice.service.db import AnalysisRow, SegmentRow, WorkerRow, utcnow
from emotivoice.service.storage.base import ACTIVE, StoreBase

__all__ = ["JobStore"]


class JobStore(StoreBase):
    """Claim, heartbeat, segment, complete and fail a job; requeue lost ones."""

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

    # --- the janitor's side ---------------------------------------------------------------

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

    def resend(self, analysis_id: str, attempt: int) -> bool:
        """Mark a queued job's message as sent again now; ``False`` if it is no longer queued.

        The attempt stays the same: the claim lets one delivery run it, duplicates are skipped,
        and a job waiting behind a long queue is not failed for it.
        """
        with self.session() as s:
            done = s.execute(
                update(AnalysisRow)
                .where(
                    AnalysisRow.id == analysis_id,
                    AnalysisRow.attempt == attempt,
                    AnalysisRow.status == "queued",
                )
                .values(queued_at=utcnow())
            )
            return bool(done.rowcount == 1)  # type: ignore[attr-defined]

    # --- worker liveness ------------------------------------------------------------------

    def worker_alive(self, worker: str) -> None:
        """Record that ``worker`` is alive now."""
        with self.session() as s:
            s.merge(WorkerRow(id=worker[:200], seen_at=utcnow()))

    def worker_gone(self, worker: str) -> None:
        with self.session() as s:
            s.execute(delete(WorkerRow).where(WorkerRow.id == worker[:200]))

    def live_workers(self, within_s: float) -> int:
        """Workers seen in the last ``within_s`` seconds."""
        cutoff = utcnow() - timedelta(seconds=within_s)
        with self.session() as s:
            rows = s.scalars(select(WorkerRow.id).where(WorkerRow.seen_at >= cutoff)).all()
        return len(rows)
