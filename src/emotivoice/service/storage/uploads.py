"""Uploaded recordings: checked to be decodable audio, stored under a generated id."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import IO

from sqlalchemy import delete, select

from emotivoice.audio import load_audio, sniff_format
from emotivoice.errors import EmptyAudioError, UnsupportedFormatError
from emotivoice.service.db import AnalysisRow, SegmentRow, UploadRow
from emotivoice.service.errors import FileTooLargeError
from emotivoice.service.storage.base import StoreBase, new_id

__all__ = ["UploadStore", "display_name"]

logger = logging.getLogger(__name__)

_CHUNK = 1024 * 1024
_SNIFF_BYTES = 64
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


def display_name(filename: str | None) -> str:
    """A client file name reduced to a harmless label (never used as a path)."""
    name = Path(filename or "").name
    return _SAFE_NAME.sub("_", name)[:200] or "upload"


class UploadStore(StoreBase):
    """Uploads of an owner: create, read, list, delete (with every analysis of them)."""

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

    def get_upload(self, owner: str, upload_id: str) -> UploadRow:
        row: UploadRow = self._owned(UploadRow, owner, upload_id, "upload")
        return row

    def list_uploads(self, owner: str, limit: int, offset: int) -> tuple[list[UploadRow], int]:
        query = select(UploadRow).where(UploadRow.owner == owner)
        return self._page(query.order_by(UploadRow.created_at.desc()), limit, offset)

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
