"""Wake-word training jobs: their rows (phrase, progress, metrics, result) and run folders.

A job runs in a worker process (:mod:`emotivoice.service.wakeword_runner`); its writes are
fenced by its status: once a job is cancelled or deleted, the worker's next progress write
fails and it stops. A job has one delivery: a worker that dies leaves it running without a
heartbeat, and the janitor marks it failed (``WORKER_LOST``) rather than training again.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update

from emotivoice.service.db import WakeWordJobRow, utcnow
from emotivoice.service.storage.base import ACTIVE, StoreBase, new_id

__all__ = ["WakeWordStore"]

#: The folders of a job's run folder
DATA_FOLDER, RUN_FOLDER, EVALUATION_FOLDER, SAMPLES_FOLDER = "data", "run", "evaluation", "samples"


class WakeWordStore(StoreBase):
    """Create, list, fetch and delete wake-word jobs; the worker's fenced writes."""

    def wakeword_dir(self, job_id: str) -> Path:
        """The job's run folder: ``data/``, ``run/``, ``evaluation/`` and ``samples/``."""
        return self.settings.wakeword_dir / job_id

    def create_wakeword_job(
        self, owner: str, phrase: str, options: dict[str, Any]
    ) -> WakeWordJobRow:
        row = WakeWordJobRow(
            id=new_id(),
            owner=owner,
            phrase=phrase,
            status="queued",
            progress=0.0,
            stage="queued",
            metrics={},
            options=options,
        )
        with self.session() as s:
            s.add(row)
        return row

    def get_wakeword_job(self, owner: str, job_id: str) -> WakeWordJobRow:
        """The job ``job_id`` of ``owner``.

        Raises:
            NotFoundError: no such job, or another owner's.
        """
        row: WakeWordJobRow = self._owned(WakeWordJobRow, owner, job_id, "wake-word job")
        return row

    def list_wakeword_jobs(
        self, owner: str, limit: int, offset: int
    ) -> tuple[list[WakeWordJobRow], int]:
        query = (
            select(WakeWordJobRow)
            .where(WakeWordJobRow.owner == owner)
            .order_by(WakeWordJobRow.created_at.desc(), WakeWordJobRow.id)
        )
        return self._page(query, limit, offset)

    def active_wakeword_jobs(self, owner: str) -> int:
        with self.session() as s:
            count = s.scalar(
                select(func.count()).where(
                    WakeWordJobRow.owner == owner, WakeWordJobRow.status.in_(ACTIVE)
                )
            )
        return int(count or 0)

    def delete_wakeword_job(self, owner: str, job_id: str) -> None:
        """Cancel the job (its worker stops at its next progress report) and remove it."""
        self.get_wakeword_job(owner, job_id)
        with self.session() as s:
            s.execute(delete(WakeWordJobRow).where(WakeWordJobRow.id == job_id))
        shutil.rmtree(self.wakeword_dir(job_id), ignore_errors=True)

    def wakeword_model(self, owner: str, job_id: str) -> Path | None:
        """The float ONNX model of ``owner``'s completed job ``job_id``, if there is one."""
        with self.session() as s:
            row = s.get(WakeWordJobRow, job_id)
        if row is None or row.owner != owner or row.status != "completed":
            return None
        path = self.wakeword_dir(job_id) / RUN_FOLDER / "model.onnx"
        return path if path.is_file() else None

    # --- the worker's side ----------------------------------------------------------------

    def claim_wakeword(self, job_id: str, worker: str) -> WakeWordJobRow | None:
        """Take a queued job; ``None`` when it is not queued (done, deleted, already taken)."""
        now = utcnow()
        with self.session() as s:
            done = s.execute(
                update(WakeWordJobRow)
                .where(WakeWordJobRow.id == job_id, WakeWordJobRow.status == "queued")
                .values(
                    status="running",
                    worker=worker,
                    heartbeat_at=now,
                    started_at=now,
                    stage="starting",
                )
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                return None
            return s.get(WakeWordJobRow, job_id)

    def _wakeword_fenced(self, job_id: str, **values: Any) -> bool:
        with self.session() as s:
            done = s.execute(
                update(WakeWordJobRow)
                .where(WakeWordJobRow.id == job_id, WakeWordJobRow.status == "running")
                .values(heartbeat_at=utcnow(), **values)
            )
            return bool(done.rowcount == 1)  # type: ignore[attr-defined]

    def wakeword_progress(
        self,
        job_id: str,
        progress: float | None = None,
        stage: str | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> bool:
        """Record the job's heartbeat and progress; ``False`` once it was cancelled or deleted."""
        values: dict[str, Any] = {}
        if progress is not None:
            values["progress"] = round(progress, 1)
        if stage is not None:
            values["stage"] = stage[:200]
        if metrics is not None:
            values["metrics"] = metrics
        return self._wakeword_fenced(job_id, **values)

    def complete_wakeword(self, job_id: str, result: dict[str, Any]) -> bool:
        return self._wakeword_fenced(
            job_id,
            status="completed",
            progress=100.0,
            stage="completed",
            result=result,
            finished_at=utcnow(),
        )

    def fail_wakeword(self, job_id: str, code: str, message: str) -> bool:
        return self._wakeword_fenced(
            job_id,
            status="failed",
            stage="failed",
            error_code=code,
            error_message=message,
            finished_at=utcnow(),
        )

    def fail_stalled_wakeword(self) -> int:
        """Mark running jobs whose worker stopped sending heartbeats failed; how many."""
        cutoff = utcnow() - timedelta(seconds=self.settings.stale_after_s)
        with self.session() as s:
            done = s.execute(
                update(WakeWordJobRow)
                .where(WakeWordJobRow.status == "running", WakeWordJobRow.heartbeat_at < cutoff)
                .values(
                    status="failed",
                    stage="failed",
                    error_code="WORKER_LOST",
                    error_message="The worker training this model stopped responding; "
                    "start the job again.",
                    finished_at=utcnow(),
                )
            )
            return int(done.rowcount)  # type: ignore[attr-defined]
