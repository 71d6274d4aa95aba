"""Deprecated alias of :mod:`emotivoice.client.rest`; it goes in the next release."""

from __future__ import annotations

import warnings

from emotivoice.client.rest import ServiceClient, ServiceError

__all__ = ["ServiceClient", "ServiceError"]

warnings.warn(
    "emotivoice.service.http_client moved to emotivoice.client.rest",
    DeprecationWarning,
    stacklevel=2,
)
