"""API keys: created with a random secret that is shown once and stored only hashed."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from emotivoice.service.db import ApiKeyRow, utcnow
from emotivoice.service.errors import NotFoundError
from emotivoice.service.storage.base import StoreBase, new_id

__all__ = ["KeyStore", "NewKey", "hash_key"]


def hash_key(secret: str) -> str:
    """SHA-256 of an API key (keys are 256-bit random, so a fast hash is safe)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NewKey:
    """A freshly created API key; ``secret`` is shown once and stored only hashed."""

    id: str
    name: str
    secret: str


class KeyStore(StoreBase):
    """Create, list and revoke API keys; find the key a secret belongs to."""

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
        """The id of the active key ``secret``, or ``None`` (read on every request with a key,
        so without a transaction around it: see :meth:`read_session`)."""
        with self.read_session() as s:
            row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_key(secret)))
        if row is None or row.revoked_at is not None:
            return None
        return row.id

    def key_active(self, key_id: str) -> bool:
        """Whether the key with id ``key_id`` exists and has not been revoked."""
        with self.read_session() as s:
            row = s.get(ApiKeyRow, key_id)
        return row is not None and row.revoked_at is None
