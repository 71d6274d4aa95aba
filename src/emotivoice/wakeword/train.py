"""``wakeword train``: windows drawn and augmented from a generated data set, the student
fitted on their log-mel frames with hard labels, the best epoch kept, ONNX files exported.

A run folder holds ``config.json``, ``data_card.json``, ``metrics.jsonl`` (one line per epoch;
TensorBoard event files too when ``tensorboard`` is installed), ``model.pt``, ``model.onnx``,
``model.int8.onnx``, ``calibration.npy`` (the windows its quantisation was calibrated on) and
``threshold.json``. It is written to a temporary sibling and renamed
into place when training succeeds.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emotivoice.errors import InvalidConfigError, NoTrainingDataError
from emotivoice.extras import import_extra
from emotivoice.wakeword.augment import AugmentOptions, augment_window
from emotivoice.wakeword.data import WakeDataset, load_dataset, load_real
from emotivoice.wakeword.detector import WakeWordModel
from emotivoice.wakeword.evaluate import stream_threshold
from emotivoice.wakeword.export import export_onnx, quantize_onnx
from emotivoice.wakeword.features import (
    FRAME_HOP,
    HOP_FRAMES,
    WINDOW_FRAMES,
    WINDOW_SAMPLES,
    log_mel,
)
from emotivoice.wakeword.files import atomic_folder
from emotivoice.wakeword.model import MAX_PARAMETERS, ModelShape, build_model, count_parameters
from emotivoice.wakeword.teacher import TeacherOptions, train_teacher, whisper_window_mels
from emotivoice.wakeword.windows import crop_window, partial_window, place_window

__all__ = ["TrainOptions", "TrainResult", "build_windows", "train_model"]

logger = logging.getLogger(__name__)

Progress = Callable[[str, float, dict[str, float]], None]
_MIN_THRESHOLD, _MAX_THRESHOLD = 0.3, 0.95
_CALIBRATION = 200  # training windows kept for the static int8 quantisation


@dataclass(frozen=True)
class TrainOptions:
    """How a model is trained.

    Attributes:
        epochs: passes over the training windows.
        batch_size: windows per optimiser step.
        learning_rate: peak AdamW learning rate (cosine decay).
        weight_decay: AdamW weight decay.
        positive_copies: augmented windows drawn from each positive clip.
        negative_copies: augmented windows drawn from each confusable or sentence clip.
        real_windows: windows of real speech, as a multiple of the positive windows.
        partial_share: partial-phrase negatives, as a share of the positive windows.
        silence_share: background-only windows, as a share of the positive windows.
        spec_augment: share of training windows given a time and a band mask each epoch (off
            by default: with it, more negatives and early stopping the recipe measured worse).
        speed_perturb: share of training clips played faster or slower (0.85-1.15 times, by
            resampling: the pitch and the formants move with it, as a shorter or longer vocal
            tract would), so that a few dozen synthetic voices stand for more speakers.
        hard_negatives: after the main epochs, the training speech's windows (real recordings,
            sentences, confusables, scored at the detector's 80 ms hops) that the model scores
            highest are added as negatives, this many of them (0: off), and the model is
            trained ``hard_epochs`` more epochs at a third of the learning rate.
        hard_epochs: the epochs of that second stage.
        distill: weight of the teacher's probabilities in the student's targets (0: hard labels
            only; 0.5: half each). The teacher (:mod:`emotivoice.wakeword.teacher`, a head on
            Whisper encoder layers) is trained first on the same windows.
        teacher: how the teacher is made, when ``distill`` is above 0.
        shape: the network.
        augment: augmentation probabilities and ranges.
        target_false_rate: share of everyday validation negatives (real speech, sentences,
            silence) allowed above the threshold.
        seed: everything random follows from it.
        device: ``cpu`` or ``cuda``.
        threads: PyTorch CPU threads (0: PyTorch's default). One by default: on a 2-core
            machine that runs anything else, two threads wait on each other (an epoch took
            five times longer with two than with one on a busy machine).
    """

    epochs: int = 8
    batch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 1e-3
    positive_copies: int = 2
    negative_copies: int = 1
    real_windows: float = 2.0
    partial_share: float = 0.4
    silence_share: float = 0.1
    spec_augment: float = 0.0
    speed_perturb: float = 0.0
    hard_negatives: int = 6000
    hard_epochs: int = 3
    distill: float = 0.0
    teacher: TeacherOptions = field(default_factory=TeacherOptions)
    shape: ModelShape = field(default_factory=ModelShape)
    augment: AugmentOptions = field(default_factory=AugmentOptions)
    target_false_rate: float = 1e-3
    seed: int = 0
    device: str = "cpu"
    threads: int = 1

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise InvalidConfigError("epochs and batch_size must be at least 1.")
        if self.positive_copies < 1 or self.negative_copies < 0 or self.real_windows < 0:
            raise InvalidConfigError("positive_copies must be >= 1; other window counts >= 0.")
        if self.device not in ("cpu", "cuda"):
            raise InvalidConfigError(f"device must be cpu or cuda, not {self.device!r}.")
        if not 0 <= self.distill <= 1:
            raise InvalidConfigError("distill must lie in [0, 1].")
        if not 0 <= self.speed_perturb <= 1 or self.hard_negatives < 0 or self.hard_epochs < 0:
            raise InvalidConfigError(
                "speed_perturb must lie in [0, 1]; hard_negatives and hard_epochs must be >= 0."
            )
        if not 0 < self.target_false_rate < 1:
            raise InvalidConfigError("target_false_rate must lie in (0, 1).")


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced.

    Attributes:
        run: the run folder.
        onnx: the float ONNX model; ``onnx_int8``: its int8 quantisation.
        threshold: the detection threshold chosen on the validation windows.
        parameters: trainable parameters of the network.
        epochs: per-epoch metrics (also in ``metrics.jsonl``).
        best_epoch: the epoch whose weights were kept.
        seconds: wall time of the whole run.
        windows: training windows per label, ``{"positive": n, "negative": n}``.
    """

    run: Path
    onnx: Path
    onnx_int8: Path
    threshold: float
    parameters: int
    epochs: tuple[dict[str, float], ...]
    best_epoch: int
    seconds: float
    windows: dict[str, int]


def build_windows(
    dataset: WakeDataset,
    split: str,
    real: Sequence[np.ndarray],
    options: TrainOptions,
    seed: int,
    teacher_mels: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Augmented log-mel windows ``(n, WINDOW_FRAMES, N_MELS)`` float16, labels ``(n,)`` and
    each window's kind (``positive``, ``partial``, ``confusable``, ``sentence``, ``real``,
    ``silence``). With ``teacher_mels``, each window's Whisper log-mel is appended to it."""
    rng = np.random.default_rng(seed)
    positives = dataset.select(split, "positive")
    if not positives:
        raise NoTrainingDataError(f"The data set has no {split} positives to train on.")
    share = options.speed_perturb if split == "train" else 0.0

    def speed(clip: np.ndarray) -> np.ndarray:
        return _speed_perturb(clip, rng, share)

    windows: list[tuple[np.ndarray, str]] = []
    copies = options.positive_copies if split == "train" else 1
    for clip in positives:
        windows += [(place_window(speed(clip), rng), "positive") for _ in range(copies)]
    n_pos = len(windows)
    for _ in range(int(n_pos * options.partial_share)):
        clip = positives[int(rng.integers(len(positives)))]
        windows.append((partial_window(speed(clip), rng), "partial"))
    repeats = max(options.negative_copies, 1 if split != "train" else 0)
    for kind in ("confusable", "sentence"):
        for clip in dataset.select(split, kind):
            windows += [(crop_window(speed(clip), rng), kind) for _ in range(repeats)]
    if real:
        for _ in range(int(n_pos * options.real_windows)):
            windows.append((crop_window(real[int(rng.integers(len(real)))], rng), "real"))
    for _ in range(int(n_pos * options.silence_share)):
        windows.append((np.zeros_like(windows[0][0]), "silence"))
    babble = list(real) or dataset.select(split, "sentence") or positives
    features = np.zeros((len(windows), WINDOW_FRAMES, log_mel(windows[0][0]).shape[1]), np.float16)
    for i, (window, _) in enumerate(windows):
        augmented = augment_window(window, rng, babble, options.augment)
        features[i] = log_mel(augmented)[:WINDOW_FRAMES]
        if teacher_mels is not None:  # the same window as the teacher hears it
            teacher_mels.append(whisper_window_mels(augmented[None])[0])
    kinds = np.array([kind for _, kind in windows])
    return features, (kinds == "positive").astype(np.float32), kinds


_SPEED_RANGE = (0.85, 1.15)


def _speed_perturb(clip: np.ndarray, rng: np.random.Generator, share: float) -> np.ndarray:
    """``clip`` resampled to play ``factor`` times as fast (with its pitch and formants), for a
    ``share`` of the calls; the others, and every call when ``share`` is 0, return it as is
    (drawing nothing from ``rng``, so the windows of a recipe without it do not change)."""
    if share <= 0 or rng.random() >= share:
        return clip
    factor = rng.uniform(*_SPEED_RANGE)
    length = max(2, round(len(clip) / factor))
    return np.interp(np.linspace(0, len(clip) - 1, length), np.arange(len(clip)), clip).astype(
        np.float32
    )


def _hop_windows(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every window a live detector would score in ``samples`` (one every 80 ms), as log-mel
    ``(n, WINDOW_FRAMES, N_MELS)``, and each window's end (its last sample + 1)."""
    frames = log_mel(samples)
    ends = np.arange(WINDOW_FRAMES, len(frames) + 1, HOP_FRAMES)
    index = ends[:, None] - WINDOW_FRAMES + np.arange(WINDOW_FRAMES)[None, :]
    return frames[index], (ends - WINDOW_FRAMES) * FRAME_HOP + WINDOW_SAMPLES


def mine_hard_negatives(
    model: Any, recordings: Sequence[np.ndarray], count: int, device: str = "cpu"
) -> list[np.ndarray]:
    """The ``count`` windows of ``recordings`` (audio with no wake phrase) that ``model``
    scores highest, as audio windows. Each recording gives at most its few highest windows, a
    window's length apart, so that one loud false accept does not fill the list with its
    neighbours."""
    padded = [_pad_front(r) for r in recordings]
    found: list[tuple[float, int, int]] = []
    for index, samples in enumerate(padded):
        windows, ends = _hop_windows(samples)
        scores = predict(model, windows, device)
        order = np.argsort(-scores)
        taken: list[int] = []
        for i in order[:8]:
            if all(abs(int(ends[i]) - e) >= WINDOW_SAMPLES for e in taken):
                taken.append(int(ends[i]))
                found.append((float(scores[i]), index, int(ends[i])))
    found.sort(reverse=True)
    return [padded[index][end - WINDOW_SAMPLES : end] for _, index, end in found[:count]]


def _pad_front(samples: np.ndarray) -> np.ndarray:
    """``samples`` after silence (half a window, or enough for one window), as a live stream
    starts: its first windows hold the recording's beginning. Float32."""
    pad = np.zeros(max(WINDOW_SAMPLES // 2, WINDOW_SAMPLES - len(samples)), np.float32)
    return np.concatenate([pad, np.asarray(samples, np.float32)])


def _real_sample(
    dataset: WakeDataset, split: str, options: TrainOptions, seed: int
) -> list[np.ndarray]:
    """Enough real recordings of ``split`` for its windows (decoding them all would take
    longer than a small training run)."""
    items = [r for r in dataset.real if r.split == split]
    copies = options.positive_copies if split == "train" else 1
    needed = int(len(dataset.select(split, "positive")) * copies * options.real_windows) + 50
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.permutation(len(items))[:needed])
    return load_real([items[i] for i in chosen])


_MAX_TIME_MASK, _MAX_BAND_MASK = 15, 6  # frames, mel bands


def _spec_augment(windows: np.ndarray, rng: np.random.Generator, share: float) -> np.ndarray:
    """SpecAugment-style masks on a share of the windows: one run of frames and one of bands
    set to the window's mean (Park et al. 2019), so the network cannot lean on one cue."""
    out = windows.astype(np.float32)
    for i in np.flatnonzero(rng.random(len(out)) < share):
        t0 = int(rng.integers(0, out.shape[1] - _MAX_TIME_MASK))
        f0 = int(rng.integers(0, out.shape[2] - _MAX_BAND_MASK))
        fill = out[i].mean()
        out[i, t0 : t0 + int(rng.integers(1, _MAX_TIME_MASK + 1))] = fill
        out[i, :, f0 : f0 + int(rng.integers(1, _MAX_BAND_MASK + 1))] = fill
    return out


def _epoch(
    model: Any,
    torch: Any,
    optimiser: Any,
    scheduler: Any,
    x: np.ndarray,
    y: np.ndarray,
    options: TrainOptions,
    rng: np.random.Generator,
) -> float:
    model.train()
    order = rng.permutation(len(y))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    total = 0.0
    for start in range(0, len(order), options.batch_size):
        index = order[start : start + options.batch_size]
        batch = torch.from_numpy(_spec_augment(x[index], rng, options.spec_augment))
        batch = batch.to(options.device)
        target = torch.from_numpy(y[index]).to(options.device)
        loss = loss_fn(model(batch), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        scheduler.step()
        total += loss.item() * len(index)
    return total / len(order)


def predict(model: Any, x: np.ndarray, device: str = "cpu", batch_size: int = 512) -> np.ndarray:
    """Scores (probabilities) of the torch ``model`` on windows ``x``."""
    torch = import_extra("torch", "torch", "Training a wake-word model")
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            batch = torch.from_numpy(x[start : start + batch_size].astype(np.float32)).to(device)
            out.append(torch.sigmoid(model(batch)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _validate(
    scores: np.ndarray, labels: np.ndarray, kinds: np.ndarray, target_false_rate: float
) -> dict[str, float]:
    """Validation figures. The threshold is set on everyday negatives (real speech, ordinary
    sentences, silence: what false accepts per hour are made of) to accept
    ``target_false_rate`` of them; confusables and partial phrases are reported beside it."""
    everyday = np.isin(kinds, ("real", "sentence", "silence"))
    negatives = scores[everyday] if everyday.any() else scores[labels == 0]
    threshold = float(np.quantile(negatives, 1 - target_false_rate)) if negatives.size else 0.5
    threshold = float(np.clip(threshold, _MIN_THRESHOLD, _MAX_THRESHOLD))
    positives = scores[labels == 1]
    eps = 1e-7
    p = np.clip(scores, eps, 1 - eps)
    metrics = {
        "val_loss": float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))),
        "val_frr": float(np.mean(positives < threshold)) if positives.size else 1.0,
        "val_threshold": threshold,
        "val_false_rate": float(np.mean(negatives >= threshold)) if negatives.size else 0.0,
    }
    for kind in ("confusable", "partial"):
        chosen = scores[kinds == kind]
        if chosen.size:
            metrics[f"val_{kind}_accept"] = float(np.mean(chosen >= threshold))
    return metrics


def _tensorboard(folder: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional: metrics.jsonl holds the same numbers
        return None
    return SummaryWriter(str(folder / "tensorboard"))


def train_model(
    data: Path | WakeDataset,
    run: Path,
    options: TrainOptions | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train a wake-word model on a generated data set and export it into the run folder.

    Args:
        data: a data set folder (``generate``'s output) or a loaded :class:`WakeDataset`.
        run: the run folder to create (must not hold files already).
        options: the recipe.
        progress: called with (stage, fraction done, latest metrics).

    Raises:
        NoTrainingDataError: the data set has no training positives.
        InvalidConfigError: the options are inconsistent, or the run folder is taken.
    """
    torch = import_extra("torch", "torch", "Training a wake-word model")
    options = options or TrainOptions()
    started = time.perf_counter()
    dataset = data if isinstance(data, WakeDataset) else load_dataset(data, ("train", "val"))
    if options.threads:
        torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    report = progress or (lambda stage, fraction, metrics: None)
    with atomic_folder(run) as folder:
        report("windows", 0.0, {})
        real_train = _real_sample(dataset, "train", options, options.seed)
        real_val = _real_sample(dataset, "val", options, options.seed + 1)
        teacher_mels: list[np.ndarray] | None = [] if options.distill > 0 else None
        x, y, _ = build_windows(dataset, "train", real_train, options, options.seed, teacher_mels)
        targets = y
        if teacher_mels is not None:
            report("teacher", 0.0, {})
            _, teacher_logits = train_teacher(
                np.stack(teacher_mels),
                y,
                options.teacher,
                options.device,
                options.seed,
                lambda fraction: report("teacher", fraction, {}),
            )
            del teacher_mels
            soft = 1.0 / (1.0 + np.exp(-teacher_logits))
            targets = ((1 - options.distill) * y + options.distill * soft).astype(np.float32)
        has_val = bool(dataset.select("val", "positive"))
        vx, vy, vkinds = (
            build_windows(dataset, "val", real_val, options, options.seed + 1)
            if has_val
            else (x[:0], y[:0], np.zeros(0, str))
        )
        model = build_model(options.shape).to(options.device)
        parameters = count_parameters(model)
        if parameters > MAX_PARAMETERS:
            raise InvalidConfigError(
                f"The network has {parameters} parameters; the limit is {MAX_PARAMETERS}."
            )
        steps = options.epochs * int(np.ceil(len(y) / options.batch_size))
        optimiser = torch.optim.AdamW(
            model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimiser, options.learning_rate, total_steps=steps, pct_start=0.15
        )
        rng = np.random.default_rng(options.seed)
        writer = _tensorboard(folder)
        history: list[dict[str, float]] = []
        best: tuple[float, int, dict[str, Any]] | None = None
        total_epochs = options.epochs + (options.hard_epochs if options.hard_negatives else 0)

        def run_epochs(stage: str, epochs: int, xs: np.ndarray, ys: np.ndarray) -> None:
            nonlocal best
            for _ in range(epochs):
                epoch = len(history) + 1
                loss = _epoch(model, torch, optimiser, scheduler, xs, ys, options, rng)
                metrics = {"epoch": float(epoch), "train_loss": loss}
                if has_val:
                    scores = predict(model, vx, options.device)
                    metrics |= _validate(scores, vy, vkinds, options.target_false_rate)
                history.append(metrics)
                log.write(json.dumps(metrics) + "\n")
                log.flush()
                if writer is not None:
                    for key, value in metrics.items():
                        writer.add_scalar(key, value, epoch)
                # the validation metric: false rejects at the target false-accept rate, then loss
                score = metrics.get("val_frr", 0.0) * 10 + metrics.get("val_loss", loss)
                if best is None or score < best[0]:
                    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    best = (score, epoch, state)
                report(stage, epoch / total_epochs, metrics)
                logger.info("epoch %d (%s): %s", epoch, stage, metrics)

        with (folder / "metrics.jsonl").open("w") as log:
            run_epochs("training", options.epochs, x, targets)
            if options.hard_negatives and options.hard_epochs:
                assert best is not None  # epochs >= 1
                model.load_state_dict(best[2])
                report("hard negatives", len(history) / total_epochs, {})
                recordings = [
                    *real_train,
                    *dataset.select("train", "sentence"),
                    *dataset.select("train", "confusable"),
                ]
                mined = mine_hard_negatives(
                    model, recordings, options.hard_negatives, options.device
                )
                babble = list(real_train) or dataset.select("train", "sentence")
                hard = np.stack(
                    [
                        log_mel(augment_window(w, rng, babble, options.augment))[:WINDOW_FRAMES]
                        for w in mined
                    ]
                ).astype(np.float16)
                logger.info("%d hard negatives mined", len(hard))
                x = np.concatenate([x, hard])
                y = np.concatenate([y, np.zeros(len(hard), np.float32)])
                targets = np.concatenate([targets, np.zeros(len(hard), np.float32)])
                rate = options.learning_rate / 3
                optimiser = torch.optim.AdamW(
                    model.parameters(), lr=rate, weight_decay=options.weight_decay
                )
                scheduler = torch.optim.lr_scheduler.OneCycleLR(
                    optimiser,
                    rate,
                    total_steps=options.hard_epochs * int(np.ceil(len(y) / options.batch_size)),
                    pct_start=0.15,
                )
                run_epochs("hard negatives", options.hard_epochs, x, targets)
        if writer is not None:
            writer.close()
        assert best is not None  # epochs >= 1
        model.load_state_dict(best[2])
        model = model.to("cpu").eval()
        threshold = history[best[1] - 1].get("val_threshold", 0.5)
        torch.save(model.state_dict(), folder / "model.pt")
        window_threshold = threshold
        if has_val and any(r.split == "val" for r in dataset.real):
            # windows cannot measure rates of one false accept in 45,000: stream the
            # validation speech and take the lowest threshold with <= 0.5 of them per hour
            report("threshold", 0.0, {})
            with tempfile.TemporaryDirectory(prefix="emotivoice-threshold-") as scratch:
                draft = export_onnx(
                    model, Path(scratch) / "draft.onnx", dataset.phrase.text, threshold
                )
                threshold = stream_threshold(WakeWordModel(draft), dataset)
        config = {
            "phrase": dataset.phrase.text,
            "threshold": threshold,
            "options": _jsonable(asdict(options)),
        }
        (folder / "config.json").write_text(json.dumps(config, indent=1))
        (folder / "data_card.json").write_text(json.dumps(asdict(dataset.card), indent=1))
        (folder / "threshold.json").write_text(
            json.dumps(
                {
                    "threshold": threshold,
                    "chosen_on": "validation real-speech stream, <= 0.5 false accepts per hour",
                    "window_threshold": window_threshold,
                    "target_false_rate": options.target_false_rate,
                }
            )
        )
        report("export", 1.0, {})
        export_onnx(
            model,
            folder / "model.onnx",
            dataset.phrase.text,
            threshold,
            {"parameters": parameters, "best_epoch": best[1]},
        )
        calibration = x[np.random.default_rng(options.seed).permutation(len(x))[:_CALIBRATION]]
        np.save(folder / "calibration.npy", calibration)
        quantize_onnx(folder / "model.onnx", folder / "model.int8.onnx", calibration)
    seconds = time.perf_counter() - started
    return TrainResult(
        run=run,
        onnx=run / "model.onnx",
        onnx_int8=run / "model.int8.onnx",
        threshold=threshold,
        parameters=parameters,
        epochs=tuple(history),
        best_epoch=best[1],
        seconds=seconds,
        windows={"positive": int(y.sum()), "negative": int(len(y) - y.sum())},
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value
