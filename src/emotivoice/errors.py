"""The EmotiVoice error hierarchy.

Every error the engine raises on purpose derives from :class:`EmotiVoiceError` and carries a
stable machine-readable ``code`` (used as the error code over HTTP and in CLI reports) and a
message written for the person who supplied the input.
"""

from __future__ import annotations

__all__ = [
    "AudioDecodeError",
    "AudioError",
    "AudioTooLongError",
    "CallbacksNotConfiguredError",
    "EmotiVoiceError",
    "EmptyAudioError",
    "FileTooLargeError",
    "InvalidConfigError",
    "InvalidResultError",
    "InvalidTargetError",
    "MicrophoneUnavailableError",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "NotFoundError",
    "NotReadyError",
    "RateLimitedError",
    "StreamError",
    "StreamFrameTooLargeError",
    "StreamProtocolError",
    "StreamTooLongError",
    "UnauthorizedError",
    "UnsupportedFormatError",
]


class EmotiVoiceError(Exception):
    """Base class of every error EmotiVoice raises deliberately."""

    code: str = "emotivoice_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        """The error as a small JSON-ready mapping ``{"code", "message"}``."""
        return {"code": self.code, "message": self.message}


class AudioError(EmotiVoiceError):
    """The input audio cannot be analysed."""

    code = "audio_error"


class AudioDecodeError(AudioError):
    """The input is not decodable audio: not audio at all, truncated or corrupt."""

    code = "audio_decode_error"


class UnsupportedFormatError(AudioDecodeError):
    """The input is a container or codec EmotiVoice does not read."""

    code = "unsupported_format"


class EmptyAudioError(AudioError):
    """The input is an empty file or decodes to zero samples."""

    code = "empty_audio"


class AudioTooLongError(AudioError):
    """The input is longer than the configured maximum duration."""

    code = "audio_too_long"


class ModelNotFoundError(EmotiVoiceError):
    """A model name or path does not resolve to usable weights."""

    code = "model_not_found"


class ModelIntegrityError(EmotiVoiceError):
    """Model weights exist but fail their checksum."""

    code = "model_integrity_error"


class InvalidConfigError(EmotiVoiceError):
    """Options or a configuration file are invalid."""

    code = "invalid_config"


class CallbacksNotConfiguredError(InvalidConfigError):
    """A completion callback was asked for, but the server has no secret to sign it with."""

    code = "callbacks_not_configured"


class FileTooLargeError(AudioError):
    """An upload is larger than the configured limit."""

    code = "file_too_large"


class NotFoundError(EmotiVoiceError):
    """A requested upload, analysis or artefact does not exist (or belongs to someone else)."""

    code = "not_found"


class NotReadyError(EmotiVoiceError):
    """The requested result exists only once the analysis has completed."""

    code = "not_ready"


class UnauthorizedError(EmotiVoiceError):
    """A missing, unknown or revoked API key."""

    code = "unauthorized"


class RateLimitedError(EmotiVoiceError):
    """Too many requests for one key in the current window."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StreamError(EmotiVoiceError):
    """A live stream cannot go on."""

    code = "stream_error"


class StreamProtocolError(StreamError):
    """A stream message is malformed or arrives out of order (e.g. audio before ``start``)."""

    code = "protocol_error"


class StreamTooLongError(StreamError):
    """A stream ran past its maximum session length."""

    code = "stream_too_long"


class StreamFrameTooLargeError(StreamError):
    """One audio frame of a stream is larger than the accepted maximum."""

    code = "frame_too_large"


class MicrophoneUnavailableError(EmotiVoiceError):
    """No microphone can be opened (``sounddevice``/PortAudio missing, or no input device)."""

    code = "microphone_unavailable"


class InvalidResultError(EmotiVoiceError):
    """A file given as a saved analysis is not one (not JSON, or missing or mistyped fields)."""

    code = "invalid_result"


class InvalidTargetError(EmotiVoiceError):
    """An adversarial target transcript is empty, too long or not something Whisper can emit."""

    code = "invalid_target"
