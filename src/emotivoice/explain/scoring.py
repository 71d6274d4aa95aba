"""The model function explanations query: waveform → base-emotion probabilities.

Explaining one segment costs dozens of model evaluations. For the default head each one is the
log-mel of the wave and three Whisper-base encoder layers over the segment's own positions
(:mod:`emotivoice.models.encoder_prefix`); perturbations of one segment share its length, so
they run as one batch. For a head on the final encoder states (``tap: final``, the former
default) each evaluation is a full encoder pass over a 30 s window (3000 log-mel frames,
however short the segment), and the scorer is built for throughput without changing what it
computes (the tests check both paths against the pipeline's own):

- only the encoder runs, never the decoder;
- the log-mel features of a batch are computed in one vectorised pass per wave length (all
  coalitions of a segment share its length) and written into one zero-filled 3000-frame buffer:
  the padding region, zeros in log-mel space as faster-whisper pads it, is never computed;
- on CPU, ``cpu_threads`` single-threaded encoder replicas (CTranslate2 ``inter_threads``,
  sharing one copy of the weights) encode different waves at the same time. On the 2-core
  machine two 1-thread replicas encode about 20–25 % more waves per second than one 2-thread
  encoder (``benchmarks/explain_cost.py --reference`` prints both): the int8 encoder has many
  small operations whose thread synchronisation costs more than it saves, and on a shared
  machine a descheduled thread then holds up only its own wave.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from emotivoice.emotion.backends import EmotionOptions, WhisperHeadBackend, load_backend
from emotivoice.emotion.batched import PrefixRunner, check_torch_device
from emotivoice.emotion.head import whisper_feature_extractor
from emotivoice.explain.attribution import BatchScorer

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

__all__ = ["WhisperHeadScorer", "emotion_scorer"]

N_MEL_FRAMES = 3000  # log-mel frames of one 30 s Whisper window, what the encoder always reads
_STFT_PADDING = 160  # samples faster-whisper's FeatureExtractor appends before its STFT
_LOG_MEL_RANGE = 8.0  # log10 units kept below each wave's maximum (Whisper's dynamic range)
_PREFIX_BATCH = 16  # waves per batched encoder-prefix pass (memory stays under ~100 MB)


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


class WhisperHeadScorer:
    """Scores waveforms with the Whisper encoder and a trained emotion head, in batches.

    Args:
        backend: the emotion head (default or a trained one).
        whisper_model: the Whisper model whose encoder states the head reads.
        cpu_threads: CPU threads for the encoder (0: every core this process may use).
        replicas: encoder replicas working in parallel on CPU (0: one per thread; 1 with
            ``cpu_threads=2`` is the former single two-thread encoder). Ignored on CUDA.
        device: ``auto``, ``cpu`` or ``cuda``: for a head with its own encoder prefix (the
            default) where the prefix's PyTorch twin runs (``auto``: a GPU when PyTorch sees
            one; ``cuda`` needs PyTorch and a GPU, else :class:`InvalidConfigError`); for a head
            on the final encoder states, where CTranslate2 runs the encoder.
        precision: the prefix twin's number format (see
            :class:`~emotivoice.emotion.batched.PrefixRunner`): ``auto`` (default) is bfloat16
            on a CPU that computes it natively, about twice as fast as float32 for the same
            faithfulness (``benchmarks/explain_cost.py``); ``float32`` gives exact values.
    """

    def __init__(
        self,
        backend: WhisperHeadBackend,
        whisper_model: str = "base",
        cpu_threads: int = 0,
        replicas: int = 0,
        device: str = "auto",
        precision: str = "auto",
    ) -> None:
        from emotivoice.models.whisper import default_compute_type, load_model, resolve_device

        threads = cpu_threads or _usable_cpus()
        self.backend = backend
        self.threads = threads  # BLAS threads of a prefix head's batched passes (nothing else runs)
        self._runner: PrefixRunner | None = None
        self._pool: ThreadPoolExecutor | None = None
        if backend.head.prefix_layers:
            # only the prefix runs (PyTorch's device); Whisper gives its feature extractor
            self.device = _torch_device(device)
            self.replicas = 1
            self._runner = PrefixRunner(backend.head, self.device, threads, precision)
            self.model: WhisperModel | None = None
            self.extractor: Any = whisper_feature_extractor()  # the pipeline's (Whisper's 80 mels)
            return
        resolved = resolve_device(device)
        self.replicas = max(1, replicas or threads) if resolved == "cpu" else 1
        intra_threads = max(1, threads // self.replicas) if resolved == "cpu" else cpu_threads
        self.device = resolved
        self.model = load_model(
            whisper_model, resolved, default_compute_type(resolved), intra_threads, self.replicas
        )
        self.extractor = self.model.feature_extractor
        if self.replicas > 1:
            self._pool = ThreadPoolExecutor(self.replicas, thread_name_prefix="emotivoice-encoder")

    def log_mel(self, waves: Sequence[np.ndarray]) -> tuple[np.ndarray, list[int]]:
        """Padded log-mel features ``(batch, n_mels, 3000)`` and each wave's audio frames.

        Equal to faster-whisper's ``FeatureExtractor`` then ``pad_or_trim`` on every wave.
        """
        extractor = self.extractor
        n_mels = extractor.mel_filters.shape[0]
        features = np.zeros((len(waves), n_mels, N_MEL_FRAMES), dtype=np.float32)
        n_frames = [0] * len(waves)
        by_length: dict[int, list[int]] = {}
        for i, wave in enumerate(waves):
            by_length.setdefault(len(wave), []).append(i)
        window = np.hanning(extractor.n_fft + 1)[:-1].astype(np.float32)
        for indices in by_length.values():
            batch = np.stack([np.asarray(waves[i], dtype=np.float32) for i in indices])
            batch = np.pad(batch, ((0, 0), (0, _STFT_PADDING)))
            stft = extractor.stft(
                batch, extractor.n_fft, extractor.hop_length, window=window, return_complex=True
            ).astype(np.complex64)
            mel = extractor.mel_filters @ (np.abs(stft[..., :-1]) ** 2)
            log_spec = np.log10(np.clip(mel, 1e-10, None))
            peak = log_spec.max(axis=(1, 2), keepdims=True)
            log_spec = (np.maximum(log_spec, peak - _LOG_MEL_RANGE) + 4.0) / 4.0
            kept = min(log_spec.shape[-1], N_MEL_FRAMES)
            features[indices, :, :kept] = log_spec[..., :kept]
            for i in indices:
                n_frames[i] = log_spec.shape[-1] - 1
        return features, n_frames

    def __call__(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        from emotivoice.transcription import EncodedSegment

        features, n_frames = self.log_mel(waves)
        if self.backend.head.prefix_layers:
            return self._prefix_scores(features, n_frames)

        model = self.model
        if model is None:  # unreachable: a scorer without a prefix loads Whisper
            raise RuntimeError("the scorer has no Whisper encoder")

        def score(i: int) -> np.ndarray:
            encoded = EncodedSegment(
                features=features[i, :, : n_frames[i] + 1],
                encoder_output=model.encode(features[i]),
                n_frames=n_frames[i],
            )
            return self.backend.probabilities(waves[i], encoded)

        indices = range(len(waves))
        rows = list(self._pool.map(score, indices) if self._pool else map(score, indices))
        return np.stack(rows) if rows else np.zeros((0, 0))

    def _prefix_scores(self, features: np.ndarray, n_frames: list[int]) -> np.ndarray:
        """A head on its own encoder prefix: no full encoder pass, waves of one length batched."""
        from emotivoice.transcription import EncodedSegment

        head = self.backend.head
        rows: list[np.ndarray] = [np.zeros(0)] * len(n_frames)
        by_frames: dict[int, list[int]] = {}
        for i, n in enumerate(n_frames):
            by_frames.setdefault(n, []).append(i)
        for n, indices in by_frames.items():
            for start in range(0, len(indices), _PREFIX_BATCH):
                chunk = indices[start : start + _PREFIX_BATCH]
                mel = np.stack([EncodedSegment.own_frames(features[i], n) for i in chunk])
                states_batch = self._prefix_states(mel)
                for i, states in zip(chunk, states_batch, strict=True):
                    rows[i] = head.probabilities(states)
        return np.stack(rows) if rows else np.zeros((0, 0))

    def _prefix_states(self, mel: np.ndarray) -> np.ndarray:
        """The head's input for a batch of equal-length log-mel windows: the prefix's PyTorch
        twin when PyTorch is installed (the ``explain`` extra; fused attention and GELU make a
        batch 2-4x faster on a CPU than the numpy runtime, measured on 16 waves of 10 s), on
        the scorer's device; the numpy prefix the pipeline uses otherwise."""
        if self._runner is None:  # unreachable: only prefix heads come here
            raise RuntimeError("the scorer's head has no encoder prefix")
        return np.stack(self._runner.states(list(mel)))


def _torch_device(device: str) -> str:
    """Where a prefix head's PyTorch twin runs: ``auto`` is ``cuda`` when PyTorch sees a GPU."""
    if device != "auto":
        check_torch_device(device)
        return device
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def emotion_scorer(
    options: EmotionOptions | None = None,
    whisper_model: str = "base",
    cpu_threads: int = 0,
    replicas: int = 0,
    device: str = "auto",
    precision: str = "auto",
) -> BatchScorer:
    """A batch scorer running the pipeline's encoder and the emotion backend on each waveform.

    ``cpu_threads``, ``replicas`` and ``precision`` set the default model's encoder threading
    and number format (see :class:`WhisperHeadScorer`); ``device`` (``cpu``, ``cuda``,
    ``auto``) is where the Whisper-head models run; Hugging Face backends score one waveform at
    a time on ``options.device``.
    """
    backend = load_backend(options or EmotionOptions())
    if isinstance(backend, WhisperHeadBackend):
        return WhisperHeadScorer(backend, whisper_model, cpu_threads, replicas, device, precision)

    def score(waves: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([backend.probabilities(np.asarray(w, np.float32), None) for w in waves])

    return score
