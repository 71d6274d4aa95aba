"""The numpy GE2E speaker encoder: its input matches librosa's, its network PyTorch's, and it
tells real voices apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emotivoice.audio import SAMPLE_RATE, load_audio
from emotivoice.diarization.embedding import WINDOW_FRAMES, load_voice_encoder


def _windows(mel: np.ndarray, hop: int = 50) -> np.ndarray:
    return np.stack([mel[a : a + WINDOW_FRAMES] for a in range(0, len(mel) - WINDOW_FRAMES, hop)])


def test_mel_input_matches_librosa(jfk_samples: np.ndarray) -> None:
    """Resemblyzer feeds ``librosa.feature.melspectrogram(n_fft=400, hop=160, n_mels=40)``."""
    import librosa

    encoder = load_voice_encoder()
    quiet = jfk_samples[: 3 * SAMPLE_RATE] * 0.01  # below -30 dBFS: raised to it first
    ours = encoder.mel(quiet)
    rms = np.sqrt(np.mean(quiet.astype(np.float64) ** 2))
    raised = quiet * 10 ** ((-30 - 20 * np.log10(rms)) / 20)
    reference = librosa.feature.melspectrogram(
        y=raised.astype(np.float32), sr=SAMPLE_RATE, n_fft=400, hop_length=160, n_mels=40
    ).T
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=1e-3, atol=1e-4 * reference.max())


def test_numpy_network_matches_pytorch(jfk_samples: np.ndarray) -> None:
    """The same float16 weights in ``torch.nn.LSTM`` + ``Linear`` give the same embeddings."""
    torch = pytest.importorskip("torch")
    encoder = load_voice_encoder()
    windows = _windows(encoder.mel(jfk_samples))
    lstm = torch.nn.LSTM(40, 256, 3, batch_first=True)
    linear = torch.nn.Linear(256, 256)
    with torch.no_grad():
        for k, (w_ih, w_hh, bias) in enumerate(encoder.layers):
            getattr(lstm, f"weight_ih_l{k}").copy_(torch.from_numpy(w_ih))
            getattr(lstm, f"weight_hh_l{k}").copy_(torch.from_numpy(w_hh))
            getattr(lstm, f"bias_ih_l{k}").copy_(torch.from_numpy(bias))
            getattr(lstm, f"bias_hh_l{k}").zero_()
        linear.weight.copy_(torch.from_numpy(encoder.projection[0]))
        linear.bias.copy_(torch.from_numpy(encoder.projection[1]))
        _, (hidden, _) = lstm(torch.from_numpy(windows))
        raw = torch.relu(linear(hidden[-1]))
        expected = (raw / raw.norm(dim=1, keepdim=True)).numpy()
    ours = encoder.embed(windows)
    assert ours.shape == (len(windows), 256)
    assert np.min(np.sum(ours * expected, axis=1)) > 0.9999


def test_voices_are_told_apart(data_dir: Path) -> None:
    """Neutral clips: each nEMO speaker's clips are closer to each other than to the others'."""
    import csv

    encoder = load_voice_encoder()
    with (data_dir / "nemo" / "data.tsv").open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if r["emotion"] == "neutral"]
    speakers = ("MK0", "SM0", "WR0", "KD0")
    embeddings, labels = [], []
    for speaker in speakers:
        for row in [r for r in rows if r["speaker_id"] == speaker][:4]:
            samples = load_audio(data_dir / "nemo" / "samples" / row["file_id"]).samples
            mel = np.pad(encoder.mel(samples), ((0, WINDOW_FRAMES), (0, 0)))
            vector = encoder.embed(_windows(mel, 75)).mean(axis=0)
            embeddings.append(vector / np.linalg.norm(vector))
            labels.append(speaker)
    matrix = np.stack(embeddings) @ np.stack(embeddings).T
    same = np.equal.outer(labels, labels) & ~np.eye(len(labels), dtype=bool)
    different = ~np.equal.outer(labels, labels)
    assert matrix[same].mean() > matrix[different].mean() + 0.1
    # every clip's nearest other clip is by the same speaker
    np.fill_diagonal(matrix, -1)
    nearest = np.array(labels)[matrix.argmax(axis=1)]
    assert (nearest == np.array(labels)).mean() >= 0.9


def test_the_gpu_twin_equals_the_numpy_encoder(jfk_samples: np.ndarray) -> None:
    """``embed(device=...)``'s PyTorch twin (what ``cuda`` runs; here on the CPU) gives the
    numpy encoder's embeddings, and diarization says which devices it knows."""
    pytest.importorskip("torch")
    from emotivoice.diarization import DiarizationOptions
    from emotivoice.diarization.embedding import _torch_embed
    from emotivoice.errors import InvalidConfigError

    encoder = load_voice_encoder()
    windows = _windows(encoder.mel(jfk_samples), hop=20)
    twin = _torch_embed(encoder, windows, "cpu")
    np.testing.assert_allclose(twin, encoder.embed(windows), atol=1e-5)
    with pytest.raises(InvalidConfigError, match="device must be cpu or cuda"):
        DiarizationOptions(device="gpu")
