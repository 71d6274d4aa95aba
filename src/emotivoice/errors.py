"""The EmotiVoice error hierarchy.

Every error the engine raises on purpose derives from :class:`EmotiVoiceError` and carries a
stable machine-readable ``code`` and a message written for the person who supplied the input.
The code is the one vocabulary of the project: the REST API and the WebSocket send it as is,
the CLI prints it, and :mod:`emotivoice.service.errors` only adds the HTTP status of each class.
"""

from __future__ import annotations

__all__ = [
    "AudioDecodeError",
    "AudioError",
    "AudioFileNotFoundError",
    "AudioTooLongError",
    "EmotiVoiceError",
    "EmptyAudioError",
    "InvalidConfigError",
    "InvalidPhraseError",
    "InvalidResultError",
    "InvalidTargetError",
    "LanguageModelError",
    "LanguageModelFileError",
    "LanguageModelTimeoutError",
    "MicrophoneUnavailableError",
    "MissingExtraError",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "NoTrainingDataError",
    "PeerEnvironmentError",
    "SpeechSynthesisError",
    "StreamError",
    "StreamFrameTooLargeError",
    "StreamProtocolError",
    "StreamTooLongError",
    "ToolCallError",
    "ToolError",
    "ToolLimitError",
    "ToolNotAllowedError",
    "UnsupportedFormatError",
    "WakeWordModelError",
]


class EmotiVoiceError(Exception):
    """Base class of every error EmotiVoice raises deliberately."""

    code: str = "INTERNAL_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        """The error as a small JSON-ready mapping ``{"code", "message"}``."""
        return {"code": self.code, "message": self.message}


class MissingExtraError(EmotiVoiceError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""

    code = "MISSING_EXTRA"

    def __init__(self, message: str, extra: str) -> None:
        super().__init__(message)
        self.extra = extra


class AudioError(EmotiVoiceError):
    """The input audio cannot be analysed."""

    code = "INVALID_AUDIO"


class AudioDecodeError(AudioError):
    """The input is not decodable audio: not audio at all, truncated or corrupt."""

    code = "INVALID_AUDIO"


class AudioFileNotFoundError(AudioError, FileNotFoundError):
    """The input path names no file (it is also a :class:`FileNotFoundError`)."""

    code = "FILE_NOT_FOUND"


class UnsupportedFormatError(AudioDecodeError):
    """The input is a container or codec EmotiVoice does not read."""

    code = "UNSUPPORTED_FORMAT"


class EmptyAudioError(AudioError):
    """The input is an empty file or decodes to zero samples."""

    code = "EMPTY_AUDIO"


class AudioTooLongError(AudioError):
    """The input is longer than the configured maximum duration."""

    code = "AUDIO_TOO_LONG"


class ModelNotFoundError(EmotiVoiceError):
    """A model name or path does not resolve to usable weights."""

    code = "MODEL_NOT_FOUND"


class ModelIntegrityError(EmotiVoiceError):
    """Model weights exist but fail their checksum."""

    code = "MODEL_INTEGRITY"


class InvalidConfigError(EmotiVoiceError):
    """Options or a configuration file are invalid."""

    code = "INVALID_OPTIONS"


class StreamError(EmotiVoiceError):
    """A live stream cannot go on."""

    code = "STREAM_ERROR"


class StreamProtocolError(StreamError):
    """A stream message is malformed or arrives out of order (e.g. audio before ``start``)."""

    code = "PROTOCOL_ERROR"


class StreamTooLongError(StreamError):
    """A stream ran past its maximum session length."""

    code = "STREAM_TOO_LONG"


class StreamFrameTooLargeError(StreamError):
    """One audio frame of a stream is larger than the accepted maximum."""

    code = "FRAME_TOO_LARGE"


class MicrophoneUnavailableError(EmotiVoiceError):
    """No microphone can be opened (``sounddevice``/PortAudio missing, or no input device)."""

    code = "MICROPHONE_UNAVAILABLE"


class InvalidResultError(EmotiVoiceError):
    """A file given as a saved analysis is not one (not JSON, or missing or mistyped fields)."""

    code = "RESULT_UNREADABLE"


class InvalidTargetError(EmotiVoiceError):
    """An adversarial target transcript is empty, too long or not something Whisper can emit."""

    code = "INVALID_TARGET"


class InvalidPhraseError(InvalidConfigError):
    """A wake phrase the studio cannot train: no letters, letters the voices cannot say, too
    long."""

    code = "INVALID_PHRASE"


class NoTrainingDataError(InvalidConfigError):
    """A wake-word training set lacks what training needs (no positives, no negatives)."""

    code = "NO_TRAINING_DATA"


class WakeWordModelError(ModelNotFoundError):
    """A file given as a wake-word model is not one: not ONNX, corrupt, or not made by
    EmotiVoice's studio."""

    code = "INVALID_WAKEWORD_MODEL"


class LanguageModelFileError(ModelNotFoundError):
    """A file given as the assistant's language model is not one: not GGUF, or unreadable."""

    code = "INVALID_LLM_MODEL"


class LanguageModelError(EmotiVoiceError):
    """The assistant's language model failed: a server that is down, refuses the request or
    answers something that is not a chat completion."""

    code = "LLM_ERROR"


class LanguageModelTimeoutError(LanguageModelError):
    """The assistant's language model did not answer within its time limit."""

    code = "LLM_TIMEOUT"


class SpeechSynthesisError(EmotiVoiceError):
    """The assistant cannot speak: no TTS engine is installed, or the one chosen failed."""

    code = "TTS_ERROR"


class ToolError(EmotiVoiceError):
    """An assistant tool could not do what the model asked: the browser did not start, a page
    did not load, no element matches the text. Reported to the model and in the turn's trace;
    the conversation goes on."""

    code = "TOOL_FAILED"


class ToolNotAllowedError(ToolError):
    """The browser tool's policy refuses the action: a host that is not on the allowlist, a
    ``file:`` URL without ``allow_file``, a scheme other than http(s). Nothing is opened."""

    code = "TOOL_NOT_ALLOWED"


class ToolLimitError(ToolError):
    """The turn has used up its browser actions (the policy's per-turn cap)."""

    code = "TOOL_LIMIT"


class ToolCallError(ToolError):
    """The model's tool call cannot be read: not JSON, an unknown tool, a missing argument."""

    code = "INVALID_TOOL_CALL"


class PeerEnvironmentError(EmotiVoiceError):
    """The isolated environment in which the wake-word peers (openWakeWord, microWakeWord) run
    could not be built, or a peer failed in it."""

    code = "PEER_ENVIRONMENT"
