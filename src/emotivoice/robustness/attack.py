"""Adversarial attacks on the differentiable Whisper copy.

* Targeted stage 1 (Carlini & Wagner 2018, as Qin et al. 2019 run it): Adam on the sign of the
  gradient of the target's cross-entropy, perturbation clipped to an L∞ bound that shrinks to
  ``bound_decay`` × its largest sample each time the example succeeds (checked every
  ``check_every`` steps).
* Targeted stage 2 (Qin et al. 2019): from stage 1's perturbation, Adam on cross-entropy +
  ``alpha`` × mean(relu(PSD(δ) − masking threshold)); ``alpha`` grows ×1.2 every 20 steps while
  the example succeeds and shrinks ×0.8 every 50 steps while it fails. The successful perturbation
  with the least threshold excess is kept.
* Robust (opt-in, ``rooms > 0``): each step convolves the adversarial audio with freshly sampled
  room impulse responses (expectation over transformation) and succeeds only if all rooms do.
* Untargeted PGD under an SNR bound: :mod:`emotivoice.robustness.untargeted`.

Amplitudes are float samples in [-1, 1] (Qin et al.'s int16 values ÷ 32768).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from emotivoice.audio import SAMPLE_RATE
from emotivoice.errors import AudioTooLongError, InvalidConfigError
from emotivoice.robustness.masking import masking_threshold, perturbation_psd
from emotivoice.robustness.rooms import RoomOptions, simulate_rirs
from emotivoice.robustness.whisper_loss import (
    TeacherForced,
    TeacherForcing,
    target_token_ids,
    token_batch,
)

if TYPE_CHECKING:
    import torch

    from emotivoice.models.torch_whisper import TorchWhisper

__all__ = [
    "INT16_SCALE",
    "MAX_SAMPLES",
    "AttackOptions",
    "AttackResult",
    "masking_excess",
    "resolve_torch_device",
    "targeted_attack",
]

INT16_SCALE = 32768.0
MAX_SAMPLES = 30 * SAMPLE_RATE  # one Whisper window
_NO_THRESHOLD = 1e30  # stands in for the threshold of frames past an utterance's end


_ALPHA_UP_EVERY, _ALPHA_DOWN_EVERY = 20, 50


@dataclass(frozen=True)
class AttackOptions:
    """How the targeted attack runs (defaults: Qin et al.'s values, float amplitude scale).

    Attributes:
        stage1_steps: iterations of stage 1 (C&W cross-entropy under a shrinking L∞ bound).
        stage1_lr: Adam learning rate of stage 1 (on the gradient's sign).
        initial_bound: starting L∞ bound of the perturbation.
        bound_decay: factor applied to the bound after each success check that succeeds.
        check_every: stage-1 steps between success checks (bound updates).
        stage2_steps: iterations of stage 2 (masking-threshold loss); 0 skips stage 2.
        stage2_lr: Adam learning rate of stage 2.
        alpha: initial weight of the masking-threshold loss.
        min_alpha: floor of that weight.
        rooms: simulated rooms per example and step (robust attack); 0 attacks the dry audio.
        room_options: the distribution of simulated rooms.
        noise_std: standard deviation of Gaussian noise added at each step (robustness).
        margin: logits by which each target token must beat the runner-up to count as reached
            (0: greedy decoding's arg-max; a margin keeps success under other kernels).
        language: the language token of the prompt (multilingual models).
        batch_size: utterances optimised together.
        device: ``auto`` (CUDA when PyTorch sees it), ``cpu`` or ``cuda``.
        seed: seeds PyTorch and the room sampler.
        progress: show a progress bar with loss and bound.
    """

    stage1_steps: int = 1000
    stage1_lr: float = 100.0 / INT16_SCALE
    initial_bound: float = 2000.0 / INT16_SCALE
    bound_decay: float = 0.8
    check_every: int = 10
    stage2_steps: int = 4000
    stage2_lr: float = 1.0 / INT16_SCALE
    alpha: float = 0.05
    min_alpha: float = 0.0005
    rooms: int = 0
    room_options: RoomOptions = field(default_factory=RoomOptions)
    noise_std: float = 0.0
    margin: float = 0.0
    language: str = "en"
    batch_size: int = 10
    device: str = "auto"
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        positive = {
            "stage1_lr": self.stage1_lr,
            "initial_bound": self.initial_bound,
            "stage2_lr": self.stage2_lr,
            "alpha": self.alpha,
            "batch_size": self.batch_size,
            "check_every": self.check_every,
        }
        for name, value in positive.items():
            if value <= 0:
                raise InvalidConfigError(f"{name} must be positive (got {value}).")
        if self.stage1_steps < 1 or self.stage2_steps < 0 or self.rooms < 0:
            raise InvalidConfigError("stage1_steps must be ≥ 1; stage2_steps and rooms ≥ 0.")
        if self.margin < 0:
            raise InvalidConfigError("margin must not be negative.")
        if not 0 < self.bound_decay <= 1:
            raise InvalidConfigError("bound_decay must be in (0, 1].")
        if self.device not in ("auto", "cpu", "cuda"):
            raise InvalidConfigError(f"Unknown device {self.device!r}; choose auto, cpu or cuda.")


@dataclass(frozen=True, eq=False)
class AttackResult:
    """One adversarial example as the attack left it (metrics: :mod:`.report`).

    Attributes:
        adversarial: the adversarial audio, 16 kHz float32.
        kind: ``targeted`` or ``untargeted``.
        goal: the target phrase, or the clean transcript an untargeted attack moves away from.
        succeeded: the attacked model's greedy decoding reaches the goal (targeted) or leaves it
            (untargeted), judged by the last teacher-forced check.
        stage1_success_step: first step at which the goal was reached (``None``: never).
        stage2_applied: stage 2 ran and produced a successful perturbation that is returned.
        linf_bound: the L∞ bound in force at the end of stage 1 (or the L2 budget for PGD).
        iterations: optimisation steps run (both stages).
        seconds: wall time of this example's batch divided by its size.
        stage1_adversarial: the adversarial audio after stage 1 alone (targeted attacks).
    """

    adversarial: np.ndarray
    kind: str
    goal: str
    succeeded: bool
    stage1_success_step: int | None
    stage2_applied: bool
    linf_bound: float
    iterations: int
    seconds: float
    stage1_adversarial: np.ndarray | None = None


def resolve_torch_device(device: str) -> str:
    """``auto`` → ``cuda`` when PyTorch sees a GPU, else ``cpu``."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidConfigError("device 'cuda' was requested but PyTorch sees no CUDA GPU.")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def check_audio(audio: Sequence[np.ndarray]) -> None:
    for i, samples in enumerate(audio):
        if samples.ndim != 1 or samples.size == 0:
            raise InvalidConfigError(f"Utterance {i} must be non-empty mono 16 kHz samples.")
        if samples.size > MAX_SAMPLES:
            raise AudioTooLongError(
                f"Utterance {i} lasts {samples.size / SAMPLE_RATE:.1f} s; the attack works on one "
                "Whisper window (at most 30 s). Cut it first."
            )


class AudioBatch:
    """Padded audio, masks and per-example state shared by the attack stages."""

    def __init__(self, audio: Sequence[np.ndarray], device: str) -> None:
        import torch

        self.lengths = [int(a.size) for a in audio]
        longest = max(self.lengths)
        self.clean = torch.zeros(len(audio), longest, device=device)
        self.mask = torch.zeros_like(self.clean)
        for i, samples in enumerate(audio):
            self.clean[i, : samples.size] = torch.from_numpy(np.asarray(samples, np.float32))
            self.mask[i, : samples.size] = 1.0

    def adversarial(self, delta: torch.Tensor) -> torch.Tensor:
        return (self.clean + delta * self.mask).clamp(-1.0, 1.0)

    def utterances(self, padded: torch.Tensor, repeat: int = 1) -> list[torch.Tensor]:
        return [padded[i, : self.lengths[i // repeat]] for i in range(padded.shape[0])]


def _reverberate(audio: torch.Tensor, rirs: torch.Tensor) -> torch.Tensor:
    """Each row of ``audio`` (batch, n) convolved with ``rooms`` RIRs → (batch·rooms, n)."""
    import torch

    batch, n = audio.shape
    rooms = rirs.shape[0] // batch
    size = n + rirs.shape[-1]
    spectrum = torch.fft.rfft(audio.repeat_interleave(rooms, 0), size)
    wet = torch.fft.irfft(spectrum * torch.fft.rfft(rirs, size), size)[:, :n]
    return wet.clamp(-1.0, 1.0)


def targeted_attack(
    model: TorchWhisper,
    audio: Sequence[np.ndarray],
    targets: Sequence[str],
    options: AttackOptions | None = None,
) -> list[AttackResult]:
    """Make each utterance transcribe as its target (stage 1, then stage 2 if enabled).

    Args:
        model: a :class:`emotivoice.models.torch_whisper.TorchWhisper` on the attack's device.
        audio: 16 kHz mono float utterances of at most 30 s.
        targets: the phrase each utterance should be transcribed as.
        options: attack settings.

    Returns:
        One :class:`AttackResult` per utterance, in order.

    Raises:
        InvalidTargetError: an empty target or one Whisper cannot emit.
        AudioTooLongError: an utterance over 30 s.
    """
    import torch

    options = options or AttackOptions()
    if len(audio) != len(targets):
        raise InvalidConfigError("Give exactly one target per utterance.")
    check_audio(audio)
    tokens = [target_token_ids(model, t) for t in targets]
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    results: list[AttackResult] = []
    for start in range(0, len(audio), options.batch_size):
        stop = start + options.batch_size
        results += _targeted_batch(
            model, audio[start:stop], targets[start:stop], tokens[start:stop], options, rng
        )
    return results


def _targeted_batch(
    model: TorchWhisper,
    audio: Sequence[np.ndarray],
    targets: Sequence[str],
    tokens: Sequence[tuple[int, ...]],
    options: AttackOptions,
    rng: np.random.Generator,
) -> list[AttackResult]:
    import torch

    device = str(model.device)
    started = time.perf_counter()
    batch = AudioBatch(audio, device)
    forcing = TeacherForcing(model, token_batch(model, tokens, options.language), options.margin)
    delta = torch.zeros_like(batch.clean, requires_grad=True)
    stage1 = _stage1(batch, forcing, delta, options, rng)
    final, iterations = stage1.delta, options.stage1_steps
    applied = np.zeros(len(audio), dtype=bool)
    if options.stage2_steps:
        with torch.no_grad():
            delta.copy_(stage1.delta)
        final, applied = _stage2(batch, forcing, delta, stage1, audio, options, rng)
        iterations += options.stage2_steps
    with torch.no_grad():
        adversarial = batch.adversarial(final).cpu().numpy()
        after_stage1 = batch.adversarial(stage1.delta).cpu().numpy()
    seconds = (time.perf_counter() - started) / len(audio)
    return [
        AttackResult(
            adversarial=adversarial[i, : batch.lengths[i]].copy(),
            kind="targeted",
            goal=targets[i],
            succeeded=bool(stage1.success_step[i] is not None),
            stage1_success_step=stage1.success_step[i],
            stage2_applied=bool(applied[i]),
            linf_bound=float(stage1.bound[i]),
            iterations=iterations,
            seconds=seconds,
            stage1_adversarial=after_stage1[i, : batch.lengths[i]].copy(),
        )
        for i in range(len(audio))
    ]


@dataclass
class _Stage1:
    delta: torch.Tensor  # best (last successful, else last) perturbation per example
    bound: np.ndarray
    success_step: list[int | None]


def _rooms(
    batch: AudioBatch, options: AttackOptions, rng: np.random.Generator
) -> torch.Tensor | None:
    import torch

    if not options.rooms:
        return None
    count = batch.clean.shape[0] * options.rooms
    rirs = simulate_rirs(count, rng, options.room_options)
    return torch.from_numpy(rirs).to(batch.clean.device)


def _forward(
    batch: AudioBatch,
    forcing: TeacherForcing,
    delta: torch.Tensor,
    options: AttackOptions,
    rng: np.random.Generator,
) -> TeacherForced:
    import torch

    adversarial = batch.adversarial(delta)
    if options.noise_std:
        adversarial = adversarial + options.noise_std * torch.randn_like(adversarial) * batch.mask
    rirs = _rooms(batch, options, rng)
    repeat = 1
    if rirs is not None:
        adversarial = _reverberate(adversarial, rirs)
        repeat = options.rooms
    return forcing(forcing.features(batch.utterances(adversarial, repeat)))


def _stage1(
    batch: AudioBatch,
    forcing: TeacherForcing,
    delta: torch.Tensor,
    options: AttackOptions,
    rng: np.random.Generator,
) -> _Stage1:
    import torch
    from tqdm import tqdm

    assert isinstance(delta, torch.Tensor)
    n = delta.shape[0]
    bound = torch.full((n, 1), options.initial_bound, device=delta.device)
    best = torch.zeros_like(delta)
    has_best = torch.zeros(n, dtype=torch.bool, device=delta.device)
    success_step: list[int | None] = [None] * n
    optimizer = torch.optim.Adam([delta], lr=options.stage1_lr)
    bar = tqdm(
        range(options.stage1_steps), desc="stage 1", disable=None if options.progress else True
    )  # None: a terminal only
    for step in bar:
        out = _forward(batch, forcing, delta, options, rng)
        optimizer.zero_grad()
        out.loss.sum().backward()
        with torch.no_grad():
            won = out.matches.detach()
            for i in np.flatnonzero(won.cpu().numpy()):
                success_step[i] = step if success_step[i] is None else success_step[i]
            # the perturbation that reached the target under the tightest bound so far
            best[won] = delta[won]
            has_best |= won
            if step % options.check_every == 0:
                peak = (delta.abs() * batch.mask).amax(-1, keepdim=True)
                shrunk = torch.minimum(bound, peak) * options.bound_decay
                bound = torch.where(won[:, None], shrunk, bound)
            assert delta.grad is not None
            delta.grad.sign_()
        optimizer.step()
        with torch.no_grad():
            delta.copy_(torch.maximum(torch.minimum(delta, bound), -bound) * batch.mask)
        bar.set_postfix(
            loss=f"{float(out.loss.detach().mean()):.3f}",
            bound=f"{float(bound.mean()) * INT16_SCALE:.0f}/32768",
            ok=f"{int(won.sum())}/{n}",
        )
    with torch.no_grad():
        best[~has_best] = delta[~has_best]
        peak = best.abs().amax(-1)
        final_bound = torch.where(has_best, peak, bound[:, 0])
    succeeded = [s if ok else None for s, ok in zip(success_step, has_best.tolist(), strict=True)]
    return _Stage1(best.detach().clone(), final_bound.cpu().numpy(), succeeded)


def _thresholds(
    audio: Sequence[np.ndarray], device: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded masking thresholds (batch, frames, bins), frame masks and peak PSDs."""
    import torch

    computed = [masking_threshold(a) for a in audio]
    frames = max(c.threshold.shape[0] for c in computed)
    bins = computed[0].threshold.shape[1]
    threshold = torch.full((len(audio), frames, bins), _NO_THRESHOLD)
    valid = torch.zeros(len(audio), frames, 1)
    for i, c in enumerate(computed):
        threshold[i, : c.threshold.shape[0]] = torch.from_numpy(c.threshold)
        valid[i, : c.threshold.shape[0]] = 1.0
    psd_max = torch.tensor([c.psd_max for c in computed], dtype=torch.float32)
    return threshold.to(device), valid.to(device), psd_max.to(device)


def masking_excess(
    delta: torch.Tensor, threshold: torch.Tensor, valid: torch.Tensor, psd_max: torch.Tensor
) -> torch.Tensor:
    """Mean of relu(PSD(δ) − threshold) over each example's frames and bins, (batch,)."""
    import torch

    psd = perturbation_psd(delta, psd_max)[:, : threshold.shape[1]]
    excess = torch.relu(psd - threshold) * valid
    return excess.sum((-2, -1)) / (valid.sum((-2, -1)) * threshold.shape[-1])


def _stage2(
    batch: AudioBatch,
    forcing: TeacherForcing,
    delta: torch.Tensor,
    stage1: _Stage1,
    audio: Sequence[np.ndarray],
    options: AttackOptions,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, np.ndarray]:
    import torch
    from tqdm import tqdm

    assert isinstance(delta, torch.Tensor)
    n = delta.shape[0]
    threshold, valid, psd_max = _thresholds(audio, str(delta.device))
    bound = torch.from_numpy(stage1.bound).to(delta.device)[:, None]
    alpha = torch.full((n,), options.alpha, device=delta.device)
    best = stage1.delta.clone()
    best_excess = torch.full((n,), torch.inf, device=delta.device)
    applied = np.zeros(n, dtype=bool)
    optimizer = torch.optim.Adam([delta], lr=options.stage2_lr)
    bar = tqdm(
        range(options.stage2_steps), desc="stage 2", disable=None if options.progress else True
    )  # None: a terminal only
    for step in bar:
        out = _forward(batch, forcing, delta, options, rng)
        excess = masking_excess(delta * batch.mask, threshold, valid, psd_max)
        optimizer.zero_grad()
        (out.loss + alpha * excess).sum().backward()
        with torch.no_grad():
            won = out.matches.detach()
            better = won & (excess < best_excess)
            best[better] = delta[better]
            best_excess = torch.where(better, excess.detach(), best_excess)
            applied |= better.cpu().numpy()
            if step % _ALPHA_UP_EVERY == 0:
                alpha = torch.where(won, alpha * 1.2, alpha)
            if step % _ALPHA_DOWN_EVERY == 0:
                alpha = torch.where(won, alpha, (alpha * 0.8).clamp(min=options.min_alpha))
        optimizer.step()
        with torch.no_grad():
            delta.copy_(torch.maximum(torch.minimum(delta, bound), -bound) * batch.mask)
        bar.set_postfix(
            loss=f"{float(out.loss.detach().mean()):.3f}",
            excess=f"{float(excess.detach().mean()):.3g}",
            alpha=f"{float(alpha.mean()):.3g}",
            ok=f"{int(won.sum())}/{n}",
        )
    return best, applied
