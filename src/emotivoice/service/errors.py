"""The one place where engine and service errors become HTTP statuses and stable API codes."""

from __future__ import annotations

from emotivoice.errors import (
    AudioDecodeError,
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
_TABLE: tuple[tuple[type[EmotiVoiceError], int, str], ...] = (
    (FileTooLargeError, 413, "FILE_TOO_LARGE"),
    (StreamFrameTooLargeError, 413, "FRAME_TOO_LARGE"),
    (StreamTooLongError, 413, "STREAM_TOO_LONG"),
    (StreamProtocolError, 400, "PROTOCOL_ERROR"),
    (UnsupportedFormatError, 415, "UNSUPPORTED_FORMAT"),
    (EmptyAudioError, 422, "EMPTY_AUDIO"),
    (AudioTooLongError, 422, "AUDIO_TOO_LONG"),
    (AudioDecodeError, 422, "INVALID_AUDIO"),
    (AudioError, 422, "INVALID_AUDIO"),
    (NotFoundError, 404, "NOT_FOUND"),
    (NotReadyError, 409, "NOT_READY"),
    (UnauthorizedError, 401, "UNAUTHORIZED"),
    (RateLimitedError, 429, "RATE_LIMITED"),
    (ModelNotFoundError, 422, "MODEL_NOT_FOUND"),
    (ModelIntegrityError, 500, "MODEL_INTEGRITY"),
    (InvalidResultError, 500, "RESULT_UNREADABLE"),
    (CallbacksNotConfiguredError, 422, "CALLBACKS_NOT_CONFIGURED"),
    (InvalidConfigError, 422, "INVALID_OPTIONS"),
)


def api_error(error: EmotiVoiceError) -> tuple[int, str]:
    """The HTTP status and stable upper-case code of an EmotiVoice error."""
    for cls, status, code in _TABLE:
        if isinstance(error, cls):
            return status, code
    return 500, "INTERNAL_ERROR"
