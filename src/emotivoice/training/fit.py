"""Fitting one head: the training loop, soups of fits, temperature calibration and export."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from emotivoice.emotion.labels import BASE_EMOTIONS
from emotivoice.emotion.torch_head import head_module, module_from_arrays, state_arrays
from emotivoice.training.augment import channel_eq, spec_augment
from emotivoice.training.config import TrainConfig
from emotivoice.training.states import StateSet


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
    module = head_module(data.states[0].shape[1], config.architecture, variables).to(device)
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
    return state_arrays(module) | head_extras(temperature, metadata)


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


def head_extras(temperature: float, metadata: dict[str, Any]) -> dict[str, np.ndarray]:
    import json

    return {
        "temperature": np.array(temperature, np.float32),
        "metadata": np.array(json.dumps({"labels": list(BASE_EMOTIONS), **metadata})),
    }


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
        state_arrays(train_head(data, dataclasses.replace(config, member=k), device))
        for k in tqdm(range(config.soup), desc="soup members", unit="fit", disable=None)
    ]
    return soup_module(members, data, config).to(device)


def soup_module(
    members: Sequence[Mapping[str, np.ndarray]], data: StateSet, config: TrainConfig
) -> Any:
    """The head module (eval mode, on the CPU) of the members' weight average
    (:func:`soup_arrays`), fitted on ``data`` with ``config``."""
    variables = _tuned_variables(data, config)
    return module_from_arrays(
        soup_arrays(members), config.architecture, data.states[0].shape[1], variables
    )


def run_fit_job(data: StateSet, job: FitJob, config: TrainConfig, device: str = "cpu") -> Any:
    """``(logits or None, state arrays or None)`` of one :class:`FitJob`."""
    module = fit_head(data.select(job.train), config, device)
    logits = None
    if job.test is not None:
        logits = held_out_logits(module, data, job.test, device)
    return logits, state_arrays(module) if job.export else None


def held_out_logits(
    module: Any, data: StateSet, test: np.ndarray, device: str = "cpu"
) -> np.ndarray:
    """Logits of a fitted module on the clean (not augmented) clips under the ``test`` mask."""
    return predict_logits(module, data.select(test & ~data.augmented).states, device)
