"""The teacher: a head on the first layers of the Whisper encoder the engine already has.

Whisper's encoder was trained on 680,000 hours of real speech; a few of its layers, frozen, give
a small head features that already ignore much of what separates one synthetic voice or one
room from another. The teacher sees the same augmented training windows as the student (their
Whisper log-mel, each window on its own frames, as the emotion head reads a segment) and its
probabilities become the student's soft targets (knowledge distillation, Hinton et al. 2015):
where augmentation buried the phrase in babble the teacher says "hardly", where a confusable
sounds almost right it says "somewhat", and the student learns that instead of a hard 0 or 1.
The teacher is far too costly to listen to a stream (a Whisper prefix every 80 ms); only the
student is exported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from emotivoice.errors import InvalidConfigError
from emotivoice.extras import import_extra

__all__ = ["Teacher", "TeacherOptions", "train_teacher", "whisper_window_mels"]

logger = logging.getLogger(__name__)

_FRAMES = 150  # Whisper log-mel frames of a 1.5 s window (10 ms hop): 75 encoder positions


@dataclass(frozen=True)
class TeacherOptions:
    """How the teacher is made.

    Attributes:
        layers: Whisper encoder layers (frozen) under the head.
        hidden: width of the head's projection.
        epochs: passes over the training windows (the head only: the states are computed once).
        batch_size: windows per optimiser step.
        learning_rate: peak AdamW learning rate (one-cycle).
        weight_decay: AdamW weight decay.
        whisper_model: the Whisper model whose encoder is used (the engine's, offline).
    """

    layers: int = 2
    hidden: int = 128
    epochs: int = 12
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 1e-2
    whisper_model: str = "base"

    def __post_init__(self) -> None:
        if not 1 <= self.layers <= 6 or self.hidden < 1 or self.epochs < 1:
            raise InvalidConfigError("teacher layers must lie in 1-6; hidden and epochs >= 1.")


def whisper_window_mels(windows: np.ndarray) -> np.ndarray:
    """Whisper log-mel ``(n, 80, 150)`` float16 of audio windows ``(n, samples)``, each on its
    own frames (faster-whisper's feature extractor, as the pipeline computes it)."""
    from emotivoice.emotion.head import whisper_feature_extractor

    extractor = whisper_feature_extractor()
    out: np.ndarray | None = None
    for i, window in enumerate(windows):
        mel = extractor(np.asarray(window, np.float32))[:, :_FRAMES]
        if out is None:
            out = np.zeros((len(windows), mel.shape[0], _FRAMES), np.float16)
        out[i, :, : mel.shape[1]] = mel
    return out if out is not None else np.zeros((0, 80, _FRAMES), np.float16)


class Teacher:
    """A trained teacher: the frozen Whisper prefix and the head, in PyTorch."""

    def __init__(self, prefix: Any, head: Any, options: TeacherOptions, device: str) -> None:
        self.prefix, self.head, self.options, self.device = prefix, head, options, device

    def states(self, mels: np.ndarray, batch_size: int = 128) -> np.ndarray:
        """The prefix's last-layer states ``(n, 75, d)`` float16 of Whisper log-mel windows."""
        torch = import_extra("torch", "torch", "Training a wake-word teacher")
        out = []
        with torch.no_grad():
            for start in range(0, len(mels), batch_size):
                batch = torch.from_numpy(mels[start : start + batch_size].astype(np.float32))
                states = self.prefix(batch.to(self.device))[-1]
                out.append(states.to(torch.float16).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, _FRAMES // 2, 1), np.float16)

    def logits_of_states(self, states: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """The head's logits ``(n,)`` of prefix states."""
        torch = import_extra("torch", "torch", "Training a wake-word teacher")
        self.head.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(states), batch_size):
                batch = torch.from_numpy(states[start : start + batch_size].astype(np.float32))
                out.append(self.head(batch.to(self.device)).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float32)


def _head(torch: Any, d_model: int, hidden: int) -> Any:
    nn = torch.nn

    class Head(nn.Module):  # type: ignore[name-defined]
        """Per-position projection, mean- and max-pooling over the window, one logit."""

        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(d_model)
            self.project = nn.Linear(d_model, hidden)
            self.dropout = nn.Dropout(0.2)
            self.out = nn.Linear(2 * hidden, 1)

        def forward(self, states: Any) -> Any:
            h = nn.functional.gelu(self.project(self.norm(states)))
            pooled = torch.cat([h.mean(1), h.amax(1)], dim=-1)
            return self.out(self.dropout(pooled)).squeeze(-1)

    return Head()


def train_teacher(
    mels: np.ndarray,
    labels: np.ndarray,
    options: TeacherOptions | None = None,
    device: str = "cpu",
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
) -> tuple[Teacher, np.ndarray]:
    """Fit the teacher's head on Whisper log-mel windows ``mels`` with hard ``labels``.

    Returns the teacher and its logits on the training windows themselves (each from the
    last epoch's head; the student's soft targets).
    """
    torch = import_extra("torch", "torch", "Training a wake-word teacher")
    from emotivoice.models.ct2_reader import read_ct2_model
    from emotivoice.models.registry import resolve_whisper_model
    from emotivoice.models.torch_prefix import TorchEncoderPrefix

    options = options or TeacherOptions()
    report = progress or (lambda fraction: None)
    torch.manual_seed(seed)
    variables = read_ct2_model(resolve_whisper_model(options.whisper_model)).variables
    prefix = TorchEncoderPrefix(variables, options.layers).to(device).eval()
    head = _head(torch, prefix.d_model, options.hidden).to(device)
    teacher = Teacher(prefix, head, options, device)
    states = teacher.states(mels)
    report(0.5)
    optimiser = torch.optim.AdamW(
        head.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay
    )
    steps = options.epochs * int(np.ceil(len(labels) / options.batch_size))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, options.learning_rate, total_steps=steps, pct_start=0.15
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    rng = np.random.default_rng(seed)
    for epoch in range(options.epochs):
        head.train()
        total = 0.0
        order = rng.permutation(len(labels))
        for start in range(0, len(order), options.batch_size):
            index = np.sort(order[start : start + options.batch_size])
            batch = torch.from_numpy(states[index].astype(np.float32)).to(device)
            target = torch.from_numpy(labels[index].astype(np.float32)).to(device)
            loss = loss_fn(head(batch), target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += loss.item() * len(index)
        logger.info("teacher epoch %d: loss %.4f", epoch + 1, total / len(labels))
        report(0.5 + 0.5 * (epoch + 1) / options.epochs)
    return teacher, teacher.logits_of_states(states)
