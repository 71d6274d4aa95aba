"""Audio front end: decode anything PyAV reads, downmix to mono, resample to 16 kHz, validate.

PyAV bundles FFmpeg, so wav, flac, mp3, ogg/opus, m4a/aac and webm decode without a system
ffmpeg. Every failure becomes an :class:`~emotivoice.errors.AudioError` subclass whose message
says what is wrong with the input in words a user understands.
"""

from __future__ import annotations

import contextlib
import io
import logging
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import av
import numpy as np

from emotivoice.errors import (
    AudioDecodeError,
    AudioFileNotFoundError,
    AudioTooLongError,
    EmptyAudioError,
    InvalidConfigError,
    UnsupportedFormatError,
)
from emotivoice.results import AudioInfo

__all__ = [
    "AUDIO_EXTENSIONS",
    "DEFAULT_MAX_DURATION_S",
    "SAMPLE_RATE",
    "Audio",
    "AudioInfo",
    "AudioSource",
    "encode_audio",
    "find_audio_files",
    "load_audio",
    "probe_audio",
    "sniff_format",
    "to_pcm16",
]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # Whisper, Silero VAD and the emotion head all work at 16 kHz
PCM16_MAX = 32767  # the largest 16-bit sample
DEFAULT_MAX_DURATION_S = 4 * 3600.0
# A container that declares a duration but decodes to less than this share of it was cut short.
_TRUNCATION_RATIO = 0.9
# Short files report imprecise durations (codec delay, frame padding): do not judge below this.
_TRUNCATION_MIN_DECLARED_S = 1.0
_FORMAT_NAMES = {
    "mov,mp4,m4a,3gp,3g2,mj2": "m4a",
    "matroska,webm": "webm",
}

AudioSource = str | Path | bytes | bytearray | np.ndarray | IO[bytes]
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)  # the only rates libopus encodes
_ENCODE_STEP_S = 60  # encode a minute at a time: memory stays small for long recordings

# File name extensions a folder of recordings is searched for (decoding judges the content).
AUDIO_EXTENSIONS = frozenset(
    {"wav", "flac", "mp3", "ogg", "oga", "opus", "m4a", "mp4", "aac", "webm", "mkv", "wma"}
    | {"aif", "aiff", "amr", "3gp", "caf"}
)


def find_audio_files(folder: Path) -> list[Path]:
    """The files under ``folder`` (recursively, sorted) with an audio extension; hidden skipped."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not p.name.startswith(".")
        and p.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS
    )


@dataclass(frozen=True, eq=False)
class Audio:
    """Decoded audio: float32 mono samples at :data:`SAMPLE_RATE` plus the original's info.

    ``channels`` holds the separate channels, ``(n_channels, n_samples)`` at 16 kHz, when they
    were asked for (``load_audio(..., keep_channels=True)``) and the input has more than one;
    ``samples`` is always their average.
    """

    samples: np.ndarray
    info: AudioInfo
    channels: np.ndarray | None = None

    @property
    def duration(self) -> float:
        """Duration in seconds of the 16 kHz samples."""
        return len(self.samples) / SAMPLE_RATE


# Leading bytes of the audio containers EmotiVoice reads: (offset, magic, format).
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"RIFF", "wav"),
    (0, b"RF64", "wav"),
    (0, b"fLaC", "flac"),
    (0, b"OggS", "ogg"),
    (0, b"ID3", "mp3"),
    (4, b"ftyp", "m4a"),
    (0, b"\x1a\x45\xdf\xa3", "webm"),
    (0, b"FORM", "aiff"),
    (0, b"#!AMR", "amr"),
    (0, b"caff", "caf"),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "wma"),
)


def sniff_format(head: bytes) -> str | None:
    """The audio container that ``head`` (the first bytes of a file) starts like, else ``None``.

    Judged from the content, never from a file name: ``wav``, ``flac``, ``ogg``, ``mp3``,
    ``m4a``, ``webm``, ``aiff``, ``amr``, ``caf``, ``wma`` or ``aac`` (ADTS).
    """
    for offset, magic, name in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return name
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # MPEG audio frame sync; layer bits 00 mean ADTS AAC, anything else MPEG layer 1-3.
        return "aac" if head[1] & 0x06 == 0 else "mp3"
    return None


def _describe(source: AudioSource) -> str:
    if isinstance(source, str | Path):
        return Path(source).name
    if isinstance(source, np.ndarray):
        return "<array>"
    return "<bytes>"


def _open_input(source: AudioSource, name: str) -> str | IO[bytes]:
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise AudioFileNotFoundError(f"{path}: no such file.")
        if path.is_dir():
            raise AudioDecodeError(f"{name}: is a directory, not an audio file.")
        if path.stat().st_size == 0:
            raise EmptyAudioError(f"{name}: the file is empty (0 bytes).")
        return str(path)
    if isinstance(source, bytes | bytearray):
        if len(source) == 0:
            raise EmptyAudioError(f"{name}: no data was given (0 bytes).")
        return io.BytesIO(bytes(source))
    if isinstance(source, np.ndarray):
        raise InvalidConfigError("numpy input is not a container; pass it with sample_rate.")
    return source


def encode_audio(
    samples: np.ndarray,
    container: str,
    codec: str,
    *,
    sample_rate: int = SAMPLE_RATE,
    rate: int | None = None,
    bit_rate: int | None = None,
    layout: str = "mono",
    target: str | Path | None = None,
) -> bytes:
    """Encode mono ``samples`` (float32 in [-1, 1], or int16) with FFmpeg through PyAV.

    Args:
        container: FFmpeg format (``ogg``, ``mp3``, ``wav``, ``mp4``, ...).
        codec: FFmpeg encoder (``libopus``, ``libmp3lame``, ``flac``, ``aac``, ...).
        sample_rate: the samples' rate.
        rate: the encoded rate (default: ``sample_rate``; Opus moves to 48 kHz when it cannot
            encode that rate).
        bit_rate: the encoder's bit rate in bits per second (default: the encoder's).
        layout: the encoded channel layout (``mono``, or ``stereo`` with the channel copied).
        target: write the file there and return ``b""``; by default the bytes are returned.
    """
    rate = rate or sample_rate
    if codec == "libopus" and rate not in _OPUS_RATES:
        rate = 48000
    buffer = io.BytesIO()
    fmt = "s16" if samples.dtype == np.int16 else "flt"
    data = samples if fmt == "s16" else np.asarray(samples, np.float32)
    with av.open(str(target) if target is not None else buffer, "w", format=container) as out:
        stream: Any = out.add_stream(codec, rate=rate, layout=layout)
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        resampler = av.AudioResampler(
            format=stream.codec_context.format.name,
            layout=layout,
            rate=rate,
            frame_size=stream.codec_context.frame_size or None,
        )
        step = sample_rate * _ENCODE_STEP_S
        pieces = [data[i : i + step] for i in range(0, len(data), step)]
        for piece in [*pieces, None]:
            if piece is None:
                resampled = resampler.resample(None)
            else:
                frame = av.AudioFrame.from_ndarray(piece.reshape(1, -1), format=fmt, layout="mono")
                frame.sample_rate = sample_rate
                resampled = resampler.resample(frame)
            for chunk in resampled:
                for packet in stream.encode(chunk):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def _resampler() -> av.AudioResampler:
    # Planar float at 16 kHz, channels kept: FFmpeg's own stereo-to-mono matrix adds the channels
    # at -3 dB each, which can exceed full scale, so channels are averaged in numpy instead.
    return av.AudioResampler(format="fltp", rate=SAMPLE_RATE)


def _to_mono(frame: av.AudioFrame) -> np.ndarray:
    planes: np.ndarray = frame.to_ndarray()
    return planes.mean(axis=0, dtype=np.float32) if planes.shape[0] > 1 else planes[0]


def _wav_declared_seconds(source: AudioSource) -> float | None:
    """Duration a PCM WAV header announces (FFmpeg trusts the file size instead)."""
    if isinstance(source, np.ndarray):
        return None
    if isinstance(source, bytes | bytearray):
        opened: str | IO[bytes] = io.BytesIO(bytes(source))
    elif isinstance(source, str | Path):
        opened = str(source)
    else:
        return None
    try:
        with wave.open(opened, "rb") as wav:
            return wav.getnframes() / wav.getframerate()
    except (wave.Error, EOFError, OSError, ZeroDivisionError):
        return None


def _too_long(name: str, seconds: float, max_duration: float) -> AudioTooLongError:
    return AudioTooLongError(
        f"{name}: the recording is {seconds / 60:.1f} min long; the maximum is "
        f"{max_duration / 60:.1f} min. Split it or raise the limit (max_duration)."
    )


@contextlib.contextmanager
def _audio_stream(
    handle: str | IO[bytes], name: str
) -> Iterator[tuple[Any, Any, str, float | None]]:
    """The open container, its first audio stream, the format's short name and the duration
    the container declares (``None`` when it declares none).

    Raises:
        AudioDecodeError: not a readable container.
        UnsupportedFormatError: no audio stream.
    """
    try:
        container = av.open(handle, mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as e:
        raise AudioDecodeError(
            f"{name}: not a readable audio file (the decoder says: {e.strerror or e})."
        ) from e
    with container:
        if not container.streams.audio:
            kind = "video only" if container.streams.video else "no audio stream"
            raise UnsupportedFormatError(f"{name}: contains {kind}; nothing to analyse.")
        stream = container.streams.audio[0]
        fmt = _FORMAT_NAMES.get(container.format.name, container.format.name.split(",")[0])
        declared = (
            float(stream.duration * stream.time_base)
            if stream.duration and stream.time_base
            else None
        )
        if declared is None and container.duration:
            declared = container.duration / av.time_base
        yield container, stream, fmt, declared


def _decode_container(
    source: AudioSource, name: str, max_duration: float, keep_channels: bool = False
) -> Audio:
    with _audio_stream(_open_input(source, name), name) as (container, stream, fmt, declared):
        if declared is not None and declared > max_duration:
            raise _too_long(name, declared, max_duration)
        # Resampled frame by frame into one buffer sized from the declared length (grown when
        # the file holds more): a long recording costs its 16 kHz samples once, not twice.
        samples = _SampleBuffer(int((declared or 0.0) * SAMPLE_RATE * 1.01) + SAMPLE_RATE)
        planes: list[_SampleBuffer] = []  # the separate channels, when kept
        max_samples = int(max_duration * SAMPLE_RATE)
        resampler = _resampler()
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    _take(out, samples, planes, keep_channels)
                if len(samples) > max_samples:
                    raise _too_long(name, len(samples) / SAMPLE_RATE, max_duration)
            for out in resampler.resample(None):
                _take(out, samples, planes, keep_channels)
        except av.error.FFmpegError as e:
            raise AudioDecodeError(
                f"{name}: the audio data is corrupt or truncated (the decoder says: "
                f"{e.strerror or e})."
            ) from e
        channels = np.stack([plane.array() for plane in planes]) if len(planes) > 1 else None
        info = AudioInfo(
            format=fmt,
            codec=stream.codec_context.name,
            sample_rate=int(stream.codec_context.sample_rate or 0),
            channels=int(stream.codec_context.channels or 0),
            duration=len(samples) / SAMPLE_RATE,
            name=name,
        )
    if fmt == "wav":
        declared = _wav_declared_seconds(source) or declared
    _check_truncation(name, info.duration, declared)
    return Audio(samples=samples.array(), info=info, channels=channels)


class _SampleBuffer:
    """float32 samples appended in place; the capacity doubles when it runs out."""

    def __init__(self, capacity: int) -> None:
        # np.empty reserves memory without touching it: unused capacity costs no resident memory.
        self._data = np.empty(max(capacity, 1), dtype=np.float32)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        """Samples the buffer holds before it grows."""
        return len(self._data)

    def append(self, chunk: np.ndarray) -> None:
        end = self._size + len(chunk)
        if end > len(self._data):
            grown = np.empty(max(end, 2 * len(self._data)), dtype=np.float32)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size : end] = chunk
        self._size = end

    def array(self) -> np.ndarray:
        """The samples; a copy when the buffer is much larger, so the slack is returned."""
        if self._size < len(self._data) * 0.9:
            return self._data[: self._size].copy()
        return self._data[: self._size]


def _take(
    frame: av.AudioFrame, samples: _SampleBuffer, planes: list[_SampleBuffer], keep: bool
) -> None:
    """Append a resampled frame: its channel average to ``samples`` and, when ``keep``, each
    channel to its own buffer in ``planes`` (made at the first frame)."""
    if not keep:
        samples.append(_to_mono(frame))
        return
    data: np.ndarray = frame.to_ndarray()
    if not planes:
        planes.extend(_SampleBuffer(samples.capacity) for _ in range(len(data)))
    for plane, row in zip(planes, data, strict=True):
        plane.append(row)
    samples.append(data.mean(axis=0, dtype=np.float32) if len(data) > 1 else data[0])


def _check_truncation(name: str, decoded: float, declared: float | None) -> None:
    if declared is None or declared < _TRUNCATION_MIN_DECLARED_S:
        return
    if decoded == 0:
        raise AudioDecodeError(
            f"{name}: the file is corrupt: its header announces {declared:.1f} s of audio but "
            "none could be decoded."
        )
    if decoded < declared * _TRUNCATION_RATIO:
        raise AudioDecodeError(
            f"{name}: the file is truncated: its header announces {declared:.1f} s of audio "
            f"but only {decoded:.1f} s could be decoded."
        )


def _from_array(
    array: np.ndarray, sample_rate: int | None, max_duration: float, keep_channels: bool = False
) -> Audio:
    name = "<array>"
    if sample_rate is None or sample_rate <= 0:
        raise InvalidConfigError("A numpy array needs its sample_rate (a positive integer, Hz).")
    if array.ndim == 2:
        # (samples, channels) is the soundfile/librosa convention; accept (channels, samples) too.
        channels = min(array.shape)
        data = array if array.shape[1] == channels else array.T
        mono = data.astype(np.float32).mean(axis=1)
        planes = data.T.astype(np.float32) if keep_channels and channels > 1 else None
    elif array.ndim == 1:
        channels, mono, planes = 1, array.astype(np.float32), None
    else:
        raise AudioDecodeError(f"{name}: expected a 1-D (mono) or 2-D array, got {array.ndim}-D.")
    if np.issubdtype(array.dtype, np.integer):
        mono = mono / float(np.iinfo(array.dtype).max)
        planes = None if planes is None else planes / float(np.iinfo(array.dtype).max)
    if mono.size == 0:
        raise EmptyAudioError(f"{name}: the array holds zero samples.")
    if not np.all(np.isfinite(mono)):
        raise AudioDecodeError(f"{name}: the array contains NaN or infinite values.")
    if mono.size / sample_rate > max_duration:
        raise _too_long(name, mono.size / sample_rate, max_duration)
    samples = mono if sample_rate == SAMPLE_RATE else _resample(mono, sample_rate)
    if planes is not None and sample_rate != SAMPLE_RATE:
        planes = np.stack([_resample(p, sample_rate) for p in planes])
    info = AudioInfo(
        "array", f"{array.dtype}", sample_rate, channels, samples.size / SAMPLE_RATE, name
    )
    return Audio(
        samples=np.ascontiguousarray(samples, dtype=np.float32),
        info=info,
        channels=None if planes is None else np.ascontiguousarray(planes, dtype=np.float32),
    )


def _resample(mono: np.ndarray, sample_rate: int) -> np.ndarray:
    """Resample with the same FFmpeg resampler as decoded files use."""
    frame = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="fltp", layout="mono")
    frame.sample_rate = sample_rate
    resampler = _resampler()
    outs = resampler.resample(frame) + resampler.resample(None)
    return np.concatenate([_to_mono(o) for o in outs])


def probe_audio(
    path: str | Path,
    *,
    name: str | None = None,
    max_duration: float = DEFAULT_MAX_DURATION_S,
    decode_seconds: float = 10.0,
) -> AudioInfo:
    """Check a recording without decoding all of it; its :class:`AudioInfo` (with its duration).

    The container header is read, the first ``decode_seconds`` are decoded (corrupt data fails
    there), and the rest is only demultiplexed: packets are counted, never decoded, so the
    memory used stays the same whatever the length (a service checks an upload this way and
    leaves the full decoding to its worker). Packets without timing are decoded one at a time
    and only their sample count is kept.

    Args:
        path: the file.
        name: the name used in error messages (default the file's name).
        max_duration: longest accepted recording in seconds.
        decode_seconds: how much of the start is decoded.

    Raises:
        EmptyAudioError: empty file or no audio samples.
        AudioDecodeError: not audio, or corrupt or truncated data.
        UnsupportedFormatError: a container without an audio stream.
        AudioTooLongError: longer than ``max_duration`` (from the header or the packets).
    """
    name = name or Path(path).name
    with _audio_stream(_open_input(Path(path), name), name) as (container, stream, fmt, declared):
        if fmt == "wav":
            declared = _wav_declared_seconds(str(path)) or declared
        if declared is not None and declared > max_duration:
            raise _too_long(name, declared, max_duration)
        codec = stream.codec_context
        rate = int(codec.sample_rate or 0)
        base = float(stream.time_base) if stream.time_base else 0.0
        first: int | None = None  # timestamps in stream time base units (exact integers)
        last = 0
        untimed = 0.0  # seconds of packets without timestamps (counted by decoding them)
        decoded = 0.0
        limit_units = max_duration / base if base else float("inf")
        try:
            for count, packet in enumerate(container.demux(stream)):
                pts, span = packet.pts, packet.duration
                timed = pts is not None and bool(span) and bool(base)
                if decoded < decode_seconds or not timed:
                    seconds = sum(
                        f.samples / (f.sample_rate or rate or 1) for f in codec.decode(packet)
                    )
                    decoded += seconds
                    if not timed:
                        untimed += seconds
                if timed and pts is not None and span:
                    if first is None or pts < first:
                        first = pts
                    last = max(last, pts + span)
                if count % 1024 == 0 and (
                    (first is not None and last - first > limit_units) or untimed > max_duration
                ):
                    raise _too_long(name, _probed(first, last, base, untimed), max_duration)
        except av.error.FFmpegError as e:
            raise AudioDecodeError(
                f"{name}: the audio data is corrupt or truncated (the decoder says: "
                f"{e.strerror or e})."
            ) from e
        duration = _probed(first, last, base, untimed)
        if duration > max_duration:
            raise _too_long(name, duration, max_duration)
        if decoded == 0:
            duration = 0.0  # nothing decodes: corrupt (with a declared length) or empty
        info = AudioInfo(
            format=fmt,
            codec=codec.name,
            sample_rate=rate,
            channels=int(codec.channels or 0),
            duration=duration,
            name=name,
        )
    _check_truncation(name, duration, declared)
    if duration <= 0:
        raise EmptyAudioError(f"{name}: the file contains no audio samples.")
    return info


def _probed(first: int | None, last: int, base: float, untimed: float) -> float:
    return (last - first) * base + untimed if first is not None else untimed


def load_audio(
    source: AudioSource,
    *,
    sample_rate: int | None = None,
    max_duration: float = DEFAULT_MAX_DURATION_S,
    keep_channels: bool = False,
) -> Audio:
    """Decode ``source`` to 16 kHz mono float32.

    Args:
        source: a path, encoded bytes, a binary file object, or a numpy array of samples
            (1-D mono or 2-D with channels; integer arrays are scaled to [-1, 1]).
        sample_rate: sample rate of a numpy array (required for arrays, ignored otherwise).
        max_duration: longest accepted recording in seconds.
        keep_channels: also keep the channels of a multichannel input apart
            (:attr:`Audio.channels`), for analysing each channel as its own speaker.

    Returns:
        The decoded :class:`Audio`.

    Raises:
        EmptyAudioError: empty file or zero samples.
        AudioDecodeError: not audio, corrupt or truncated data, missing file.
        UnsupportedFormatError: a container without an audio stream.
        AudioTooLongError: longer than ``max_duration``.
    """
    if max_duration <= 0:
        raise InvalidConfigError("max_duration must be a positive number of seconds.")
    if isinstance(source, np.ndarray):
        return _from_array(source, sample_rate, max_duration, keep_channels)
    name = _describe(source)
    audio = _decode_container(source, name, max_duration, keep_channels)
    if audio.samples.size == 0:
        raise EmptyAudioError(f"{name}: the file contains no audio samples.")
    logger.debug("Decoded %s: %s", name, audio.info)
    return audio


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """Float samples (full scale ±1) as 16-bit little-endian PCM, rounded and clipped."""
    return np.clip(np.round(samples * PCM16_MAX), -PCM16_MAX - 1, PCM16_MAX).astype("<i2")
