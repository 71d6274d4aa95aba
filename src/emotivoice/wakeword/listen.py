"""Listening: run a detector over a file, a raw PCM stream (standard input) or the microphone.

Each source is fed to one :class:`~emotivoice.wakeword.detector.WakeWordDetector` in 80 ms
chunks, as a live stream arrives; ``realtime`` paces a file at the speed it was recorded.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from emotivoice.audio import SAMPLE_RATE, load_audio
from emotivoice.errors import MicrophoneUnavailableError
from emotivoice.extras import import_extra
from emotivoice.wakeword.detector import Detection, WakeWordDetector
from emotivoice.wakeword.features import HOP_SAMPLES

__all__ = ["listen_file", "listen_microphone", "listen_pcm", "pcm_chunks"]

OnDetection = Callable[[Detection], None]
_PCM_BYTES = 2  # signed 16-bit little-endian


def _feed(
    detector: WakeWordDetector, chunks: Iterator[np.ndarray], on_detection: OnDetection | None
) -> list[Detection]:
    found: list[Detection] = []
    for chunk in chunks:
        for detection in detector.feed(chunk):
            found.append(detection)
            if on_detection:
                on_detection(detection)
    return found


def listen_file(
    path: Path,
    detector: WakeWordDetector,
    on_detection: OnDetection | None = None,
    realtime: bool = False,
) -> list[Detection]:
    """Detections in an audio file of any format the front end reads, streamed in 80 ms chunks
    (paced at recording speed with ``realtime``)."""
    samples = load_audio(path).samples

    def chunks() -> Iterator[np.ndarray]:
        started = time.monotonic()
        for start in range(0, len(samples), HOP_SAMPLES):
            if realtime:
                time.sleep(max(0.0, start / SAMPLE_RATE - (time.monotonic() - started)))
            yield samples[start : start + HOP_SAMPLES]

    return _feed(detector, chunks(), on_detection)


def pcm_chunks(stream: BinaryIO, chunk_samples: int = HOP_SAMPLES) -> Iterator[np.ndarray]:
    """Float chunks of a raw signed 16-bit little-endian 16 kHz mono byte stream, until EOF."""
    leftover = b""
    while True:
        data = stream.read(chunk_samples * _PCM_BYTES)
        if not data:
            return
        data = leftover + data
        usable = len(data) - len(data) % _PCM_BYTES
        leftover = data[usable:]
        if usable:
            yield np.frombuffer(data[:usable], "<i2").astype(np.float32) / 32768.0


def listen_pcm(
    stream: BinaryIO, detector: WakeWordDetector, on_detection: OnDetection | None = None
) -> list[Detection]:
    """Detections in raw 16 kHz mono s16le audio read from ``stream`` (e.g. standard input)."""
    return _feed(detector, pcm_chunks(stream), on_detection)


def listen_microphone(
    detector: WakeWordDetector,
    on_detection: OnDetection | None = None,
    seconds: float | None = None,
    device: int | str | None = None,
) -> list[Detection]:
    """Detections from a microphone (``sounddevice``, the ``mic`` extra) at 16 kHz.

    Raises:
        MicrophoneUnavailableError: no sounddevice/PortAudio, no input device, or a device that
            does not record at 16 kHz mono.
    """
    try:
        sd = import_extra("sounddevice", "mic", "Listening to a microphone")
    except ImportError as error:
        raise MicrophoneUnavailableError(f"Cannot open a microphone: {error}") from error
    captured: queue.Queue[np.ndarray] = queue.Queue()

    def callback(data: np.ndarray, frames: int, when: object, status: object) -> None:
        captured.put(data[:, 0].copy())

    try:
        sd.check_input_settings(device=device, channels=1, samplerate=SAMPLE_RATE, dtype="float32")
        mic = sd.InputStream(
            samplerate=SAMPLE_RATE,
            channels=1,
            dtype="float32",
            blocksize=HOP_SAMPLES,
            device=device,
            callback=callback,
        )
    except Exception as error:  # PortAudioError, ValueError: no device, or no 16 kHz on it
        raise MicrophoneUnavailableError(
            f"Cannot record 16 kHz mono from the microphone {device or '(default)'}: {error}"
        ) from error

    def chunks() -> Iterator[np.ndarray]:
        deadline = None if seconds is None else time.monotonic() + seconds
        with mic:
            while deadline is None or time.monotonic() < deadline:
                try:
                    yield captured.get(timeout=0.5)
                except queue.Empty:
                    continue

    return _feed(detector, chunks(), on_detection)
