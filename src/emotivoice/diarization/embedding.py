"""Speaker embeddings: Resemblyzer's GE2E voice encoder, run in numpy.

The encoder (Wan et al. 2018, "Generalized End-to-End Loss for Speaker Verification"; trained
by Resemble AI on LibriSpeech, VoxCeleb 1 and 2) maps 1.6 s of speech (160 frames of a 40-band
mel power spectrogram, 25 ms windows every 10 ms) through three LSTM layers of 256 units and a
ReLU projection to a 256-dimensional unit vector: two windows of one voice point the same way.
Its weights come from the ``resemblyzer`` 0.1.4 wheel on PyPI (Apache-2.0, see
``weights/LICENSE.md``), converted once to float16 numpy arrays by
``scripts/convert_speaker_encoder.py`` so that nothing downloads and PyTorch is not needed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Protocol

import numpy as np

from emotivoice.audio import SAMPLE_RATE

__all__ = [
    "WINDOW_FRAMES",
    "WINDOW_S",
    "SpeakerEncoder",
    "VoiceEncoder",
    "load_voice_encoder",
    "mel_frames",
]

logger = logging.getLogger(__name__)

HOP = SAMPLE_RATE // 100  # 10 ms between mel frames
N_FFT = SAMPLE_RATE * 25 // 1000  # 25 ms analysis window
WINDOW_FRAMES = 160  # frames per embedded window (Resemblyzer's "partial utterance")
WINDOW_S = WINDOW_FRAMES * HOP / SAMPLE_RATE
_TARGET_DBFS = -30.0  # Resemblyzer's input level; quieter audio is raised to it
_WEIGHTS = "ge2e-resemblyzer.npz"


class SpeakerEncoder(Protocol):
    """Turns windows of mel frames into unit-length speaker embeddings."""

    @property
    def dimension(self) -> int:
        """Length of one embedding."""
        ...

    def embed(self, windows: np.ndarray, device: str = "cpu") -> np.ndarray:
        """``(n, WINDOW_FRAMES, n_mels)`` mel windows → ``(n, dimension)`` unit vectors, computed
        on ``device`` (``cpu`` or ``cuda``)."""
        ...


def mel_frames(samples: np.ndarray, mel_basis: np.ndarray, normalise: bool = True) -> np.ndarray:
    """The encoder's input: a ``(frames, 40)`` mel *power* spectrogram (not log) of 16 kHz audio.

    Matches ``librosa.feature.melspectrogram(n_fft=400, hop_length=160, n_mels=40)``: a periodic
    Hann window, frames centred on multiples of 10 ms with zero padding at the edges. With
    ``normalise`` the level is first raised to -30 dBFS when the audio is quieter, as
    Resemblyzer's preprocessing does (pass ``False`` for pieces of a recording whose level was
    set as a whole).
    """
    x = np.asarray(samples, dtype=np.float32)
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size and normalise else 0.0
    if rms > 0:
        gain = 10 ** ((_TARGET_DBFS - 20 * np.log10(rms)) / 20)
        if gain > 1:
            x = x * np.float32(gain)
    padded = np.pad(x, N_FFT // 2)
    n_frames = 1 + max(0, (padded.size - N_FFT) // HOP)
    if padded.size < N_FFT:
        padded = np.pad(padded, (0, N_FFT - padded.size))
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:n_frames]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    mel: np.ndarray = (power.astype(np.float32) @ mel_basis.T).astype(np.float32)
    return mel


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic
    return out


@dataclass(frozen=True, eq=False)
class VoiceEncoder:
    """The GE2E voice encoder: a 3-layer LSTM and a projection, in numpy (float32 compute).

    Attributes:
        layers: per LSTM layer ``(W_ih, W_hh, bias)`` with PyTorch's gate order i, f, g, o.
        projection: ``(weight, bias)`` of the final linear layer.
        mel_basis: the ``(40, 201)`` mel filterbank of the encoder's input.
    """

    layers: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]
    projection: tuple[np.ndarray, np.ndarray]
    mel_basis: np.ndarray

    @property
    def dimension(self) -> int:
        """256: the length of one embedding."""
        return int(self.projection[0].shape[0])

    def mel(self, samples: np.ndarray, normalise: bool = True) -> np.ndarray:
        """:func:`mel_frames` with this encoder's filterbank."""
        return mel_frames(samples, self.mel_basis, normalise)

    def embed(self, windows: np.ndarray, batch: int = 256, device: str = "cpu") -> np.ndarray:
        """``(n, frames, 40)`` mel windows → ``(n, 256)`` unit embeddings (batched).

        On the CPU the recurrence is 480 small matrix products in a row; BLAS runs them on one
        thread, where waking a second one costs more than it saves (and steals from other work).
        On ``cuda`` the same weights run as a PyTorch LSTM (cuDNN, float32, no TF32), all the
        windows at once (embeddings within about 1e-5 of the numpy ones).
        """
        from threadpoolctl import threadpool_limits

        if len(windows) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if device != "cpu":
            return _torch_embed(self, windows, device)
        with threadpool_limits(1, user_api="blas"):
            return np.concatenate(
                [self._forward(windows[i : i + batch]) for i in range(0, len(windows), batch)]
            )

    def _forward(self, x: np.ndarray) -> np.ndarray:
        sequence = np.asarray(x, dtype=np.float32)
        n, steps, _ = sequence.shape
        hidden = np.zeros((n, 0), dtype=np.float32)
        for w_ih, w_hh, bias in self.layers:
            size = w_hh.shape[1]
            # The input projection of every step at once (one large product), then the recurrence.
            gates_in = (sequence.reshape(n * steps, -1) @ w_ih.T + bias).reshape(n, steps, -1)
            hidden = np.zeros((n, size), dtype=np.float32)
            cell = np.zeros((n, size), dtype=np.float32)
            outputs = np.empty((n, steps, size), dtype=np.float32)
            for t in range(steps):
                gates = gates_in[:, t] + hidden @ w_hh.T
                i = _sigmoid(gates[:, :size])
                f = _sigmoid(gates[:, size : 2 * size])
                g = np.tanh(gates[:, 2 * size : 3 * size])
                o = _sigmoid(gates[:, 3 * size :])
                cell = f * cell + i * g
                hidden = o * np.tanh(cell)
                outputs[:, t] = hidden
            sequence = outputs
        weight, bias = self.projection
        embedded = np.maximum(hidden @ weight.T + bias, 0.0)
        norms = np.linalg.norm(embedded, axis=1, keepdims=True)
        result: np.ndarray = (embedded / np.maximum(norms, 1e-12)).astype(np.float32)
        return result


_twins: dict[tuple[int, str], Any] = {}
_twins_lock = threading.Lock()


def _torch_twin(encoder: VoiceEncoder, device: str) -> Any:
    """The encoder as PyTorch modules on ``device`` (built once per encoder and device)."""
    import torch

    key = (id(encoder), device)
    with _twins_lock:
        if key not in _twins:
            size = encoder.layers[0][1].shape[1]
            lstm = torch.nn.LSTM(encoder.layers[0][0].shape[1], size, len(encoder.layers))
            lstm.batch_first = True
            with torch.no_grad():
                for k, (w_ih, w_hh, b) in enumerate(encoder.layers):
                    getattr(lstm, f"weight_ih_l{k}").copy_(torch.from_numpy(w_ih))
                    getattr(lstm, f"weight_hh_l{k}").copy_(torch.from_numpy(w_hh))
                    getattr(lstm, f"bias_ih_l{k}").copy_(torch.from_numpy(b))
                    getattr(lstm, f"bias_hh_l{k}").zero_()
            weight, bias = (torch.from_numpy(a).to(device) for a in encoder.projection)
            # the encoder is kept with its twin so that its id is not reused while cached
            _twins[key] = (lstm.to(device).eval(), weight, bias, encoder)
        return _twins[key]


def _torch_embed(encoder: VoiceEncoder, windows: np.ndarray, device: str) -> np.ndarray:
    import torch

    lstm, weight, bias, _ = _torch_twin(encoder, device)
    with (
        torch.inference_mode(),
        torch.backends.cudnn.flags(enabled=True, allow_tf32=False),
    ):
        x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)).to(device)
        _, (hidden, _) = lstm(x)
        embedded = torch.relu(hidden[-1] @ weight.T + bias)
        norms = torch.linalg.vector_norm(embedded, dim=1, keepdim=True)
        result: np.ndarray = (embedded / torch.clamp(norms, min=1e-12)).cpu().numpy()
    return result.astype(np.float32)


@cache
def load_voice_encoder() -> VoiceEncoder:
    """The shipped GE2E encoder (loaded once per process, about 20 ms)."""
    path = resources.files("emotivoice.diarization").joinpath(f"weights/{_WEIGHTS}")
    with path.open("rb") as handle, np.load(handle) as data:
        arrays = {name: data[name].astype(np.float32) for name in data.files}
    layers = tuple(
        (
            arrays[f"lstm_weight_ih_l{k}"],
            arrays[f"lstm_weight_hh_l{k}"],
            arrays[f"lstm_bias_ih_l{k}"] + arrays[f"lstm_bias_hh_l{k}"],
        )
        for k in range(3)
    )
    logger.debug("Loaded the GE2E speaker encoder")
    return VoiceEncoder(
        layers=layers,
        projection=(arrays["linear_weight"], arrays["linear_bias"]),
        mel_basis=arrays["mel_basis"],
    )
