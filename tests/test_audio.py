"""Audio front end: every format, every input kind, and each kind of bad input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from emotivoice.audio import SAMPLE_RATE, load_audio
from emotivoice.errors import (
    AudioDecodeError,
    AudioFileNotFoundError,
    AudioTooLongError,
    EmptyAudioError,
    InvalidConfigError,
    UnsupportedFormatError,
)

JFK_SECONDS = 11.0


@pytest.mark.parametrize(
    ("name", "fmt", "codec"),
    [
        ("wav", "wav", "pcm_s16le"),
        ("flac", "flac", "flac"),
        ("mp3", "mp3", "mp3"),
        ("ogg-opus", "ogg", "opus"),
        ("m4a-aac", "m4a", "aac"),
        ("webm-opus", "webm", "opus"),
    ],
)
def test_decodes_every_format_to_16k_mono(
    encoded_jfk: dict[str, Path], jfk_samples: np.ndarray, name: str, fmt: str, codec: str
) -> None:
    audio = load_audio(encoded_jfk[name])
    assert audio.info.format == fmt
    assert audio.info.codec.startswith(codec)
    assert audio.info.channels == 2
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.duration == pytest.approx(JFK_SECONDS, abs=0.1)
    # the waveform survives the round trip: lossy codecs add delay (AAC primes 1024 samples),
    # so compare 10 ms energy envelopes at the best lag within ±100 ms
    assert _envelope_similarity(audio.samples, jfk_samples) > 0.95


def _envelope_similarity(
    a: np.ndarray, b: np.ndarray, block: int = 160, max_lag: int = 10
) -> float:
    def envelope(x: np.ndarray) -> np.ndarray:
        n = len(x) // block * block
        return np.sqrt((x[:n].reshape(-1, block) ** 2).mean(axis=1))

    env_a, env_b = envelope(a), envelope(b)
    n = min(len(env_a), len(env_b)) - max_lag
    return max(
        float(np.corrcoef(env_a[lag : lag + n], env_b[:n])[0, 1]) for lag in range(max_lag + 1)
    )


def test_keeps_original_properties(jfk_path: Path) -> None:
    audio = load_audio(jfk_path)
    assert (audio.info.format, audio.info.sample_rate, audio.info.channels) == ("flac", 44100, 2)
    assert audio.info.name == "jfk.flac"
    assert len(audio.samples) == round(JFK_SECONDS * SAMPLE_RATE)


def test_bytes_file_object_and_path_agree(jfk_path: Path) -> None:
    raw = jfk_path.read_bytes()
    a = load_audio(jfk_path).samples
    b = load_audio(raw).samples
    c = load_audio(io.BytesIO(raw)).samples
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_numpy_input_is_resampled_and_downmixed(jfk_samples: np.ndarray) -> None:
    stereo_44k = load_audio(jfk_samples, sample_rate=SAMPLE_RATE).samples
    assert stereo_44k.shape == jfk_samples.shape
    clipped = np.clip(jfk_samples, -1.0, 1.0)
    int_stereo = (np.stack([clipped, clipped], axis=1) * 32767).astype(np.int16)
    down = load_audio(int_stereo, sample_rate=8000)
    assert down.info.channels == 2 and down.info.sample_rate == 8000
    assert down.duration == pytest.approx(2 * JFK_SECONDS, abs=0.01)
    assert np.abs(down.samples).max() <= 1.0


def test_all_silence_is_valid() -> None:
    audio = load_audio(np.zeros(SAMPLE_RATE * 2, dtype=np.float32), sample_rate=SAMPLE_RATE)
    assert audio.duration == pytest.approx(2.0)


def test_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(EmptyAudioError, match="empty"):
        load_audio(empty)
    with pytest.raises(EmptyAudioError):
        load_audio(b"")


def test_not_audio(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp3"
    fake.write_text("These are meeting notes, not a recording.\n" * 50)
    with pytest.raises(AudioDecodeError, match="not a readable audio file"):
        load_audio(fake)


def test_truncated_file(jfk_path: Path, tmp_path: Path, encoded_jfk: dict[str, Path]) -> None:
    for source in (jfk_path, encoded_jfk["wav"]):
        cut = tmp_path / f"cut-{source.name}"
        cut.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
        with pytest.raises(AudioDecodeError, match="truncated"):
            load_audio(cut)


def test_corrupt_data(jfk_path: Path) -> None:
    raw = bytearray(jfk_path.read_bytes())
    rng = np.random.default_rng(0)
    raw[4096:] = rng.integers(0, 256, len(raw) - 4096, dtype=np.uint8).tobytes()
    with pytest.raises(AudioDecodeError):
        load_audio(bytes(raw))


def test_zero_samples(tmp_path: Path, encoded_jfk: dict[str, Path]) -> None:
    # a valid WAV file that holds no samples at all
    import wave

    path = tmp_path / "zero-samples.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(b"")
    with pytest.raises(EmptyAudioError, match="no audio samples"):
        load_audio(path)
    with pytest.raises(EmptyAudioError):
        load_audio(np.zeros(0, dtype=np.float32), sample_rate=SAMPLE_RATE)


def test_too_long(jfk_path: Path) -> None:
    with pytest.raises(AudioTooLongError, match="maximum"):
        load_audio(jfk_path, max_duration=5.0)
    with pytest.raises(AudioTooLongError):
        load_audio(
            np.zeros(SAMPLE_RATE * 10, dtype=np.float32), sample_rate=SAMPLE_RATE, max_duration=5
        )


def test_video_without_audio(tmp_path: Path) -> None:
    import av

    path = tmp_path / "silent-video.mp4"
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height = 32, 32
        for _ in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(UnsupportedFormatError, match="video only"):
        load_audio(path)


def test_bad_array_inputs() -> None:
    with pytest.raises(InvalidConfigError, match="sample_rate"):
        load_audio(np.zeros(100, dtype=np.float32))
    with pytest.raises(AudioDecodeError, match="NaN"):
        load_audio(np.full(100, np.nan, dtype=np.float32), sample_rate=SAMPLE_RATE)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioFileNotFoundError, match="no such file") as raised:
        load_audio(tmp_path / "nope.wav")
    assert isinstance(raised.value, FileNotFoundError) and raised.value.code == "FILE_NOT_FOUND"


def test_probe_matches_decoding_in_every_format(
    jfk_path: Path, encoded_jfk: dict[str, Path], tmp_path: Path
) -> None:
    from emotivoice.audio import probe_audio

    for source in (jfk_path, *encoded_jfk.values()):
        info = probe_audio(source, decode_seconds=2.0)
        decoded = load_audio(source)
        assert abs(info.duration - decoded.duration) < 0.1, source.name
        assert info.format == decoded.info.format and info.codec == decoded.info.codec
    for source in (jfk_path, encoded_jfk["wav"]):
        cut = tmp_path / f"cut-{source.name}"
        cut.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
        with pytest.raises(AudioDecodeError, match="truncated"):
            probe_audio(cut, name="my talk")
    with pytest.raises(AudioTooLongError):
        probe_audio(jfk_path, max_duration=5.0)


def test_decoding_a_long_recording_holds_its_samples_once(tmp_path: Path) -> None:
    """The 16 kHz samples are written into one buffer (no list of chunks joined at the end)."""
    import tracemalloc
    import wave

    path = tmp_path / "twenty-minutes.wav"  # 8-bit at 1 kHz: 1.2 MB that decode to 77 MB
    rng = np.random.default_rng(0)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(1000)
        w.writeframes(rng.integers(100, 156, 1200 * 1000, dtype=np.uint8).tobytes())
    tracemalloc.start()
    try:
        audio = load_audio(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(audio.duration - 1200.0) < 0.1
    assert audio.samples.dtype == np.float32 and audio.samples.flags.c_contiguous
    assert peak < 1.4 * audio.samples.nbytes, f"{peak / audio.samples.nbytes:.2f}x the samples"
