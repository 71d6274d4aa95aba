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
    StreamError,
    StreamFrameTooLargeError,
    StreamProtocolError,
    StreamTooLongError,
    UnsupportedFormatError,
)

__all__ = [
    "AssistantBusyError",
    "AssistantDisabledError",
    "CallbackRefusedError",
    "CallbacksNotConfiguredError",
    "FileTooLargeError",
    "ForbiddenError",
    "HostNotAllowedError",
    "NotFoundError",
    "NotReadyError",
    "QuotaExceededError",
    "RateLimitedError",
    "RequestTooLargeError",
    "StorageQuotaExceededError",
    "StreamIdleError",
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


class StreamIdleError(StreamError):
    """A live stream sent nothing for longer than the idle limit."""

    code = "STREAM_IDLE"


class RequestTooLargeError(EmotiVoiceError):
    """A JSON request body is larger than the limit for requests that are not uploads."""

    code = "REQUEST_TOO_LARGE"


class QuotaExceededError(EmotiVoiceError):
    """A key has as many jobs running or streams open as its quota allows (try again later)."""

    code = "QUOTA_EXCEEDED"

    def __init__(self, message: str, retry_after: float = 30.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageQuotaExceededError(EmotiVoiceError):
    """A key has stored as much audio as its quota allows (delete uploads to make room)."""

    code = "STORAGE_QUOTA_EXCEEDED"


class CallbackRefusedError(InvalidConfigError):
    """A callback URL points somewhere this server does not send notices (private, loopback,
    plain http, credentials in the URL)."""

    code = "CALLBACK_URL_REFUSED"


class ForbiddenError(EmotiVoiceError):
    """A request from a web page of another origin while API keys are off."""

    code = "ORIGIN_NOT_ALLOWED"


class HostNotAllowedError(EmotiVoiceError):
    """A request for a host name the server does not answer to while API keys are off."""

    code = "HOST_NOT_ALLOWED"


class AssistantBusyError(EmotiVoiceError):
    """The assistant's language model is in another conversation (one at a time per server
    process); try again when it ends."""

    code = "ASSISTANT_BUSY"


class AssistantDisabledError(EmotiVoiceError):
    """The server's settings turn the voice assistant off (``assistant_enabled``)."""

    code = "ASSISTANT_DISABLED"


# Most specific class first: the first isinstance match wins.
_STATUS: tuple[tuple[type[EmotiVoiceError], int], ...] = (
    (FileTooLargeError, 413),
    (AssistantBusyError, 503),
    (AssistantDisabledError, 403),
    (RequestTooLargeError, 413),
    (StorageQuotaExceededError, 413),
    (QuotaExceededError, 429),
    (ForbiddenError, 403),
    (HostNotAllowedError, 400),
    (CallbackRefusedError, 422),
    (StreamFrameTooLargeError, 413),
    (StreamTooLongError, 413),
    (StreamProtocolError, 400),
    (StreamIdleError, 408),
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
