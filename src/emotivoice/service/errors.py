"""The one place where engine and service errors become HTTP statuses.

The API's error code is the error's own :attr:`~emotivoice.errors.EmotiVoiceError.code` (one
vocabulary for the library, the CLI and the service); this module adds only the status.
"""

from __future__ import annotations

from emotivoice.errors import (
    AudioError,
    AudioTooLongError,
    CallbacksNotConfiguredError,
    EmotiVoiceError,
    EmptyAudioError,
    FileTooLargeError,
    InvalidConfigError,
    InvalidResultError,
    ModelIntegrityError,
    ModelNotFoundError,
    NotFoundError,
    NotReadyError,
    RateLimitedError,
    StreamFrameTooLargeError,
    StreamProtocolError,
    StreamTooLongError,
    UnauthorizedError,
    UnsupportedFormatError,
)

__all__ = ["api_error"]

# Most specific class first: the first isinstance match wins.
_STATUS: tuple[tuple[type[EmotiVoiceError], int], ...] = (
    (FileTooLargeError, 413),
    (StreamFrameTooLargeError, 413),
    (StreamTooLongError, 413),
    (StreamProtocolError, 400),
    (UnsupportedFormatError, 415),
    (EmptyAudioError, 422),
    (AudioTooLongError, 422),
    (AudioError, 422),
    (NotFoundError, 404),
    (NotReadyError, 409),
    (UnauthorizedError, 401),
    (RateLimitedError, 429),
    (ModelNotFoundError, 422),
    (ModelIntegrityError, 500),
    (InvalidResultError, 500),
    (CallbacksNotConfiguredError, 422),
    (InvalidConfigError, 422),
)


def api_error(error: EmotiVoiceError) -> tuple[int, str]:
    """The HTTP status and stable upper-case code of an EmotiVoice error."""
    for cls, status in _STATUS:
        if isinstance(error, cls):
            return status, error.code
    return 500, error.code
