"""Training recipe of the default emotion head (``emotivoice train-emotion``).

Steps, all seeded:

1. every clip is cropped to its speech (the pipeline's VAD) and, besides the clean copy, gets
   ``augment_copies`` randomly augmented ones (speed 0.9–1.1, reverberation, noise at 5–30 dB SNR,
   gain −10…+6 dB);
2. the Whisper encoder turns each copy into the states the head reads at inference
   (``TrainConfig.tap``; by default layer 4 of the encoder run on the clip's own log-mel frames,
   what :mod:`emotivoice.models.encoder_prefix` computes in the pipeline);
3. a statistics-pooling head (mean and standard deviation, standardised, linear by default;
   attentive pooling and a hidden layer are options) is trained with AdamW, label smoothing and
   a loss balanced over classes and corpora, by default with LoRA fine-tuning of the encoder
   layers it reads, ``soup`` times from one initialisation, and the fits' weights are averaged
   into one model (:func:`fit_head`, :func:`soup_arrays`);
4. a temperature is fitted on speaker-disjoint validation speakers (calibration);
5. the head is exported as ``.npz`` for the numpy runtime in :mod:`emotivoice.emotion.head`.

Evaluation folds (:func:`run_recipe`) are speaker-disjoint: RAVDESS actor folds and nEMO speaker
folds (training on everything else, both corpora), and cross-corpus runs (train on one corpus
only, test on the other).

Needs the ``torch`` extra. Runs on CPU (slow: the encoder dominates) or CUDA.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from emotivoice.emotion.corpora import LabeledClip
from emotivoice.emotion.labels import BASE_EMOTIONS
from emotivoice.emotion.metrics import classification_report
from emotivoice.errors import InvalidConfigError

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of the recipe (the defaults made the shipped model)."""

    epochs: int = 10
    # More epochs than ``epochs`` when a small training set would get fewer optimiser steps than
    # this (0: off). One fit on RAVDESS alone (1,038 clips) takes 33 steps an epoch, 330 in all:
    # at 40 epochs (1,320 steps) six of six seeds scored higher on nEMO, and so did both soups
    # of three (model card). The recipe's calibration and final fits make more steps already.
    min_steps: int = 1300
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    dropout: float = 0.3
    label_smoothing: float = 0.1
    attention_dim: int = 128
    hidden_dim: int = 0  # 0: linear on the pooled statistics
    augment_copies: int = 3
    pooling: str = "mean_std"  # or "attentive" (attentive statistics pooling)
    layer_norm: bool = False
    batch_norm: bool = True  # standardise the pooled statistics (running mean/var)
    train_on_augmented: bool = True
    seed: int = 0
    # A uniform weight-averaged "soup" of this many fits (:func:`fit_head`): its members share
    # ``seed`` (augmented copies and initialisation) and differ in batch order, dropout and
    # masking; ``member`` numbers them (0 is the plain recipe's fit). Averaging the weights
    # helps as an ensemble of the members does, at one member's inference cost (model card).
    soup: int = 3
    member: int = 0
    # Which encoder states the head reads (see :func:`extract_states`): "prefix4" is layer 4 of
    # the encoder run on the segment's own frames; the early layers carry more emotion than the
    # final one across corpora (scripts/emotion_layer_study.py), and fine-tuning four layers
    # beat three (model card); "final" is the pipeline's own pass.
    tap: str = "prefix4"
    # Fine-tuning of that encoder prefix with the head: LoRA rank of its linear layers (0 keeps
    # the encoder frozen and trains the head alone on precomputed states), LoRA scale α, the
    # adapters' learning rate, whether its layer norms are tuned too, and SpecAugment-style
    # masking of one mel band and one span of frames per training example.
    adapter_rank: int = 16
    adapter_alpha: float = 16.0
    adapter_learning_rate: float = 1e-3
    adapter_norms: bool = True
    spec_augment: bool = True
    # Batches of similar lengths (less padding, faster on a GPU): each epoch's shuffled order is
    # cut into runs of this many batches, each run sorted by length; 0: plain shuffled batches.
    length_buckets: int = 16
    # Regularisers of the fine-tuned path, for recordings unlike the training corpora: a random
    # smooth equaliser of up to this many dB on each example's log-mel (microphone and room
    # colouring, :func:`channel_eq`; 0: off), and mixup of the pooled statistics of example
    # pairs with a Beta(α, α) weight (Zhang et al. 2018; α 0: off).
    channel_eq_db: float = 0.0
    mixup_alpha: float = 0.0

    def __post_init__(self) -> None:
        from emotivoice.emotion.head import prefix_layers

        if self.soup < 1:
            raise InvalidConfigError(f"soup is a number of fits (1 or more), not {self.soup}")
        if self.min_steps < 0:
            raise InvalidConfigError(
                f"min_steps is 0 (off) or a number of steps, not {self.min_steps}"
            )
        if self.adapter_rank and not prefix_layers(self.tap):
            raise InvalidConfigError(
                f"adapter_rank > 0 fine-tunes an encoder prefix: use a prefixN tap, not {self.tap}"
            )


@dataclass(frozen=True)
class Clip:
    """A speech-cropped 16 kHz waveform with its label."""

    samples: np.ndarray
    emotion: str
    speaker: str
    corpus: str


@dataclass
class StateSet:
    """The head's inputs for clips (and their augmented copies), with labels and groups.

    ``states`` are encoder states ``(positions, features)``, or, to fine-tune the encoder
    prefix (``TrainConfig.adapter_rank``), the clips' own log-mel frames ``(frames, n_mels)``;
    then ``variables`` holds the Whisper encoder's CTranslate2 variables that the prefix starts
    from.
    """

    states: list[np.ndarray]
    labels: np.ndarray
    speakers: np.ndarray
    corpora: np.ndarray
    augmented: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    variables: Mapping[str, Any] | None = None

    def select(self, mask: np.ndarray) -> StateSet:
        index = np.flatnonzero(mask)
        return StateSet(
            [self.states[i] for i in index],
            self.labels[index],
            self.speakers[index],
            self.corpora[index],
            self.augmented[index],
            self.variables,
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
    of layers A and B of that pass side by side (positions × 2·d_model); ``mel``: the log-mel
    frames of the speech positions themselves, ``(2·positions, n_mels)``, what a fine-tuned
    prefix reads.
    """
    import torch

    from emotivoice.models.torch_whisper import log_mel, speech_positions

    bank = torch.from_numpy(filters).to(device)
    out: dict[str, list[np.ndarray]] = {tap: [] for tap in taps}
    use_half = device.startswith("cuda")
    for start in range(0, len(waves), batch_size):
        chunk = [w[: 30 * SAMPLE_RATE] for w in waves[start : start + batch_size]]
        keeps = [speech_positions(len(w)) for w in chunk]
        with torch.no_grad():  # the log-mel in float32, as the pipeline computes it
            mels = torch.cat([log_mel(torch.from_numpy(w), bank, "features") for w in chunk])
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=use_half):
            if any(not t.startswith(("prefix", "mel")) for t in taps):
                padded = encoder_taps(encoder, mels)
            for tap in taps:
                for i, keep in enumerate(keeps):
                    if tap == "mel":
                        state = mels[i, :, : 2 * keep].T
                    elif tap == "final":
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
    variables: Mapping[str, Any] | None = None,
) -> StateSet:
    """The head's inputs for every clip and ``config.augment_copies`` copies of it.

    With a frozen encoder, its states (``config.tap``); to fine-tune the prefix
    (``config.adapter_rank``), the clips' log-mel frames and the encoder's CTranslate2
    ``variables`` (:func:`encoder_variables`; ``encoder`` is then unused).
    """
    if not config.adapter_rank:
        return build_state_sets(encoder, filters, clips, config, device, (config.tap,))[config.tap]
    if variables is None:
        raise InvalidConfigError("Fine-tuning the encoder prefix needs its variables")
    data = build_state_sets(encoder, filters, clips, config, device, ("mel",))["mel"]
    return dataclasses.replace(data, variables=variables)


@functools.lru_cache(maxsize=2)
def encoder_variables(model: str = "base") -> Mapping[str, Any]:
    """The encoder's CTranslate2 variables of a Whisper model (what a fine-tuned prefix starts
    from), read once per process; treat them as read-only."""
    from emotivoice.models.ct2_reader import read_ct2_model
    from emotivoice.models.registry import resolve_whisper_model

    variables = read_ct2_model(resolve_whisper_model(model)).variables
    return {k: v for k, v in variables.items() if k.startswith("encoder/")}


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


def _head_module(
    d_model: int, config: TrainConfig, variables: Mapping[str, Any] | None = None
) -> Any:
    """The head as a torch module over states of width ``d_model``.

    Given the encoder's ``variables``, the module starts with the encoder prefix of the head's
    tap (:class:`~emotivoice.models.torch_prefix.TorchEncoderPrefix`, with LoRA adapters of
    ``config.adapter_rank``) and reads log-mel frames ``(batch, frames, n_mels)`` with a frame
    mask instead of states.
    """
    import torch
    from torch import nn

    from emotivoice.emotion.head import prefix_layers

    layers = prefix_layers(config.tap)
    prefix = None
    if variables is not None:
        from emotivoice.models.torch_prefix import TorchEncoderPrefix

        prefix = TorchEncoderPrefix(
            variables,
            max(layers),
            config.adapter_rank,
            config.adapter_alpha,
            config.adapter_norms and config.adapter_rank > 0,
        )
        d_model = prefix.d_model * len(layers)

    class AttentiveStatsHead(nn.Module):  # mirrored in numpy by emotion.head.EmotionHead
        def __init__(self) -> None:
            super().__init__()
            self.prefix = prefix
            self.norm = nn.LayerNorm(d_model)
            self.attention = nn.Linear(d_model, config.attention_dim)
            self.score = nn.Linear(config.attention_dim, 1)
            self.hidden = nn.Linear(2 * d_model, max(config.hidden_dim, 1))
            self.out = nn.Linear(config.hidden_dim or 2 * d_model, len(BASE_EMOTIONS))
            self.dropout = nn.Dropout(config.dropout)
            self.standardise = nn.BatchNorm1d(2 * d_model, affine=False)

        def forward(
            self,
            x: torch.Tensor,
            mask: torch.Tensor,
            mix: tuple[torch.Tensor, float] | None = None,
        ) -> torch.Tensor:
            """Logits; ``mix`` ``(partners, λ)`` mixes each example's pooled statistics with
            its partner's (training only)."""
            if self.prefix is not None:  # log-mel frames → the tapped layers' states
                mask = mask[:, ::2]
                taps = self.prefix(x.transpose(1, 2), mask)
                x = torch.cat([taps[n] for n in layers], dim=-1).float()
            h = self.norm(x) if config.layer_norm else x
            if config.pooling == "attentive":
                e = self.score(torch.tanh(self.attention(h))).squeeze(-1)
            else:
                e = torch.zeros(mask.shape, device=x.device)
            w = torch.softmax(e.masked_fill(~mask, -1e4), dim=-1).unsqueeze(-1)
            mean = (w * h).sum(1)
            std = ((w * h * h).sum(1) - mean**2).clamp_min(1e-6).sqrt()
            z = torch.cat([mean, std], dim=-1)
            z = self.standardise(z) if config.batch_norm else z
            if mix is not None:
                z = mix[1] * z + (1 - mix[1]) * z[mix[0]]
            z = self.dropout(z)
            if config.hidden_dim:
                z = self.dropout(torch.nn.functional.gelu(self.hidden(z)))
            return self.out(z)

    return AttentiveStatsHead()


def _batch(
    states: Sequence[np.ndarray], device: str, dtype: type[np.floating[Any]] = np.float32
) -> tuple[Any, Any]:
    """Zero-padded (n, T, d) states and their (n, T) mask."""
    import torch

    length = max(s.shape[0] for s in states)
    x = np.zeros((len(states), length, states[0].shape[1]), dtype)
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


def spec_augment(x: Any, mask: Any, max_bins: int = 8, max_frames: int = 20) -> Any:
    """Set one band of up to ``max_bins`` mel bins and one span of up to ``max_frames`` frames of
    each log-mel ``(batch, frames, n_mels)`` to its mean (SpecAugment, Park et al. 2019)."""
    import torch

    batch, frames, bins = x.shape
    device = x.device
    fill = (x * mask[..., None]).sum((1, 2), keepdim=True) / (mask.sum(1) * bins).view(-1, 1, 1)
    low = torch.randint(0, bins - max_bins, (batch, 1, 1), device=device)
    band = torch.arange(bins, device=device).view(1, 1, -1) - low
    width = torch.randint(0, max_bins + 1, (batch, 1, 1), device=device)
    length = mask.sum(1).view(-1, 1, 1)
    start = (torch.rand(batch, 1, 1, device=device) * (length - max_frames).clamp_min(1)).long()
    span = torch.arange(frames, device=device).view(1, -1, 1) - start
    duration = torch.randint(0, max_frames + 1, (batch, 1, 1), device=device)
    hidden = ((band >= 0) & (band < width)) | ((span >= 0) & (span < duration))
    return torch.where(hidden & mask[..., None], fill, x)


def channel_eq(x: Any, mask: Any, max_db: float) -> Any:
    """Colour each log-mel ``(batch, frames, n_mels)`` with a random smooth equaliser: a tilt
    across the mel bins and one bell of random centre and width, each of up to ``max_db`` dB
    (Whisper's log-mel is log10 power / 4, so ``g`` dB adds ``g / 40``)."""
    import torch

    batch, _, bins = x.shape
    device = x.device

    def uniform(low: float, high: float) -> Any:
        return torch.empty(batch, 1, 1, device=device).uniform_(low, high)

    k = torch.linspace(-1, 1, bins, device=device).view(1, 1, -1)
    tilt = uniform(-max_db, max_db) * k
    width = uniform(0.1, 0.6)
    bell = uniform(-max_db, max_db) * torch.exp(-(((k - uniform(-1, 1)) / width) ** 2))
    return x + (tilt + bell) / 40 * mask[..., None]


def _epoch_batches(
    lengths: np.ndarray, config: TrainConfig, rng: np.random.Generator
) -> list[np.ndarray]:
    """One epoch's batches of indices into examples of ``lengths`` (see
    ``TrainConfig.length_buckets``)."""
    order = rng.permutation(len(lengths))
    size = config.batch_size
    if not config.length_buckets:
        return [order[i : i + size] for i in range(0, len(order), size)]
    run = size * config.length_buckets
    batches = []
    for start in range(0, len(order), run):
        part = order[start : start + run]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + size] for i in range(0, len(part), size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _tuned_variables(data: StateSet, config: TrainConfig) -> Mapping[str, Any] | None:
    """The encoder variables whose prefix a fit fine-tunes (``None``: the head alone, on
    frozen states)."""
    return data.variables if data.variables is not None and config.adapter_rank > 0 else None


def training_epochs(examples: int, config: TrainConfig) -> int:
    """Epochs of a fit on ``examples`` training examples: ``config.epochs``, or more when that
    would make fewer than ``config.min_steps`` optimiser steps."""
    per_epoch = math.ceil(examples / config.batch_size)
    return max(config.epochs, math.ceil(config.min_steps / per_epoch))


def train_head(data: StateSet, config: TrainConfig, device: str = "cpu") -> Any:
    """Fit the head (and the adapters of its encoder prefix, when ``data`` holds log-mels);
    returns the torch module (eval mode)."""
    import torch

    if not config.train_on_augmented:
        data = data.select(~data.augmented)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    variables = _tuned_variables(data, config)
    fine_tune = variables is not None
    module = _head_module(data.states[0].shape[1], config, variables).to(device)
    if config.member:  # the same initialisation, its own randomness from here on
        torch.manual_seed(config.seed + 7919 * config.member)
        rng = np.random.default_rng((config.seed, config.member))
    named = list(module.named_parameters())
    groups: list[dict[str, Any]] = [
        {"params": [p for n, p in named if not n.startswith("prefix.")], "lr": config.learning_rate}
    ]
    prefix = [p for n, p in named if n.startswith("prefix.") and p.requires_grad]
    if prefix:
        groups.append({"params": prefix, "lr": config.adapter_learning_rate})
    rates = [group["lr"] for group in groups]
    optimiser = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    epochs = training_epochs(len(data.labels), config)
    steps = epochs * math.ceil(len(data.labels) / config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, rates, total_steps=steps)
    half = fine_tune and device.startswith("cuda")
    weights = torch.tensor(_sample_weights(data), dtype=torch.float32, device=device)
    labels = torch.tensor(data.labels, device=device)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="none", label_smoothing=config.label_smoothing)
    # all states padded once on the device (float16); batches are cut from it
    x_all, mask_all = _batch(data.states, device, np.float16)
    lengths = np.array([len(s) for s in data.states])

    def weighted_loss(logits: torch.Tensor, examples: torch.Tensor) -> torch.Tensor:
        return loss_fn(logits, labels[examples]) * weights[examples]

    module.train()
    for _ in range(epochs):
        for batch in _epoch_batches(lengths, config, rng):
            index = torch.from_numpy(batch).to(device)
            longest = int(lengths[batch].max())
            x, mask = x_all[index, :longest].float(), mask_all[index, :longest]
            if fine_tune and config.spec_augment:
                x = spec_augment(x, mask)
            if fine_tune and config.channel_eq_db:
                x = channel_eq(x, mask, config.channel_eq_db)
            mix = None
            if config.mixup_alpha:
                lam = float(rng.beta(config.mixup_alpha, config.mixup_alpha))
                mix = (torch.from_numpy(rng.permutation(len(batch))).to(device), lam)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=half):
                logits = module(x, mask, mix).float()
            loss = weighted_loss(logits, index)
            if mix is not None:  # mixed statistics, mixed targets
                loss = mix[1] * loss + (1 - mix[1]) * weighted_loss(logits, index[mix[0]])
            loss = loss.mean()
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
    return _state_arrays(module) | _head_extras(temperature, metadata)


def _state_arrays(module: Any) -> dict[str, np.ndarray]:
    """The trained arrays of a head module (the frozen encoder weights are not among them)."""
    return {k: v.detach().float().cpu().numpy() for k, v in module.state_dict().items()}


def soup_arrays(members: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The weight average of heads fitted from one initialisation (a uniform "model soup",
    Wortsman et al. 2022): every array is averaged, except the LoRA factors, which are stacked
    (``a`` by rows, ``b`` by columns) so that the soup's rank-``n·r`` update
    ``α / (n·r) · Σ bᵢ aᵢ`` is exactly the mean of the members' updates; the soup therefore
    costs what one member costs at inference. Arrays that are not floating point (metadata,
    counters) are the first member's."""
    out: dict[str, np.ndarray] = {}
    for key in members[0]:
        values = [np.asarray(m[key]) for m in members]
        if key.startswith("prefix.") and key.endswith((".a", ".b")):
            out[key] = np.concatenate(values, axis=0 if key.endswith(".a") else 1)
        elif not np.issubdtype(values[0].dtype, np.floating):
            out[key] = values[0]
        else:
            out[key] = np.mean(values, axis=0).astype(values[0].dtype)
    return out


def training_speakers(data: StateSet) -> list[str]:
    """The speakers a final fit on ``data`` learns from, as the exported head records them
    (``benchmark-emotion`` tells a score on them from a score on unseen speakers)."""
    return sorted(set(data.speakers.tolist()))


def _head_extras(temperature: float, metadata: dict[str, Any]) -> dict[str, np.ndarray]:
    import json

    return {
        "temperature": np.array(temperature, np.float32),
        "metadata": np.array(json.dumps({"labels": list(BASE_EMOTIONS), **metadata})),
    }


# --- the recipe ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FitJob:
    """One training run of the recipe: fit on the ``train`` mask of the data, then give the
    logits of its clean clips under ``test`` and/or the exported arrays of the fitted head."""

    train: np.ndarray
    test: np.ndarray | None = None
    export: bool = False


def fit_head(data: StateSet, config: TrainConfig, device: str = "cpu") -> Any:
    """The trained head module: one :func:`train_head` fit, or the weight average of
    ``config.soup`` members' fits (:func:`soup_arrays`)."""
    if config.soup == 1:
        return train_head(data, config, device)
    members = [
        _state_arrays(train_head(data, dataclasses.replace(config, member=k), device))
        for k in tqdm(range(config.soup), desc="soup members", unit="fit", disable=None)
    ]
    return soup_module(members, data, config).to(device)


def soup_module(
    members: Sequence[Mapping[str, np.ndarray]], data: StateSet, config: TrainConfig
) -> Any:
    """The head module (eval mode, on the CPU) of the members' weight average
    (:func:`soup_arrays`), fitted on ``data`` with ``config``."""
    variables = _tuned_variables(data, config)
    return module_from_arrays(soup_arrays(members), config, data.states[0].shape[1], variables)


def module_from_arrays(
    arrays: Mapping[str, np.ndarray],
    config: TrainConfig,
    d_model: int,
    variables: Mapping[str, Any] | None = None,
    strict: bool = True,
) -> Any:
    """The head module (eval mode, on the CPU) holding exported ``arrays``, with the LoRA rank
    they carry: a soup's stacked factors make a rank ``soup·r`` adapter of the same α (see
    :func:`soup_arrays`)."""
    import torch

    ranks = {
        np.shape(v)[0] for k, v in arrays.items() if k.startswith("prefix.") and k.endswith(".a")
    }
    if ranks:
        config = dataclasses.replace(config, adapter_rank=max(ranks))
    module = _head_module(d_model, config, variables)
    state = {k: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()}
    module.load_state_dict(state, strict=strict)
    return module.eval()


def run_fit_job(data: StateSet, job: FitJob, config: TrainConfig, device: str = "cpu") -> Any:
    """``(logits or None, state arrays or None)`` of one :class:`FitJob`."""
    module = fit_head(data.select(job.train), config, device)
    logits = None
    if job.test is not None:
        logits = held_out_logits(module, data, job.test, device)
    return logits, _state_arrays(module) if job.export else None


def held_out_logits(
    module: Any, data: StateSet, test: np.ndarray, device: str = "cpu"
) -> np.ndarray:
    """Logits of a fitted module on the clean (not augmented) clips under the ``test`` mask."""
    return predict_logits(module, data.select(test & ~data.augmented).states, device)


# Runs a list of fit jobs (in order, or in parallel, e.g. one process per job on a GPU).
JobRunner = Callable[[Sequence[FitJob]], Sequence[Any]]


def speaker_folds(speakers: np.ndarray, n: int) -> list[np.ndarray]:
    """The recipe's ``n`` speaker-disjoint folds: the sorted distinct speakers dealt in turn."""
    unique = sorted(set(speakers.tolist()))
    return [np.array(unique[i::n]) for i in range(n)]


def speaker_fold_jobs(data: StateSet, speakers: np.ndarray, folds: int) -> list[FitJob]:
    """Hold out ``folds`` groups of ``speakers`` in turn and train on the rest."""
    jobs = []
    for held in speaker_folds(speakers, folds):
        test = np.isin(data.speakers, held)
        jobs.append(FitJob(~test, test))
    return jobs


def pooled_report(data: StateSet, jobs: Sequence[FitJob], results: Sequence[Any]) -> dict[str, Any]:
    """Classification report of the jobs' test predictions pooled together."""
    truth = [data.labels[job.test & ~data.augmented] for job in jobs if job.test is not None]
    predicted = [logits.argmax(1) for logits, _ in results]
    return classification_report(np.concatenate(truth), np.concatenate(predicted), BASE_EMOTIONS)


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
    jobs = speaker_fold_jobs(data, speakers, folds)
    return pooled_report(data, jobs, [run_fit_job(data, job, config, device) for job in jobs])


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


# recipe_jobs groups that make the shipped model rather than evaluate one
MODEL_GROUPS = ("calibration", "final")


def recipe_jobs(
    data: StateSet,
    ravdess_folds: int = 4,
    nemo_folds: int = 3,
    evaluate: bool = True,
    final: bool = True,
) -> dict[str, list[FitJob]]:
    """The recipe's fits by group: speaker-disjoint folds per corpus, each corpus to each other,
    then ``calibration`` (held-out speakers of each corpus, see :func:`calibration_speakers`)
    and the ``final`` fit on everything."""
    groups: dict[str, list[FitJob]] = {}
    if evaluate:
        for corpus, n in (("ravdess", ravdess_folds), ("nemo", nemo_folds)):
            if corpus in data.corpora and n >= 2:
                speakers = data.speakers[data.corpora == corpus]
                groups[f"{corpus}_speaker_disjoint"] = speaker_fold_jobs(data, speakers, n)
        corpora = sorted(set(data.corpora.tolist()))
        for source in corpora:
            for target in corpora:
                if source != target:
                    job = FitJob(data.corpora == source, data.corpora == target)
                    groups[f"cross_{source}_to_{target}"] = [job]
    if final:
        held = np.isin(data.speakers, calibration_speakers(data))
        groups["calibration"] = [FitJob(~held, held)]
        groups["final"] = [FitJob(np.ones(len(data.labels), bool), export=True)]
    return groups


def calibration_speakers(data: StateSet) -> tuple[str, ...]:
    """The speakers (the first of each corpus) whose clips calibrate the final model."""
    return tuple(sorted({str(min(data.speakers[data.corpora == c])) for c in set(data.corpora)}))


def run_recipe(
    data: StateSet,
    config: TrainConfig,
    device: str = "cpu",
    ravdess_folds: int = 4,
    nemo_folds: int = 3,
    evaluate: bool = True,
    final: bool = True,
    runner: JobRunner | None = None,
) -> RecipeResult:
    """Speaker-disjoint and cross-corpus evaluations, then the final calibrated model.

    Every training run is a :class:`FitJob`, independent of the others
    (:func:`recipe_jobs`); ``runner`` runs the list (default: one after the other in this
    process).
    """

    def run_in_order(jobs: Sequence[FitJob]) -> list[Any]:
        out = []
        for job in tqdm(jobs, desc="emotion recipe", unit="fit", disable=None):
            out.append(run_fit_job(data, job, config, device))
        return out

    groups = recipe_jobs(data, ravdess_folds, nemo_folds, evaluate, final)
    results = list((runner or run_in_order)([job for group in groups.values() for job in group]))
    by_group: dict[str, list[Any]] = {}
    for name, group in groups.items():
        by_group[name], results = results[: len(group)], results[len(group) :]
    return recipe_result(data, config, groups, by_group)


def recipe_result(
    data: StateSet,
    config: TrainConfig,
    groups: Mapping[str, Sequence[FitJob]],
    results: Mapping[str, Sequence[Any]],
) -> RecipeResult:
    """Reports of the evaluation groups of :func:`recipe_jobs`, and the calibrated final model
    when the groups include it; ``results`` are the fits' outputs by group."""
    evaluations = {
        name: pooled_report(data, groups[name], results[name])
        for name in groups
        if name not in MODEL_GROUPS
    }
    if "final" not in groups:
        return RecipeResult(evaluations, {}, config, ())
    calibration = calibration_speakers(data)
    calib = np.isin(data.speakers, calibration) & ~data.augmented
    temperature = fit_temperature(results["calibration"][0][0], data.labels[calib])
    metadata = {
        "config": asdict(config),
        "evaluations": evaluations,
        "temperature": temperature,
        "whisper_model": "base",
        "training_speakers": training_speakers(data),
    }
    arrays = results["final"][0][1] | _head_extras(temperature, metadata)
    return RecipeResult(evaluations, arrays, config, calibration)
