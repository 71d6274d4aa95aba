"""Training recipe of the default emotion head (``emotivoice train-emotion``).

Steps, all seeded:

1. every clip is cropped to its speech (the pipeline's VAD) and, besides the clean copy, gets
   ``augment_copies`` randomly augmented ones (speed 0.9–1.1, reverberation, noise at 5–30 dB SNR,
   gain −10…+6 dB);
2. the Whisper encoder turns each copy into the states the head reads at inference
   (``TrainConfig.tap``; by default layer 3 of the encoder run on the clip's own log-mel frames,
   what :mod:`emotivoice.models.encoder_prefix` computes in the pipeline);
3. a statistics-pooling head (mean and standard deviation, standardised, linear by default;
   attentive pooling and a hidden layer are options) is trained with AdamW, label smoothing and
   a loss balanced over classes and corpora;
4. a temperature is fitted on speaker-disjoint validation speakers (calibration);
5. the head is exported as ``.npz`` for the numpy runtime in :mod:`emotivoice.emotion.head`.

Evaluation folds (:func:`run_recipe`) are speaker-disjoint: RAVDESS actor folds and nEMO speaker
folds (training on everything else, both corpora), and cross-corpus runs (train on one corpus
only, test on the other).

Needs the ``torch`` extra. Runs on CPU (slow: the encoder dominates) or CUDA.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from emotivoice.emotion.corpora import LabeledClip
from emotivoice.emotion.labels import BASE_EMOTIONS
from emotivoice.emotion.metrics import classification_report

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of the recipe (the defaults made the shipped model)."""

    epochs: int = 25
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    dropout: float = 0.3
    label_smoothing: float = 0.1
    attention_dim: int = 128
    hidden_dim: int = 0  # 0: linear on the pooled statistics
    augment_copies: int = 2
    pooling: str = "mean_std"  # or "attentive" (attentive statistics pooling)
    layer_norm: bool = False
    batch_norm: bool = True  # standardise the pooled statistics (running mean/var)
    train_on_augmented: bool = True
    seed: int = 0
    # Which encoder states the head reads (see :func:`extract_states`): "prefix3" is layer 3 of
    # the encoder run on the segment's own frames, which carries more emotion than the final
    # layer across corpora (scripts/emotion_layer_study.py); "final" is the pipeline's own pass.
    tap: str = "prefix3"


@dataclass(frozen=True)
class Clip:
    """A speech-cropped 16 kHz waveform with its label."""

    samples: np.ndarray
    emotion: str
    speaker: str
    corpus: str


@dataclass
class StateSet:
    """Encoder states of clips (and their augmented copies), with labels and groups."""

    states: list[np.ndarray]
    labels: np.ndarray
    speakers: np.ndarray
    corpora: np.ndarray
    augmented: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def select(self, mask: np.ndarray) -> StateSet:
        index = np.flatnonzero(mask)
        return StateSet(
            [self.states[i] for i in index],
            self.labels[index],
            self.speakers[index],
            self.corpora[index],
            self.augmented[index],
        )


def crop_to_speech(samples: np.ndarray) -> np.ndarray:
    """The span from the first to the last speech the pipeline's VAD finds (with its padding)."""
    from emotivoice.segmentation import VadOptions, detect_speech

    spans = detect_speech(samples, VadOptions())
    return samples[spans[0].start_sample : spans[-1].end_sample] if spans else samples


def prepare_clips(labeled: Sequence[LabeledClip]) -> list[Clip]:
    """Decode, resample and speech-crop labelled recordings (unreadable ones are skipped)."""
    from emotivoice.audio import load_audio
    from emotivoice.errors import AudioError

    clips = []
    for item in labeled:
        try:
            samples = crop_to_speech(load_audio(item.path).samples)
        except AudioError as error:
            logger.warning("Skipping %s: %s", item.path, error.message)
            continue
        clips.append(Clip(samples, item.emotion, item.speaker, item.corpus))
    return clips


# --- augmentation --------------------------------------------------------------------------


def augment(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random augmentation: speed, reverberation, noise and gain (each with some chance)."""
    y = samples.astype(np.float32)
    if rng.random() < 0.6:  # speed perturbation (changes tempo and pitch, as Kaldi's)
        factor = rng.uniform(0.9, 1.1)
        positions = np.arange(0, len(y) - 1, factor)
        y = np.interp(positions, np.arange(len(y)), y).astype(np.float32)
    if rng.random() < 0.5:  # synthetic room: exponentially decaying noise impulse response
        rt60 = rng.uniform(0.15, 0.8)
        length = int(rt60 * SAMPLE_RATE)
        t = np.arange(length) / SAMPLE_RATE
        rir = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)
        rir[0] = 1.0
        rir /= np.sqrt((rir**2).sum())
        from scipy.signal import fftconvolve

        wet = fftconvolve(y, rir)[: len(y)]
        y = (0.5 * y + 0.5 * wet * np.abs(y).max() / (np.abs(wet).max() + 1e-9)).astype(np.float32)
    if rng.random() < 0.6:  # white or pink noise at 5–30 dB SNR
        noise = rng.standard_normal(len(y))
        if rng.random() < 0.5:
            spectrum = np.fft.rfft(noise) / np.sqrt(np.arange(1, len(noise) // 2 + 2))
            noise = np.fft.irfft(spectrum, len(noise))
        snr = rng.uniform(5, 30)
        power = float(np.mean(y**2)) + 1e-10
        noise *= math.sqrt(power / (np.mean(noise**2) * 10 ** (snr / 10)))
        y = (y + noise).astype(np.float32)
    gain = 10 ** (rng.uniform(-10, 6) / 20)
    return np.clip(y * gain, -1, 1).astype(np.float32)


# --- encoder states --------------------------------------------------------------------------


def encoder_taps(encoder: Any, mel: Any) -> list[Any]:
    """Input embedding, each layer's output and the final normalised output of the encoder.

    Works on any number of mel frames (no 30 s check), so that a prefix of the encoder can run
    on a segment's own frames.
    """
    import torch

    x = torch.nn.functional.gelu(encoder.conv1(mel))
    x = torch.nn.functional.gelu(encoder.conv2(x)).permute(0, 2, 1)
    x = x + encoder.embed_positions.weight[: x.shape[1]]
    taps = [x]
    for layer in encoder.layers:
        x = layer(x, None)
        x = x[0] if isinstance(x, tuple) else x
        taps.append(x)
    taps.append(encoder.layer_norm(x))
    return taps


def extract_states(
    encoder: Any,
    filters: np.ndarray,
    waves: Sequence[np.ndarray],
    device: str = "cpu",
    batch_size: int = 16,
    taps: Sequence[str] = ("final",),
) -> dict[str, list[np.ndarray]]:
    """Encoder states of each wave (float16, speech positions), for each requested tap.

    ``final``: what the pipeline computes (faster-whisper padding, 30 s window, last layer);
    ``layerN``: output of layer N in that same pass; ``prefixN``: output of layer N when the
    encoder runs on the segment's own frames only (no 30 s padding); ``prefixA+B``: the outputs
    of layers A and B of that pass side by side (positions × 2·d_model).
    """
    import torch

    from emotivoice.models.torch_whisper import log_mel, speech_positions

    bank = torch.from_numpy(filters).to(device)
    out: dict[str, list[np.ndarray]] = {tap: [] for tap in taps}
    use_half = device.startswith("cuda")
    for start in range(0, len(waves), batch_size):
        chunk = [w[: 30 * SAMPLE_RATE] for w in waves[start : start + batch_size]]
        keeps = [speech_positions(len(w)) for w in chunk]
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=use_half):
            mels = torch.cat([log_mel(torch.from_numpy(w), bank, "features") for w in chunk])
            if any(not t.startswith("prefix") for t in taps):
                padded = encoder_taps(encoder, mels)
            for tap in taps:
                for i, keep in enumerate(keeps):
                    if tap == "final":
                        state = padded[-1][i, :keep]
                    elif tap.startswith("layer"):
                        state = padded[int(tap[5:])][i, :keep]
                    else:
                        own = encoder_taps(encoder, mels[i : i + 1, :, : 2 * keep])
                        state = torch.cat([own[int(n)][0] for n in tap[6:].split("+")], -1)
                    out[tap].append(state.float().cpu().numpy().astype(np.float16))
    return out


def build_state_set(
    encoder: Any,
    filters: np.ndarray,
    clips: Sequence[Clip],
    config: TrainConfig,
    device: str = "cpu",
) -> StateSet:
    """States (``config.tap``) of every clip and of ``config.augment_copies`` copies of it."""
    return build_state_sets(encoder, filters, clips, config, device, (config.tap,))[config.tap]


def build_state_sets(
    encoder: Any,
    filters: np.ndarray,
    clips: Sequence[Clip],
    config: TrainConfig,
    device: str,
    taps: Sequence[str],
) -> dict[str, StateSet]:
    """States of every clip and its augmented copies for several taps from one encoder pass."""
    rng = np.random.default_rng(config.seed)
    waves, labels, speakers, corpora, augmented = [], [], [], [], []
    for clip in clips:
        copies = [clip.samples] + [augment(clip.samples, rng) for _ in range(config.augment_copies)]
        for i, wave in enumerate(copies):
            waves.append(wave)
            labels.append(BASE_EMOTIONS.index(clip.emotion))
            speakers.append(clip.speaker)
            corpora.append(clip.corpus)
            augmented.append(i > 0)
    states = extract_states(encoder, filters, waves, device, taps=taps)
    meta = (np.array(labels), np.array(speakers), np.array(corpora), np.array(augmented))
    return {tap: StateSet(states[tap], *meta) for tap in taps}


# --- the head ------------------------------------------------------------------------------


def _head_module(d_model: int, config: TrainConfig) -> Any:
    import torch
    from torch import nn

    class AttentiveStatsHead(nn.Module):  # mirrored in numpy by emotion.head.EmotionHead
        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(d_model)
            self.attention = nn.Linear(d_model, config.attention_dim)
            self.score = nn.Linear(config.attention_dim, 1)
            self.hidden = nn.Linear(2 * d_model, max(config.hidden_dim, 1))
            self.out = nn.Linear(config.hidden_dim or 2 * d_model, len(BASE_EMOTIONS))
            self.dropout = nn.Dropout(config.dropout)
            self.standardise = nn.BatchNorm1d(2 * d_model, affine=False)

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            h = self.norm(x) if config.layer_norm else x
            if config.pooling == "attentive":
                e = self.score(torch.tanh(self.attention(h))).squeeze(-1)
            else:
                e = torch.zeros(mask.shape, device=x.device)
            w = torch.softmax(e.masked_fill(~mask, -1e4), dim=-1).unsqueeze(-1)
            mean = (w * h).sum(1)
            std = ((w * h * h).sum(1) - mean**2).clamp_min(1e-6).sqrt()
            z = torch.cat([mean, std], dim=-1)
            z = self.dropout(self.standardise(z) if config.batch_norm else z)
            if config.hidden_dim:
                z = self.dropout(torch.nn.functional.gelu(self.hidden(z)))
            return self.out(z)

    return AttentiveStatsHead()


def _batch(states: Sequence[np.ndarray], device: str) -> tuple[Any, Any]:
    """Zero-padded (n, T, d) float32 states and their (n, T) mask."""
    import torch

    length = max(s.shape[0] for s in states)
    x = np.zeros((len(states), length, states[0].shape[1]), np.float32)
    mask = np.zeros((len(states), length), bool)
    for i, s in enumerate(states):
        x[i, : len(s)] = s
        mask[i, : len(s)] = True
    return torch.from_numpy(x).to(device), torch.from_numpy(mask).to(device)


def _sample_weights(data: StateSet) -> np.ndarray:
    """Each corpus counts equally, and within it each class."""
    weights = np.zeros(len(data.labels))
    corpora = np.unique(data.corpora)
    for corpus in corpora:
        in_corpus = data.corpora == corpus
        classes = np.unique(data.labels[in_corpus])
        for label in classes:
            members = in_corpus & (data.labels == label)
            weights[members] = 1.0 / (members.sum() * len(classes) * len(corpora))
    return weights / weights.mean()


def train_head(data: StateSet, config: TrainConfig, device: str = "cpu") -> Any:
    """Fit the head on ``data``; returns the torch module (eval mode)."""
    import torch

    if not config.train_on_augmented:
        data = data.select(~data.augmented)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    module = _head_module(data.states[0].shape[1], config).to(device)
    optimiser = torch.optim.AdamW(
        module.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    steps = config.epochs * math.ceil(len(data.labels) / config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, config.learning_rate, total_steps=steps
    )
    weights = torch.tensor(_sample_weights(data), dtype=torch.float32, device=device)
    labels = torch.tensor(data.labels, device=device)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="none", label_smoothing=config.label_smoothing)
    # all states padded once on the device (float16); batches are cut from it
    x_all, mask_all = _batch(data.states, "cpu")
    x_all, mask_all = x_all.half().to(device), mask_all.to(device)
    lengths = mask_all.sum(1)
    module.train()
    for _ in range(config.epochs):
        order = torch.from_numpy(rng.permutation(len(data.labels))).to(device)
        for start in range(0, len(order), config.batch_size):
            index = order[start : start + config.batch_size]
            longest = int(lengths[index].max())
            x, mask = x_all[index, :longest].float(), mask_all[index, :longest]
            loss = (loss_fn(module(x, mask), labels[index]) * weights[index]).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    return module.eval()


def predict_logits(module: Any, states: Sequence[np.ndarray], device: str = "cpu") -> np.ndarray:
    """Logits (n, 6) of a trained torch head."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(states), 256):
            x, mask = _batch(states[start : start + 256], device)
            out.append(module(x, mask).float().cpu().numpy())
    return np.concatenate(out)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature minimising the negative log-likelihood (grid + golden refinement)."""

    def nll(t: float) -> float:
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-log_p[np.arange(len(labels)), labels].mean())

    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 60))
    best = float(grid[np.argmin([nll(t) for t in grid])])
    lo, hi = best / 1.1, best * 1.1
    for _ in range(30):
        a, b = lo + 0.382 * (hi - lo), lo + 0.618 * (hi - lo)
        lo, hi = (lo, b) if nll(a) < nll(b) else (a, hi)
    return round((lo + hi) / 2, 4)


def export_head(module: Any, temperature: float, metadata: dict[str, Any]) -> dict[str, np.ndarray]:
    """Arrays for :class:`emotivoice.emotion.head.EmotionHead` (``np.savez`` them)."""
    import json

    arrays = {k: v.detach().float().cpu().numpy() for k, v in module.state_dict().items()}
    arrays["temperature"] = np.array(temperature, np.float32)
    arrays["metadata"] = np.array(json.dumps({"labels": list(BASE_EMOTIONS), **metadata}))
    return arrays


# --- the recipe ----------------------------------------------------------------------------


def _evaluate(train: StateSet, test: StateSet, config: TrainConfig, device: str) -> dict[str, Any]:
    module = train_head(train, config, device)
    clean = test.select(~test.augmented)
    logits = predict_logits(module, clean.states, device)
    return classification_report(clean.labels, logits.argmax(1), BASE_EMOTIONS)


def _folds(speakers: np.ndarray, n: int) -> list[np.ndarray]:
    unique = sorted(set(speakers.tolist()))
    return [np.array(unique[i::n]) for i in range(n)]


def speaker_folds_report(
    data: StateSet,
    speakers: np.ndarray,
    folds: int,
    config: TrainConfig,
    device: str = "cpu",
) -> dict[str, Any]:
    """Hold out ``folds`` groups of ``speakers`` in turn, train on the rest, pool the predictions.

    Test clips are the clean (non-augmented) clips of the held-out speakers.
    """
    pooled_true, pooled_pred = [], []
    for held in _folds(speakers, folds):
        test_mask = np.isin(data.speakers, held)
        train, test = data.select(~test_mask), data.select(test_mask & ~data.augmented)
        module = train_head(train, config, device)
        pooled_true.append(test.labels)
        pooled_pred.append(predict_logits(module, test.states, device).argmax(1))
        logger.info("fold %s done", list(held))
    return classification_report(
        np.concatenate(pooled_true), np.concatenate(pooled_pred), BASE_EMOTIONS
    )


@dataclass(frozen=True)
class RecipeResult:
    """Metrics of every evaluation and the exported arrays of the final model."""

    evaluations: dict[str, dict[str, Any]]
    arrays: dict[str, np.ndarray]
    config: TrainConfig
    calibration_speakers: tuple[str, ...]

    def summary(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "calibration_speakers": list(self.calibration_speakers),
            "evaluations": self.evaluations,
            "temperature": float(self.arrays["temperature"]),
        }


def run_recipe(
    data: StateSet,
    config: TrainConfig,
    device: str = "cpu",
    ravdess_folds: int = 4,
    nemo_folds: int = 3,
    evaluate: bool = True,
    final: bool = True,
) -> RecipeResult:
    """Speaker-disjoint and cross-corpus evaluations, then the final calibrated model."""
    evaluations: dict[str, dict[str, Any]] = {}
    if evaluate:
        for corpus, n in (("ravdess", ravdess_folds), ("nemo", nemo_folds)):
            if corpus not in data.corpora or n < 2:
                continue
            evaluations[f"{corpus}_speaker_disjoint"] = speaker_folds_report(
                data, data.speakers[data.corpora == corpus], n, config, device
            )
        corpora = sorted(set(data.corpora.tolist()))
        for source in corpora:
            for target in corpora:
                if source != target:
                    evaluations[f"cross_{source}_to_{target}"] = _evaluate(
                        data.select(data.corpora == source),
                        data.select(data.corpora == target),
                        config,
                        device,
                    )
    if not final:
        return RecipeResult(evaluations, {}, config, ())
    # final model: calibrate the temperature on held-out speakers of each corpus, then refit all
    calibration = tuple(
        sorted({str(min(data.speakers[data.corpora == c])) for c in set(data.corpora)})
    )
    held = np.isin(data.speakers, calibration)
    probe = train_head(data.select(~held), config, device)
    calib = data.select(held & ~data.augmented)
    temperature = fit_temperature(predict_logits(probe, calib.states, device), calib.labels)
    model = train_head(data, config, device)
    metadata = {
        "config": asdict(config),
        "evaluations": evaluations,
        "temperature": temperature,
        "whisper_model": "base",
    }
    return RecipeResult(evaluations, export_head(model, temperature, metadata), config, calibration)
