"""Untargeted PGD against the differentiable Whisper copy under an SNR bound: gradient ascent on
the cross-entropy of the clean transcript, projected onto the L2 ball
``‖δ‖ ≤ ‖x‖ · 10^(−SNR/20)``. Amplitudes are float samples in [-1, 1].
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from emotivoice.errors import InvalidConfigError, InvalidTargetError
from emotivoice.robustness.attack import AttackResult, AudioBatch, check_audio
from emotivoice.robustness.whisper_loss import (
    TeacherForcing,
    token_batch,
)

if TYPE_CHECKING:
    from emotivoice.models.torch_whisper import TorchWhisper

__all__ = ["UntargetedOptions", "untargeted_attack"]


@dataclass(frozen=True)
class UntargetedOptions:
    """Untargeted PGD under an SNR bound.

    Attributes:
        snr_db: the perturbation stays at least this many dB below the utterance's energy.
        steps: PGD iterations.
        step_fraction: each step moves this fraction of the L2 budget.
        language, batch_size, device, seed, progress: as in :class:`AttackOptions`.
    """

    snr_db: float = 30.0
    steps: int = 50
    step_fraction: float = 0.1
    language: str = "en"
    batch_size: int = 10
    device: str = "auto"
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1 or not 0 < self.step_fraction <= 1:
            raise InvalidConfigError("steps must be ≥ 1 and step_fraction in (0, 1].")
        if self.device not in ("auto", "cpu", "cuda"):
            raise InvalidConfigError(f"Unknown device {self.device!r}; choose auto, cpu or cuda.")


def untargeted_attack(
    model: TorchWhisper,
    audio: Sequence[np.ndarray],
    options: UntargetedOptions | None = None,
) -> list[AttackResult]:
    """PGD away from each utterance's clean transcript under an SNR bound (baseline).

    Raises:
        AudioTooLongError: an utterance over 30 s.
        InvalidTargetError: an utterance whose clean transcript is empty (nothing to move from).
    """
    import torch

    options = options or UntargetedOptions()
    check_audio(audio)
    torch.manual_seed(options.seed)
    transcripts, tokens = [], []
    with torch.no_grad():
        for i, samples in enumerate(audio):
            tensor = torch.from_numpy(np.asarray(samples, np.float32)).to(model.device)
            decoded = model.greedy_decode(
                model.encode(model.log_mel(tensor, pad="features")), options.language
            )
            if not decoded.tokens:
                raise InvalidTargetError(
                    f"Utterance {i} transcribes as nothing; an untargeted attack needs speech "
                    "to move the transcript away from."
                )
            transcripts.append(decoded.text)
            tokens.append(decoded.tokens)  # the greedy tokens themselves, not a re-encoding
    results: list[AttackResult] = []
    for start in range(0, len(audio), options.batch_size):
        stop = start + options.batch_size
        results += _pgd_batch(
            model, audio[start:stop], transcripts[start:stop], tokens[start:stop], options
        )
    return results


def _pgd_batch(
    model: TorchWhisper,
    audio: Sequence[np.ndarray],
    transcripts: Sequence[str],
    tokens: Sequence[tuple[int, ...]],
    options: UntargetedOptions,
) -> list[AttackResult]:
    import torch
    from tqdm import tqdm

    started = time.perf_counter()
    batch = AudioBatch(audio, str(model.device))
    forcing = TeacherForcing(model, token_batch(model, tokens, options.language))
    budget = batch.clean.norm(dim=-1, keepdim=True) * 10 ** (-options.snr_db / 20.0)
    delta = torch.zeros_like(batch.clean, requires_grad=True)
    success_step: list[int | None] = [None] * len(audio)
    bar = tqdm(
        range(options.steps), desc="PGD", disable=None if options.progress else True
    )  # None: a terminal only
    for step in bar:
        out = forcing(forcing.features(batch.utterances(batch.adversarial(delta))))
        out.loss.sum().backward()
        with torch.no_grad():
            for i in np.flatnonzero(~out.matches.cpu().numpy()):
                if success_step[i] is None:
                    success_step[i] = step
            assert delta.grad is not None
            grad = delta.grad * batch.mask
            delta += (
                options.step_fraction
                * budget
                * grad
                / grad.norm(dim=-1, keepdim=True).clamp(min=1e-12)
            )
            delta *= (budget / delta.norm(dim=-1, keepdim=True).clamp(min=1e-12)).clamp(max=1.0)
            delta.grad = None
        bar.set_postfix(
            loss=f"{float(out.loss.detach().mean()):.3f}", ok=f"{int((~out.matches).sum())}"
        )
    with torch.no_grad():
        out = forcing(forcing.features(batch.utterances(batch.adversarial(delta))))
        adversarial = batch.adversarial(delta).cpu().numpy()
    moved = (~out.matches).cpu().numpy()
    seconds = (time.perf_counter() - started) / len(audio)
    return [
        AttackResult(
            adversarial=adversarial[i, : batch.lengths[i]].copy(),
            kind="untargeted",
            goal=transcripts[i],
            succeeded=bool(moved[i]),
            stage1_success_step=success_step[i],
            stage2_applied=False,
            linf_bound=float(budget[i]),
            iterations=options.steps,
            seconds=seconds,
        )
        for i in range(len(audio))
    ]
