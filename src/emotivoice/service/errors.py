"""The one place where engine and service errors become HTTP statuses.

The API's error code is the error's own :attr:`~emotivoice.errors.EmotiVoiceError.code` (one
vocabulary for the library, the CLI and the service); this module adds only the status.
"""

from __future__ import annotations

from emotivoice.errors import (
    AudioError,
    AudioTooLongError,
    EmotiVoiceError,
    EmptyAudioError,
    InvalidConfigError,
    InvalidResultError,
    MissingExtraError,
    ModelIntegrityError,
    ModelNotFoundError,
    StreamFrameTooLargeError,
    StreamProtocolError,
    StreamTooLongError,
    UnsupportedFormatError,
)

__all__ = [
    "CallbacksNotConfiguredError",
    "FileTooLargeError",
    "NotFoundError",
    "NotReadyError",
    "RateLimitedError",
    "UnauthorizedError",
    "api_error",
]

# Errors only the service raises (the engine never sees an HTTP request).


class NotFoundError(EmotiVoiceError):
    """A requested upload, analysis or artefact does not exist (or belongs to someone else)."""

    code = "NOT_FOUND"


class NotReadyError(EmotiVoiceError):
    """The requested result exists only once the analysis has completed."""

    code = "NOT_READY"


class UnauthorizedError(EmotiVoiceError):
    """A missing, unknown or revoked API key."""

    code = "UNAUTHORIZED"


class RateLimitedError(EmotiVoiceError):
    """Too many requests for one key in the current window."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CallbacksNotConfiguredError(InvalidConfigError):
    """A completion callback was asked for, but the server has no secret to sign it with."""

    code = "CALLBACKS_NOT_CONFIGURED"


class FileTooLargeError(AudioError):
    """An upload is larger than the configured limit."""

    code = "FILE_TOO_LARGE"


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
    (MissingExtraError, 422),  # the option asks for a part this server has not installed
)


def api_error(error: EmotiVoiceError) -> tuple[int, str]:
    """The HTTP status and stable upper-case code of an EmotiVoice error."""
    for cls, status in _STATUS:
        if isinstance(error, cls):
            return status, error.code
    return 500, error.code
