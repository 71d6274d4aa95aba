"""What every part of the store shares: settings, database sessions and where files live."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from emotivoice.service.db import make_engine, migrate, session_factory
from emotivoice.service.errors import NotFoundError
from emotivoice.service.settings import Settings

__all__ = [
    "ACTIVE",
    "EXPLAIN_FOLDER",
    "FINISHED",
    "REPORT_FILE",
    "RESULT_STEM",
    "StoreBase",
    "new_id",
]

logger = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
FINISHED = ("completed", "failed", "cancelled")
# A completed analysis' result folder: RESULT_STEM.{json,csv,srt,vtt}, the PDF report and the
# explanation report's folder.
RESULT_STEM = "analysis"
REPORT_FILE = "report.pdf"
EXPLAIN_FOLDER = "explain"


def new_id() -> str:
    return uuid.uuid4().hex


class StoreBase:
    """Database and data directory of one service deployment (the parts all stores share)."""

    def __init__(self, settings: Settings, *, migrate_schema: bool = True) -> None:
        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True)
        settings.uploads_dir.mkdir(parents=True, exist_ok=True)
        settings.artefacts_dir.mkdir(parents=True, exist_ok=True)
        if migrate_schema:
            migrate(settings.db_url)
        self.engine = make_engine(settings.db_url)
        self._sessions = session_factory(self.engine)
        self._reads = session_factory(self.engine.execution_options(isolation_level="AUTOCOMMIT"))

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for reads that need no transaction (each statement sees what was
        committed when it ran, as READ COMMITTED does inside one).

        Without BEGIN and COMMIT a status request is three round trips to PostgreSQL instead
        of nine; on a loaded machine each round trip is a wait for the database process and
        then for the API thread to get a core again, and those waits made the status tail.
        """
        with self._reads() as session:
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

    def _owned(self, model: type[Any], owner: str, row_id: str, what: str) -> Any:
        """The row ``row_id`` of ``model`` if ``owner`` owns it; another owner's is not found."""
        with self.read_session() as s:
            row = s.get(model, row_id)
        if row is None or row.owner != owner:
            raise NotFoundError(f"No {what} with id {row_id}.")
        return row

    def _page(self, query: Any, limit: int, offset: int) -> tuple[list[Any], int]:
        """One page of ``query``'s rows and the total count."""
        with self.session() as s:
            total = s.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
            rows = s.scalars(query.limit(limit).offset(offset)).all()
        return list(rows), total or 0

    # --- where files live ----------------------------------------------------------------

    def upload_path(self, upload_id: str) -> Path:
        return self.settings.uploads_dir / upload_id

    def artefact_dir(self, analysis_id: str) -> Path:
        """The folder of all of an analysis' exports and figures (one sub-folder per delivery)."""
        return self.settings.artefacts_dir / analysis_id

    def result_dir(self, analysis_id: str, attempt: int) -> Path:
        """The exports of delivery ``attempt``; served only once that delivery completed the job."""
        return self.artefact_dir(analysis_id) / f"attempt-{attempt}"

    def work_dir(self, analysis_id: str, attempt: int) -> Path:
        """Scratch space of one delivery; :meth:`complete` moves its exports to ``result_dir``."""
        return self.settings.artefacts_dir / f"{analysis_id}.attempt-{attempt}"
