"""Augmentation of training windows: rooms, noise and babble from real speech, gain,
band-limiting and lossy-codec round trips.

Rooms come from the robustness lab's simulator (:func:`emotivoice.robustness.rooms.simulate_rirs`);
babble is a sum of real recordings of the training split; codecs go through PyAV as a user's
recorder would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from emotivoice.audio import SAMPLE_RATE, encode_audio, load_audio
from emotivoice.errors import AudioError
from emotivoice.robustness.rooms import RoomOptions, simulate_rirs

__all__ = ["AugmentOptions", "augment_window", "codec_round_trip", "mix_at_snr"]

_CODECS = (("ogg", "libopus", 16000), ("mp3", "libmp3lame", 24000), ("ogg", "libopus", 24000))


@dataclass(frozen=True)
class AugmentOptions:
    """How often each transformation is applied to a window, and its ranges.

    Attributes:
        room: probability of convolving with a simulated room.
        background: probability of adding babble (real speech) or coloured noise.
        snr_db: signal-to-background range in dB.
        gain_db: range of the final level change in dB.
        band_limit: probability of a telephone-like or muffled band limit.
        codec: probability of an Opus or MP3 round trip at a low bit rate.
    """

    room: float = 0.5
    background: float = 0.7
    snr_db: tuple[float, float] = (0.0, 25.0)
    gain_db: tuple[float, float] = (-18.0, 6.0)
    band_limit: float = 0.25
    codec: float = 0.15


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``signal + noise`` with the noise scaled to ``snr_db`` below the signal's power."""
    p_signal = float(np.mean(signal**2)) + 1e-10
    p_noise = float(np.mean(noise**2)) + 1e-10
    return signal + noise * np.sqrt(p_signal / p_noise / 10 ** (snr_db / 10.0))


def _coloured_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink or brown noise: 1/f^a spectrum for a in {0, 1, 2}."""
    exponent = rng.choice([0.0, 1.0, 2.0])
    spectrum = rng.standard_normal(length // 2 + 1) + 1j * rng.standard_normal(length // 2 + 1)
    freqs = np.maximum(np.fft.rfftfreq(length), 1.0 / length)
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2), n=length)
    return (noise / (np.std(noise) + 1e-9)).astype(np.float32)


def _babble(length: int, speech: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One to four real recordings summed (random crops, looped when short)."""
    out = np.zeros(length, np.float32)
    for _ in range(int(rng.integers(1, 5))):
        clip = speech[int(rng.integers(len(speech)))]
        reps = int(np.ceil((length + len(clip)) / max(len(clip), 1)))
        tiled = np.tile(clip, reps)
        start = int(rng.integers(0, max(len(tiled) - length, 1)))
        out += tiled[start : start + length] * rng.uniform(0.5, 1.0)
    return out


def _band_limit(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from scipy.signal import butter, sosfilt  # seconds to import: only when training

    if rng.random() < 0.5:  # telephone band
        sos = butter(
            4,
            [rng.uniform(200, 400), rng.uniform(3000, 3600)],
            "bandpass",
            fs=SAMPLE_RATE,
            output="sos",
        )
    else:  # a muffled or cheap microphone
        sos = butter(4, rng.uniform(2500, 6000), "lowpass", fs=SAMPLE_RATE, output="sos")
    return sosfilt(sos, samples).astype(np.float32)


def codec_round_trip(samples: np.ndarray, container: str, codec: str, bit_rate: int) -> np.ndarray:
    """``samples`` encoded with ``codec`` at ``bit_rate`` and decoded back (same length)."""
    rate = 48000 if codec == "libopus" else SAMPLE_RATE
    encoded = encode_audio(samples, container, codec, rate=rate, bit_rate=bit_rate)
    try:
        decoded = load_audio(encoded).samples
    except AudioError:
        return samples
    out_samples = np.zeros_like(samples)
    out_samples[: min(len(decoded), len(samples))] = decoded[: len(samples)]
    return out_samples


def augment_window(
    samples: np.ndarray,
    rng: np.random.Generator,
    speech: Sequence[np.ndarray],
    options: AugmentOptions | None = None,
) -> np.ndarray:
    """One random augmentation of a window of 16 kHz ``samples`` (same length, float32).

    Args:
        samples: the window.
        rng: the source of randomness (seeded by the caller).
        speech: real recordings of the training split, the babble's material.
        options: the probabilities and ranges.
    """
    from scipy.signal import fftconvolve

    options = options or AugmentOptions()
    x = samples.astype(np.float32)
    if rng.random() < options.room:
        rir = simulate_rirs(1, rng, RoomOptions(rt60_s=(0.1, 0.7), max_length_s=0.4))[0]
        x = fftconvolve(x, rir)[: len(x)].astype(np.float32)
    if rng.random() < options.background:
        use_speech = speech and rng.random() < 0.6
        noise = _babble(len(x), speech, rng) if use_speech else _coloured_noise(len(x), rng)
        if np.any(x):
            x = mix_at_snr(x, noise, float(rng.uniform(*options.snr_db)))
        else:  # a silent window: the background alone at a plausible level
            x = noise * 10 ** (rng.uniform(-45, -20) / 20) / (np.std(noise) + 1e-9)
    if rng.random() < options.band_limit:
        x = _band_limit(x, rng)
    peak = float(np.max(np.abs(x))) + 1e-9
    x = x / peak * 10 ** (rng.uniform(-12.0, -1.0) / 20)  # normalise before the gain
    x = x * 10 ** (rng.uniform(*options.gain_db) / 20)
    x = np.clip(x, -1.0, 1.0).astype(np.float32)
    if rng.random() < options.codec:
        container, codec, rate = _CODECS[int(rng.integers(len(_CODECS)))]
        x = codec_round_trip(x, container, codec, rate)
    return x
