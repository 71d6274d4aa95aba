"""Audio into the assistant: a file or samples (optionally at the pace of speech), raw PCM from a
byte stream (standard input), or the microphone; each an async iterator of 16 kHz mono float32
chunks that arrive when their last sample has been spoken, as a microphone delivers them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from emotivoice.audio import SAMPLE_RATE, load_audio
from emotivoice.errors import MicrophoneUnavailableError
from emotivoice.extras import import_extra
from emotivoice.wakeword.listen import pcm_chunks

__all__ = ["CHUNK_S", "audio_chunks", "microphone_chunks", "pcm_stream_chunks"]

CHUNK_S = 0.1  # 100 ms chunks, as the live service's clients send them
_TRAILING_SILENCE_S = 1.0  # after a file, the speaker stays silent: the last utterance ends


async def audio_chunks(
    source: Path | str | np.ndarray,
    realtime: bool = False,
    chunk_s: float = CHUNK_S,
    trailing_silence_s: float = _TRAILING_SILENCE_S,
) -> AsyncIterator[np.ndarray]:
    """A file (any format the engine reads) or 16 kHz samples, in chunks of ``chunk_s``.

    With ``realtime`` each chunk arrives when its last sample would have been spoken;
    otherwise as fast as the consumer takes them. Silence of ``trailing_silence_s`` follows.

    Raises:
        AudioError: the file cannot be read (from :func:`~emotivoice.audio.load_audio`).
    """
    samples = source if isinstance(source, np.ndarray) else load_audio(Path(source)).samples
    silence = np.zeros(int(trailing_silence_s * SAMPLE_RATE), np.float32)
    samples = np.concatenate([samples.astype(np.float32), silence])
    step = max(1, int(chunk_s * SAMPLE_RATE))
    started = time.perf_counter()
    for start in range(0, samples.size, step):
        chunk = samples[start : start + step]
        if realtime:
            due = started + (start + chunk.size) / SAMPLE_RATE
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        yield chunk


async def pcm_stream_chunks(
    stream: BinaryIO, chunk_s: float = CHUNK_S
) -> AsyncIterator[np.ndarray]:
    """Raw signed 16-bit little-endian 16 kHz mono audio from ``stream`` (e.g. standard
    input), read in a worker thread so the event loop stays free."""
    chunks = pcm_chunks(stream, int(chunk_s * SAMPLE_RATE))
    while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
        yield chunk


def microphone_chunks(
    device: int | str | None = None, chunk_s: float = CHUNK_S
) -> AsyncIterator[np.ndarray]:
    """The microphone at 16 kHz mono (``sounddevice``, the ``mic`` extra), until cancelled.

    The device is checked here, before the first chunk is asked for.

    Raises:
        MicrophoneUnavailableError: no sounddevice/PortAudio, no input device, or a device that
            does not record at 16 kHz mono.
    """
    try:
        sd = import_extra("sounddevice", "mic", "Listening to a microphone")
        sd.check_input_settings(device=device, channels=1, samplerate=SAMPLE_RATE, dtype="float32")
    except Exception as error:  # ImportError, PortAudioError: no library or no device
        raise MicrophoneUnavailableError(
            f"Cannot record 16 kHz mono from the microphone {device or '(default)'}: {error}"
        ) from error

    async def chunks() -> AsyncIterator[np.ndarray]:
        loop = asyncio.get_running_loop()
        captured: asyncio.Queue[np.ndarray] = asyncio.Queue()

        def callback(data: np.ndarray, frames: int, when: object, status: object) -> None:
            loop.call_soon_threadsafe(captured.put_nowait, data[:, 0].copy())

        with sd.InputStream(
            samplerate=SAMPLE_RATE,
            channels=1,
            dtype="float32",
            blocksize=int(chunk_s * SAMPLE_RATE),
            device=device,
            callback=callback,
        ):
            while True:
                yield await captured.get()

    return chunks()
