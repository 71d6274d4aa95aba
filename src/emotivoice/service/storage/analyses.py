"""Analyses as clients see them: queue one, read, list, cancel, and find its result folder."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from emotivoice.service.db import AnalysisRow, SegmentRow, UploadRow, utcnow
from emotivoice.service.errors import NotFoundError, NotReadyError
from emotivoice.service.storage.base import ACTIVE, StoreBase, new_id

__all__ = ["AnalysisStore"]


class AnalysisStore(StoreBase):
    """The API side of analyses; every call is scoped by ``owner``."""

    def create_analysis(
        self, owner: str, upload_id: str, options: dict[str, Any], callback_url: str | None
    ) -> AnalysisRow:
        self._owned(UploadRow, owner, upload_id, "upload")  # the owner's upload, or not found
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

    def active_jobs(self, owner: str) -> int:
        """How many of ``owner``'s analyses are queued or running."""
        with self.session() as s:
            count = s.scalar(
                select(func.count())
                .select_from(AnalysisRow)
                .where(AnalysisRow.owner == owner, AnalysisRow.status.in_(ACTIVE))
            )
        return int(count or 0)

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
        with self.read_session() as s:
            attempt = s.scalar(select(AnalysisRow.attempt).where(AnalysisRow.id == analysis_id))
            return self._segments(s, analysis_id, attempt)

    def status(self, owner: str, analysis_id: str) -> tuple[AnalysisRow, list[dict[str, Any]]]:
        """The owner's analysis and the segments its current attempt stored so far, in order:
        what a status request answers, read in two statements on one connection.

        Raises:
            NotFoundError: no such analysis of this owner.
        """
        with self.read_session() as s:
            row = s.get(AnalysisRow, analysis_id)
            if row is None or row.owner != owner:
                raise NotFoundError(f"No analysis with id {analysis_id}.")
            return row, self._segments(s, analysis_id, row.attempt)

    @staticmethod
    def _segments(s: Session, analysis_id: str, attempt: int | None) -> list[dict[str, Any]]:
        rows = s.scalars(
            select(SegmentRow.data)
            .where(SegmentRow.analysis_id == analysis_id, SegmentRow.attempt == attempt)
            .order_by(SegmentRow.idx)
        ).all()
        return list(rows)

    def completed_dir(self, owner: str, analysis_id: str) -> Path:
        """The result folder (exports, ``explain/``) of the owner's completed analysis.

        Raises:
            NotFoundError: no such analysis of this owner.
            NotReadyError: the analysis has not completed (queued, running, failed, cancelled).
        """
        row = self.get_analysis(owner, analysis_id)
        if row.status != "completed":
            raise NotReadyError(f"Analysis {analysis_id} is {row.status}, not completed.")
        return self.result_dir(analysis_id, row.attempt)

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
