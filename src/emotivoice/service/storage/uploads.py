"""Uploaded recordings: checked to be decodable audio, stored under a generated id.

An upload is checked without decoding all of it (:func:`~emotivoice.audio.probe_audio`: the
header, the first seconds decoded, the rest only counted), so the API process' memory stays flat
whatever the recording's length; the worker decodes it fully.
"""

from __future__ import annotations

import logging
import shutil
import time
import unicodedata
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO

from sqlalchemy import delete, func, select

from emotivoice.audio import probe_audio, sniff_format
from emotivoice.errors import EmptyAudioError, UnsupportedFormatError
from emotivoice.service.db import AnalysisRow, SegmentRow, UploadRow
from emotivoice.service.errors import FileTooLargeError, StorageQuotaExceededError
from emotivoice.service.storage.base import StoreBase, new_id

__all__ = ["PARTIAL_SUFFIX", "UploadStore", "display_name"]

logger = logging.getLogger(__name__)

_CHUNK = 1024 * 1024
_SNIFF_BYTES = 64
_MAX_NAME = 200  # characters of a stored display name
_MAX_EXTENSION = 16
_PATH_CHARS = frozenset('/\\:*?"<>|')
PARTIAL_SUFFIX = ".part"


def display_name(filename: str | None) -> str:
    """A client file name made a harmless, readable label (never used as a path).

    Unicode stays readable (NFC); path parts, path characters, control and format characters
    go; a name cut to 200 characters keeps its extension.
    """
    raw = unicodedata.normalize("NFC", filename or "")
    name = PureWindowsPath(PurePosixPath(raw).name).name
    kept = "".join(
        "_" if c in _PATH_CHARS else c
        for c in name
        if unicodedata.category(c)[0] != "C"  # control, format, surrogate, unassigned
    ).strip(" .")
    if len(kept) > _MAX_NAME:
        stem, dot, extension = kept.rpartition(".")
        if dot and stem and 0 < len(extension) <= _MAX_EXTENSION:
            kept = stem[: _MAX_NAME - len(extension) - 1] + "." + extension
        else:
            kept = kept[:_MAX_NAME]
    return kept or "upload"


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
        partial = target.with_suffix(PARTIAL_SUFFIX)
        name = display_name(filename)
        try:
            size, head = self._write_limited(data, partial)
            if size == 0:
                raise EmptyAudioError(f"{name} is empty (0 bytes).")
            kind = sniff_format(head)
            if kind is None:
                raise UnsupportedFormatError(
                    f"{name} is not an audio file EmotiVoice can read (judged from its content); "
                    "send WAV, FLAC, MP3, Ogg/Opus, M4A/AAC, WebM or AIFF."
                )
            self._check_quota(owner, size)
            info = probe_audio(
                partial,
                name=name,  # errors name the user's file, never the server's temporary one
                max_duration=self.settings.max_duration_s,
                decode_seconds=self.settings.upload_probe_s,
            )
            partial.rename(target)
        finally:
            partial.unlink(missing_ok=True)
        row = UploadRow(
            id=upload_id,
            owner=owner,
            filename=name,
            format=info.format or kind,
            codec=info.codec,
            sample_rate=info.sample_rate,
            channels=info.channels,
            duration=round(info.duration, 3),
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

    def _check_quota(self, owner: str, size: int) -> None:
        """Refuse an upload that would take ``owner`` over ``max_stored_mb``."""
        quota_mb = self.settings.max_stored_mb
        if quota_mb <= 0:
            return
        if self.stored_bytes(owner) + size > quota_mb * 1024 * 1024:
            raise StorageQuotaExceededError(
                f"This key has stored its quota of {quota_mb:g} MB of audio; delete uploads "
                "(DELETE /uploads/{id}) to make room."
            )

    def stored_bytes(self, owner: str) -> int:
        """Bytes of audio ``owner`` has stored."""
        with self.session() as s:
            total = s.scalar(
                select(func.coalesce(func.sum(UploadRow.size_bytes), 0)).where(
                    UploadRow.owner == owner
                )
            )
        return int(total or 0)

    def remove_stale_partials(self, older_than_s: float) -> int:
        """Delete upload files left half-written (a process killed while storing one)."""
        cutoff = time.time() - older_than_s
        removed = 0
        for partial in self.settings.uploads_dir.glob(f"*{PARTIAL_SUFFIX}"):
            try:
                if partial.stat().st_mtime < cutoff:
                    partial.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # finished or removed meanwhile
        if removed:
            logger.warning("Removed %d half-written upload file(s)", removed)
        return removed

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
