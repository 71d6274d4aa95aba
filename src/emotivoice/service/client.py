"""Deprecated alias of :mod:`emotivoice.client.stream`; it goes in the next release."""

from __future__ import annotations

import warnings

from emotivoice.client.stream import (
    DEFAULT_URL,
    MicrophoneUnavailableError,
    StreamClient,
    StreamSession,
)

__all__ = ["DEFAULT_URL", "MicrophoneUnavailableError", "StreamClient", "StreamSession"]

warnings.warn(
    "emotivoice.service.client moved to emotivoice.client.stream",
    DeprecationWarning,
    stacklevel=2,
)
