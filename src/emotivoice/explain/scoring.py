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
from emotivoice.errors import InvalidConfigError
from emotivoice.explain.attribution import BatchScorer

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

__all__ = ["PRECISIONS", "WhisperHeadScorer", "emotion_scorer"]

#: number formats of the PyTorch encoder prefix: ``auto`` is bfloat16 on a CPU that computes it
#: natively (AVX512-BF16 or AMX) and float32 elsewhere
PRECISIONS = ("auto", "float32", "bfloat16")

N_MEL_FRAMES = 3000  # log-mel frames of one 30 s Whisper window, what the encoder always reads
_STFT_PADDING = 160  # samples faster-whisper's FeatureExtractor appends before its STFT
_LOG_MEL_RANGE = 8.0  # log10 units kept below each wave's maximum (Whisper's dynamic range)
_PREFIX_BATCH = 16  # waves per batched encoder-prefix pass (memory stays under ~100 MB)


def _native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), as PyTorch sees it;
    elsewhere bfloat16 is emulated and slower than float32."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


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
        device: ``auto``, ``cpu`` or ``cuda``.
        precision: one of :data:`PRECISIONS`, for the PyTorch twin of a prefix head's encoder
            layers. bfloat16 weights and activations cost 0.57x the CPU time of float32 on a
            CPU with native bfloat16 (16 waves of 10 s), with probabilities within 0.005 and
            the same top emotion (``tests/explain``; faithfulness in
            ``benchmarks/explain_cost.py``).

    Raises:
        InvalidConfigError: an unknown precision.
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

        if precision not in PRECISIONS:
            raise InvalidConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
        self.precision = precision

        resolved = resolve_device(device)
        threads = cpu_threads or _usable_cpus()
        self.replicas = max(1, replicas or threads) if resolved == "cpu" else 1
        intra_threads = max(1, threads // self.replicas) if resolved == "cpu" else cpu_threads
        self.backend = backend
        self.device = resolved
        self.threads = threads  # BLAS threads of a prefix head's batched passes (nothing else runs)
        self._torch_prefix: Any = None  # built on first use: see _prefix_states
        self._dtype: Any = None  # its number format
        self.model: WhisperModel = load_model(
            whisper_model, resolved, default_compute_type(resolved), intra_threads, self.replicas
        )
        self._pool = (
            ThreadPoolExecutor(self.replicas, thread_name_prefix="emotivoice-encoder")
            if self.replicas > 1
            else None
        )

    def log_mel(self, waves: Sequence[np.ndarray]) -> tuple[np.ndarray, list[int]]:
        """Padded log-mel features ``(batch, n_mels, 3000)`` and each wave's audio frames.

        Equal to faster-whisper's ``FeatureExtractor`` then ``pad_or_trim`` on every wave.
        """
        extractor = self.model.feature_extractor
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

        def score(i: int) -> np.ndarray:
            encoded = EncodedSegment(
                features=features[i, :, : n_frames[i] + 1],
                encoder_output=self.model.encode(features[i]),
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
        """The head's input for a batch of equal-length log-mel windows.

        With PyTorch installed (the ``explain`` extra) the prefix runs as its PyTorch twin, with
        the very same weights: fused attention and GELU make a batch 2-4x faster on a CPU than
        the numpy runtime (measured on 16 waves of 10 s), and ``device="cuda"`` runs it on the
        accelerator. Without PyTorch the numpy prefix the pipeline uses runs.
        """
        head = self.backend.head
        if self._torch_prefix is None:
            try:
                import torch
            except ImportError:
                self._torch_prefix = False
            else:
                from emotivoice.models.torch_prefix import TorchEncoderPrefix

                module = TorchEncoderPrefix.from_prefix(
                    head.encoder_prefix(), max(head.prefix_layers)
                )
                bfloat16 = self.precision == "bfloat16" or (
                    self.precision == "auto" and self.device == "cpu" and _native_bfloat16()
                )
                self._dtype = torch.bfloat16 if bfloat16 else torch.float32
                self._torch_prefix = module.to(self.device, self._dtype)
        if self._torch_prefix is False:
            return head.prefix_states(mel, threads=self.threads)
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                outputs = self._torch_prefix(torch.from_numpy(mel).to(self.device, self._dtype))
                states = torch.cat([outputs[n] for n in head.prefix_layers], dim=-1)
                return np.asarray(states.float().cpu().numpy(), dtype=np.float32)
        finally:
            torch.set_num_threads(threads)


def emotion_scorer(
    options: EmotionOptions | None = None,
    whisper_model: str = "base",
    cpu_threads: int = 0,
    replicas: int = 0,
    precision: str = "auto",
) -> BatchScorer:
    """A batch scorer running the pipeline's encoder and the emotion backend on each waveform.

    ``cpu_threads``, ``replicas`` and ``precision`` set the default model's encoder threading
    and number format (see :class:`WhisperHeadScorer`); Hugging Face backends score one
    waveform at a time.
    """
    backend = load_backend(options or EmotionOptions())
    if isinstance(backend, WhisperHeadBackend):
        return WhisperHeadScorer(backend, whisper_model, cpu_threads, replicas, precision=precision)

    def score(waves: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([backend.probabilities(np.asarray(w, np.float32), None) for w in waves])

    return score
