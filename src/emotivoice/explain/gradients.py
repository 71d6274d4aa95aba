"""Gradient and attention views through the differentiable PyTorch path of the default model.

The PyTorch Whisper copy (:mod:`emotivoice.models.torch_whisper`) computes the same encoder
states as the fast runtime (within 5e-3); the default emotion head is rebuilt in PyTorch from
its shipped arrays. Together they give a differentiable map from the segment's log-mel
spectrogram to the calibrated emotion probabilities, on which:

- Integrated Gradients (Captum) attribute the predicted probability to each (mel band, frame),
  from a baseline of the log-mel floor (silence);
- encoder self-attention maps (per layer, mean over heads, speech positions) and attention
  rollout (Abnar & Zuidema 2020) show which moments the encoder mixes.

Needs the ``torch`` extra; Integrated Gradients also ``captum``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from emotivoice.audio import SAMPLE_RATE
from emotivoice.emotion.head import EmotionHead
from emotivoice.errors import ModelNotFoundError
from emotivoice.extras import import_extra, require_extra


@dataclass(frozen=True)
class Saliency:
    """Integrated-Gradients map over (mel band, 10 ms frame) of the segment's speech."""

    target: int
    values: np.ndarray  # (n_mels, frames)
    frame_seconds: float
    convergence_delta: float
    steps: int


@dataclass(frozen=True)
class AttentionMaps:
    """Mean-over-heads self-attention per encoder layer and the rollout over time."""

    layers: tuple[np.ndarray, ...]  # each (positions, positions)
    rollout: np.ndarray  # (positions,) attention each position receives after rollout
    position_seconds: float  # 0.02 for Whisper and the common Hugging Face speech encoders


def torch_head(head: EmotionHead, d_model: int) -> Any:
    """The head as a PyTorch module (eval mode), from its exported arrays.

    A head on an encoder prefix gets that prefix (with its fine-tuned adapters and norms) and
    reads log-mel frames; a head on the final encoder states reads those states.
    """
    from emotivoice.emotion.torch_head import (
        HeadArchitecture,
        encoder_variables,
        module_from_arrays,
    )

    config = HeadArchitecture.from_config(head.config)
    model = str(head.metadata.get("whisper_model", "base"))
    variables = encoder_variables(model) if head.prefix_layers else None
    return module_from_arrays(head.weights, config, d_model, variables, strict=False)


def head_input_size(head: EmotionHead, d_model: int) -> int:
    """Values per position the head reads: one encoder width per layer it taps."""
    return d_model * max(1, len(head.prefix_layers))


def head_logits(encoder: Any, module: Any, mel: Any, positions: int) -> Any:
    """Uncalibrated logits (batch, 6) from a padded log-mel (batch, 80, 3000), differentiable:
    the head's own encoder prefix on the segment's frames (as
    :mod:`emotivoice.models.encoder_prefix` does in numpy), or the final encoder states."""
    import torch

    if module.prefix is not None:
        inputs = mel[..., : 2 * positions].transpose(1, 2)
    else:
        inputs = encoder(mel).last_hidden_state[:, :positions]
    mask = torch.ones(inputs.shape[:2], dtype=torch.bool, device=mel.device)
    return module(inputs, mask)


def torch_emotion_scorer(
    encoder: Any,
    filters: np.ndarray,
    head: EmotionHead | None = None,
    device: str = "cpu",
    batch_size: int = 32,
) -> Any:
    """A batch scorer on the PyTorch encoder (any device), for GPU explanations."""
    import torch

    from emotivoice.models.torch_whisper import log_mel, speech_positions

    head = head or EmotionHead.load()
    module = torch_head(head, head_input_size(head, encoder.config.d_model)).to(device)
    bank = torch.from_numpy(filters).to(device)
    encoder = encoder.to(device).eval()
    half = device.startswith("cuda")

    def score(waves: Any) -> np.ndarray:
        out = []
        for start in range(0, len(waves), batch_size):
            chunk = [
                np.asarray(w, np.float32)[: 30 * SAMPLE_RATE]
                for w in waves[start : start + batch_size]
            ]
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=half):
                mels = torch.cat([log_mel(torch.from_numpy(w), bank, "features") for w in chunk])
                for i, w in enumerate(chunk):
                    n = speech_positions(len(w))
                    logits = head_logits(encoder, module, mels[i : i + 1], n)[0].float()
                    out.append(torch.softmax(logits / head.temperature, -1).cpu().numpy())
        return np.stack(out)

    return score


class DifferentiableEmotionModel:
    """log-mel (1, 80, 3000) → calibrated probabilities of the default (or given) head."""

    def __init__(self, head: EmotionHead | None = None, whisper_model: str = "base") -> None:
        require_extra("torch", "Gradient explanations")
        import torch

        from emotivoice.models.torch_whisper import load_torch_whisper, mel_filters

        self.head = head or EmotionHead.load()
        self.whisper = load_torch_whisper(whisper_model)
        self.module = torch_head(self.head, head_input_size(self.head, self.whisper.config.d_model))
        self.filters = torch.from_numpy(mel_filters())
        self.temperature = self.head.temperature

    def mel(self, samples: np.ndarray) -> Any:
        import torch

        from emotivoice.models.torch_whisper import log_mel

        return log_mel(torch.from_numpy(np.asarray(samples, np.float32)), self.filters, "features")

    def positions(self, samples: np.ndarray) -> int:
        from emotivoice.models.torch_whisper import speech_positions

        return speech_positions(len(samples))

    def probabilities(self, mel: Any, positions: int) -> Any:
        """(batch, 6) calibrated probabilities; differentiable in ``mel``."""
        import torch

        logits = head_logits(self.whisper.model.model.encoder, self.module, mel, positions)
        return torch.softmax(logits / self.temperature, dim=-1)


def integrated_gradients(
    model: DifferentiableEmotionModel,
    samples: np.ndarray,
    target: int | None = None,
    steps: int = 16,
) -> Saliency:
    """Captum Integrated Gradients of the target probability w.r.t. the log-mel input."""
    captum = import_extra("captum.attr", "explain", "Integrated Gradients")
    import torch

    mel = model.mel(samples)
    positions = model.positions(samples)
    with torch.no_grad():
        p = model.probabilities(mel, positions)[0]
    target = int(p.argmax()) if target is None else target
    baseline = torch.full_like(mel, float(mel.min()))
    ig = captum.IntegratedGradients(lambda x: model.probabilities(x, positions))
    attributions, delta = ig.attribute(
        mel,
        baselines=baseline,
        target=target,
        n_steps=steps,
        internal_batch_size=4,
        return_convergence_delta=True,
    )
    frames = 2 * positions
    return Saliency(
        target=target,
        values=attributions[0, :, :frames].detach().numpy(),
        frame_seconds=0.01,
        convergence_delta=float(delta.abs().max()),
        steps=steps,
    )


@contextmanager
def _eager_attention(model: Any) -> Iterator[None]:
    """Switch a transformers model to eager attention (which returns weights) for a while."""
    previous = getattr(model.config, "_attn_implementation", None)
    switch = previous not in (None, "eager") and hasattr(model, "set_attn_implementation")
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(previous)


def _rollout(layers: list[np.ndarray]) -> np.ndarray:
    n = layers[0].shape[0]
    rollout = np.eye(n)
    for a in layers:
        rollout = (0.5 * a + 0.5 * np.eye(n)) @ rollout
    return np.asarray(rollout.mean(axis=0))


def attention_maps(model: DifferentiableEmotionModel, samples: np.ndarray) -> AttentionMaps:
    """Encoder self-attention over the segment's speech positions, and its rollout.

    For a head on its own encoder prefix (the default), the layers it reads, run on the
    segment's own frames; otherwise every layer of the padded 30 s pass.
    """
    import torch

    if model.head.prefix_layers:
        from emotivoice.emotion.head import own_log_mel

        prefix = [a[0] for a in model.head.prefix_output(own_log_mel(samples)).attention]
        return AttentionMaps(tuple(prefix), _rollout(prefix), position_seconds=0.02)

    whisper = model.whisper.model
    with _eager_attention(whisper), torch.no_grad():
        out = whisper.model.encoder(model.mel(samples), output_attentions=True)
    n = model.positions(samples)
    layers = []
    for attention in out.attentions:
        a = attention[0].mean(0)[:n, :n].numpy()
        layers.append(a / a.sum(axis=1, keepdims=True))  # renormalise over speech positions
    return AttentionMaps(layers=tuple(layers), rollout=_rollout(layers), position_seconds=0.02)


def hf_attention_maps(backend: Any, samples: np.ndarray) -> AttentionMaps:
    """Self-attention of a Hugging Face audio classifier (HuBERT, wav2vec2, WavLM...)."""
    import torch

    model = backend.model
    inputs = backend.extractor(samples, sampling_rate=SAMPLE_RATE, return_tensors="pt")
    with _eager_attention(model), torch.no_grad():
        out = model(**{k: v.to(backend.device) for k, v in inputs.items()}, output_attentions=True)
    if not out.attentions:
        raise ModelNotFoundError(f"{backend.name} does not return attention weights")
    layers = [a[0].mean(0).float().cpu().numpy() for a in out.attentions]
    # the frame rate of the model's convolutional front end (20 ms for HuBERT, wav2vec2, WavLM)
    seconds = len(samples) / SAMPLE_RATE / layers[0].shape[0]
    return AttentionMaps(layers=tuple(layers), rollout=_rollout(layers), position_seconds=seconds)
