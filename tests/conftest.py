"""Shared fixtures: the shared real-speech data, encoded variants of a clip, an isolated cache."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from emotivoice.audio import SAMPLE_RATE, encode_audio, load_audio
from emotivoice.evaluation.datasets import data_dir as locate_data_dir

# container, codec, extension of each format the front end must read
ENCODINGS = {
    "wav": ("wav", "pcm_s16le", "wav"),
    "flac": ("flac", "flac", "flac"),
    "mp3": ("mp3", "libmp3lame", "mp3"),
    "ogg-opus": ("ogg", "libopus", "opus"),
    "m4a-aac": ("mp4", "aac", "m4a"),
    "webm-opus": ("webm", "libopus", "webm"),
}
ENCODE_RATE = {"libopus": 48000}  # Opus only runs at 48 kHz (and a few lower rates)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data folder (``EMOTIVOICE_DATA_DIR`` or ``../shared/data``)."""
    return locate_data_dir()


@pytest.fixture(scope="session")
def jfk_path(data_dir: Path) -> Path:
    return data_dir / "speech" / "jfk.flac"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep joined/converted models in the user's cache unless a test needs its own."""
    os.environ.setdefault("EMOTIVOICE_CACHE_DIR", str(Path.home() / ".cache" / "emotivoice"))
    yield


def encode(samples: np.ndarray, rate: int, path: Path, container: str, codec: str) -> Path:
    """Encode mono float samples to ``path`` with PyAV (what a user's recorder would produce)."""
    target_rate = ENCODE_RATE.get(codec)
    encode_audio(
        samples, container, codec, sample_rate=rate, rate=target_rate, layout="stereo", target=path
    )
    return path


@pytest.fixture(scope="session")
def jfk_samples(jfk_path: Path) -> np.ndarray:
    return load_audio(jfk_path).samples


@pytest.fixture(scope="session")
def encoded_jfk(
    jfk_samples: np.ndarray, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """jfk.flac re-encoded (stereo) in every supported container/codec."""
    folder = tmp_path_factory.mktemp("formats")
    return {
        name: encode(jfk_samples, SAMPLE_RATE, folder / f"jfk-{name}.{ext}", container, codec)
        for name, (container, codec, ext) in ENCODINGS.items()
    }


@pytest.fixture(scope="session")
def tiny_hubert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised HuBERT classifier saved like a hub checkpoint (no download)."""
    pytest.importorskip("transformers")
    import torch
    from transformers import HubertConfig, HubertForSequenceClassification, Wav2Vec2FeatureExtractor

    labels = ["neu", "hap", "ang", "sad", "dis"]
    config = HubertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    folder = tmp_path_factory.mktemp("tiny-hubert")
    torch.manual_seed(0)
    HubertForSequenceClassification(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def short_wav(tmp_path_factory: pytest.TempPathFactory, jfk_path: Path) -> Path:
    """The first 3 s of the JFK clip ("And so, my fellow Americans"), as 16-bit WAV."""
    from scipy.io import wavfile

    from emotivoice.audio import SAMPLE_RATE, load_audio

    samples = load_audio(jfk_path).samples[: 3 * SAMPLE_RATE]
    path = tmp_path_factory.mktemp("short") / "jfk-3s.wav"
    wavfile.write(path, SAMPLE_RATE, (samples * 32767).astype("<i2"))
    return path
