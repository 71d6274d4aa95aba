"""``wakeword search``: a hyperparameter search over the training recipe with Optuna.

Each trial trains a model (:func:`~emotivoice.wakeword.train.train_model`, a black box here)
with knobs drawn by a seeded TPE sampler, then scores it as a stream on the data set's
validation split (never the test split): the objective is the share of validation positives
missed at the lowest threshold that keeps false accepts at or under 0.5 per hour of the
validation speech, ties broken by the equal error rate (objective = false rejects + EER/1000).
A median pruner stops a trial early when its per-epoch validation false rejects (window level,
from the training run's progress) fall behind the median of the earlier trials at that epoch.

The output folder::

    study.db        the Optuna study (SQLite): running the search again continues it
    trials/NNN/     every finished trial's run folder (train's layout; pruned trials leave none)
    best/           a copy of the best trial's run folder, plus trial.json (its knobs, figures)
    search.json     every trial: state, knobs, objective, figures; the best trial
    search.md       the same as a table

One search process per output folder: a trial left running by a killed process is marked
failed when the search is started again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from emotivoice.errors import InvalidConfigError, NoTrainingDataError
from emotivoice.extras import import_extra
from emotivoice.wakeword.augment import AugmentOptions
from emotivoice.wakeword.data import WakeDataset, load_dataset
from emotivoice.wakeword.detector import WakeWordModel
from emotivoice.wakeword.evaluate import (
    EvaluationOptions,
    TestStreams,
    build_test_streams,
    evaluate_streams,
)
from emotivoice.wakeword.model import MAX_PARAMETERS, ModelShape, build_model, count_parameters
from emotivoice.wakeword.train import TrainOptions, train_model

__all__ = [
    "DEFAULT_SPACE",
    "Knob",
    "SearchOptions",
    "SearchResult",
    "TrialRecord",
    "search",
]

logger = logging.getLogger(__name__)

STUDY_FILE = "study.db"
STUDY_NAME = "wakeword"
_DILATIONS = (1, 2, 1, 2, 4, 8, 1, 2)  # a network of depth d takes the first d
_EER_WEIGHT = 1e-3  # EER only breaks ties: below one missed positive in a thousand


@dataclass(frozen=True)
class Knob:
    """One searched setting.

    Attributes:
        name: a :class:`TrainOptions` field (``learning_rate``), an
            :class:`AugmentOptions` field (``augment.room``), or the network's
            ``shape.channels``, ``shape.kernel``, ``shape.depth`` (residual blocks),
            ``shape.dropout``. A knob naming a field that ``TrainOptions`` lacks is skipped.
        low, high: the range (ints for integer knobs).
        kind: ``float``, ``int`` or ``choice`` (``choices`` then lists the values).
        log: sample on a log scale.
        choices: the values of a ``choice`` knob.
    """

    name: str
    low: float = 0.0
    high: float = 1.0
    kind: str = "float"
    log: bool = False
    choices: tuple[Any, ...] = ()


#: The recipe's main knobs. Adding one is one line here.
DEFAULT_SPACE: tuple[Knob, ...] = (
    Knob("learning_rate", 5e-4, 1e-2, log=True),
    Knob("weight_decay", 1e-5, 1e-2, log=True),
    Knob("positive_copies", 1, 4, "int"),
    Knob("real_windows", 0.5, 3.0),
    Knob("partial_share", 0.0, 1.0),
    Knob("silence_share", 0.0, 0.3),
    Knob("spec_augment", 0.0, 0.5),
    Knob("speed_perturb", 0.0, 1.0),
    Knob("hard_negatives", 0, 5000, "int"),
    Knob("shape.channels", kind="choice", choices=(32, 48, 64, 96, 128)),
    Knob("shape.depth", 4, 8, "int"),
    Knob("shape.kernel", kind="choice", choices=(5, 7, 9)),
    Knob("shape.dropout", 0.0, 0.3),
    Knob("augment.room", 0.0, 1.0),
    Knob("augment.background", 0.2, 1.0),
    Knob("augment.band_limit", 0.0, 0.5),
    Knob("augment.codec", 0.0, 0.3),
)


@dataclass(frozen=True)
class SearchOptions:
    """How the search runs.

    Attributes:
        base: the recipe the knobs change (device, threads, batch size, training seed, and
            every setting no knob names).
        epochs: the range of epochs searched (``(n, n)``: fixed).
        space: the searched knobs.
        seed: the sampler's seed (a resumed search continues from ``seed`` + trials so far).
        timeout_s: start no new trial after this many seconds (``None``: no limit).
        prune: stop trials that fall behind on the per-epoch validation metric.
        target_fa_per_hour: the false-accept rate at which false rejects are read.
    """

    base: TrainOptions = field(default_factory=TrainOptions)
    epochs: tuple[int, int] = (4, 16)
    space: tuple[Knob, ...] = DEFAULT_SPACE
    seed: int = 0
    timeout_s: float | None = None
    prune: bool = True
    target_fa_per_hour: float = 0.5

    def __post_init__(self) -> None:
        if not 1 <= self.epochs[0] <= self.epochs[1]:
            raise InvalidConfigError(
                f"epochs must be a range (low, high) with 1 <= low <= high, not {self.epochs}."
            )
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise InvalidConfigError(f"timeout must be positive, not {self.timeout_s} s.")
        if self.target_fa_per_hour <= 0:
            raise InvalidConfigError("target_fa_per_hour must be positive.")
        for knob in self.space:
            if knob.kind not in ("float", "int", "choice"):
                raise InvalidConfigError(f"Knob {knob.name}: kind must be float, int or choice.")
            if knob.kind == "choice" and not knob.choices:
                raise InvalidConfigError(f"Knob {knob.name}: a choice knob needs choices.")
            if knob.kind != "choice" and not knob.low <= knob.high:
                raise InvalidConfigError(f"Knob {knob.name}: low must not exceed high.")


@dataclass(frozen=True)
class TrialRecord:
    """One trial of the study.

    Attributes:
        number: the trial's number in the study (its folder is ``trials/NNN``).
        state: ``complete``, ``pruned``, ``fail`` or ``running``.
        params: the knobs it drew.
        value: the objective (false rejects + EER/1000), ``None`` unless complete.
        false_reject_rate: validation false rejects at the target false-accept rate.
        eer: validation equal error rate.
        threshold: the threshold of that operating point.
        fa_per_hour: false accepts per hour there.
        seconds: wall time of the trial.
        folder: its run folder, when kept.
        pruned_at: the epoch it was stopped after, for a pruned trial.
    """

    number: int
    state: str
    params: dict[str, Any]
    value: float | None = None
    false_reject_rate: float | None = None
    eer: float | None = None
    threshold: float | None = None
    fa_per_hour: float | None = None
    seconds: float | None = None
    folder: str | None = None
    pruned_at: int | None = None


@dataclass(frozen=True)
class SearchResult:
    """A search's state after this call.

    Attributes:
        output: the search folder.
        trials: every trial of the study, this call's and earlier ones.
        new_trials: trials this call ran.
        best: the best complete trial (``None``: none completed yet).
        validation_hours: hours of real speech in the validation negative stream.
    """

    output: Path
    trials: tuple[TrialRecord, ...]
    new_trials: int
    best: TrialRecord | None
    validation_hours: float


def _apply(
    base: TrainOptions, params: dict[str, Any], epochs: int
) -> tuple[TrainOptions, ModelShape]:
    """The options a trial trains with: ``base`` changed by its knobs."""
    top: dict[str, Any] = {"epochs": epochs}
    augment: dict[str, Any] = {}
    shape: dict[str, Any] = {}
    for name, value in params.items():
        group, _, key = name.rpartition(".")
        if group == "augment":
            augment[key] = value
        elif group == "shape":
            shape[key] = value
        else:
            top[key] = value
    depth = shape.pop("depth", None)
    if depth is not None:
        shape["dilations"] = _DILATIONS[: int(depth)]
    network = replace(base.shape, **shape)
    options = replace(base, **top, shape=network, augment=replace(base.augment, **augment))
    return options, network


def _usable(space: tuple[Knob, ...]) -> tuple[Knob, ...]:
    """The knobs naming fields that exist (a recipe field not there yet is skipped)."""
    groups = {
        "": {f.name for f in fields(TrainOptions)},
        "augment": {f.name for f in fields(AugmentOptions)},
        "shape": {f.name for f in fields(ModelShape)} | {"depth"},
    }
    usable = []
    for knob in space:
        group, _, key = knob.name.rpartition(".")
        if key in groups.get(group, set()) and key not in ("shape", "augment", "epochs"):
            usable.append(knob)
        else:
            logger.info("search: the recipe has no %s; that knob is skipped", knob.name)
    return tuple(usable)


def _suggest(trial: Any, knob: Knob) -> Any:
    if knob.kind == "choice":
        return trial.suggest_categorical(knob.name, list(knob.choices))
    if knob.kind == "int":
        return trial.suggest_int(knob.name, int(knob.low), int(knob.high), log=knob.log)
    return trial.suggest_float(knob.name, float(knob.low), float(knob.high), log=knob.log)


def _finite(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def _record(trial: Any) -> TrialRecord:
    attrs = trial.user_attrs
    state = trial.state.name.lower()
    return TrialRecord(
        number=trial.number,
        state=state,
        params=dict(trial.params),
        value=_finite(trial.value) if state == "complete" else None,
        false_reject_rate=attrs.get("false_reject_rate"),
        eer=attrs.get("eer"),
        threshold=attrs.get("threshold"),
        fa_per_hour=attrs.get("fa_per_hour"),
        seconds=attrs.get("seconds"),
        folder=attrs.get("folder"),
        pruned_at=attrs.get("pruned_at"),
    )


def _digest(dataset: WakeDataset) -> str:
    card = json.dumps(asdict(dataset.card), sort_keys=True, default=str)
    return hashlib.sha256(card.encode()).hexdigest()[:16]


def _check_output(output: Path) -> bool:
    """Whether ``output`` holds a search to resume; refuses a folder holding anything else."""
    if output.exists() and not output.is_dir():
        raise InvalidConfigError(f"{output} is a file, not a search folder; choose another.")
    if (output / STUDY_FILE).is_file():
        return True
    if output.exists() and any(output.iterdir()):
        raise InvalidConfigError(
            f"{output} already holds files and no {STUDY_FILE}: it is not a wake-word search "
            "to resume. Choose an empty or new folder."
        )
    return False


def _keep_best(output: Path, record: TrialRecord) -> None:
    """Copy the best trial's run folder to ``best/`` (replacing the previous best)."""
    assert record.folder is not None
    partial = output / ".best.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(output / record.folder, partial)
    (partial / "trial.json").write_text(json.dumps(asdict(record), indent=1))
    old = output / ".best.old"
    shutil.rmtree(old, ignore_errors=True)
    if (output / "best").exists():
        (output / "best").rename(old)
    partial.rename(output / "best")
    shutil.rmtree(old, ignore_errors=True)


def _summaries(
    output: Path,
    phrase: str,
    records: list[TrialRecord],
    best: TrialRecord | None,
    hours: float,
    target: float,
) -> None:
    objective = (
        f"validation false rejects at <= {target:g} false accepts per hour (streamed), "
        f"+ EER x {_EER_WEIGHT:g} to break ties; lower is better"
    )
    data = {
        "phrase": phrase,
        "study": STUDY_FILE,
        "objective": objective,
        "target_fa_per_hour": target,
        "validation_hours": round(hours, 4),
        "kept": "every complete trial's run folder under trials/NNN; best/ copies the best",
        "trials": [asdict(r) for r in records],
        "best": asdict(best) if best else None,
    }
    partial = output / ".search.json.partial"
    partial.write_text(json.dumps(data, indent=1))
    partial.replace(output / "search.json")

    def cell(value: float | None, percent: bool = False) -> str:
        if value is None:
            return "-"
        return f"{value:.1%}" if percent else f"{value:.3g}"

    lines = [
        f"# Hyperparameter search: {phrase!r}",
        "",
        f"Objective: {objective}. Validation speech: {hours:.2f} h (0 false accepts there "
        f"means fewer than {1 / max(hours, 1e-9):.2g} per hour).",
        "",
        f"Best: trial {best.number} (folder best/)" if best else "Best: none completed yet",
        "",
        f"| trial | state | FR @{target:g} FA/h | EER | threshold | s | knobs |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in records:
        knobs = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.params.items()
        )
        state = r.state + (f" (epoch {r.pruned_at})" if r.pruned_at else "")
        lines.append(
            f"| {r.number} | {state} | {cell(r.false_reject_rate, True)} | "
            f"{cell(r.eer, True)} | {cell(r.threshold)} | {cell(r.seconds)} | {knobs} |"
        )
    partial = output / ".search.md.partial"
    partial.write_text("\n".join(lines) + "\n")
    partial.replace(output / "search.md")


def search(
    data: Path | WakeDataset,
    output: Path,
    trials: int,
    options: SearchOptions | None = None,
    progress: Callable[[TrialRecord], None] | None = None,
) -> SearchResult:
    """Run ``trials`` more trials of the hyperparameter search kept in ``output``.

    Args:
        data: a data set folder (``generate``'s output) or a loaded data set; its train split
            trains, its validation split scores (the test split is never read).
        output: the search folder: new or empty to start, or one holding ``study.db`` to go on.
        trials: how many trials to add (pruned ones count).
        options: the search's settings.
        progress: called with each trial's record when it ends.

    Raises:
        InvalidConfigError: ``trials`` < 1, an output folder holding something else, a study
            of another phrase or data set.
        NoTrainingDataError: the data set has no validation positives to score trials on.
        MissingExtraError: optuna (or torch) is not installed.
    """
    if trials < 1:
        raise InvalidConfigError(f"trials must be at least 1, not {trials}.")
    options = options or SearchOptions()
    output = Path(output)
    resuming = _check_output(output)
    optuna = import_extra("optuna", "wakeword", "The wake-word hyperparameter search")
    dataset = data if isinstance(data, WakeDataset) else load_dataset(data, ("train", "val"))
    if not dataset.select("val", "positive"):
        raise NoTrainingDataError(
            "The data set has no validation positives: the search scores every trial on them."
        )
    phrase, digest = dataset.phrase.text, _digest(dataset)
    output.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{(output / STUDY_FILE).resolve()}")
    if resuming:
        study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
        if study.user_attrs.get("data_card") != digest:
            raise InvalidConfigError(
                f"The search in {output} was run on another data set "
                f"({study.user_attrs.get('phrase')!r}); give it that data set, or a new folder."
            )
        for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            logger.warning("search: trial %d was left running; marked failed", stale.number)
            storage.set_trial_state_values(stale._trial_id, optuna.trial.TrialState.FAIL)
    done = len(study.trials) if resuming else 0
    sampler = optuna.samplers.TPESampler(seed=options.seed + done)
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
        if options.prune
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        study_name=STUDY_NAME,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        direction="minimize",
        load_if_exists=True,
    )
    if not resuming:
        study.set_user_attr("phrase", phrase)
        study.set_user_attr("data_card", digest)
        study.set_user_attr("target_fa_per_hour", options.target_fa_per_hour)
    space = _usable(options.space)
    streams: TestStreams = build_test_streams(dataset, EvaluationOptions(split="val"))
    hours = streams.negative_hours
    if hours <= 0:
        logger.warning("search: the validation split has no real speech; FA/h cannot be read")
    target = float(study.user_attrs.get("target_fa_per_hour", options.target_fa_per_hour))

    def objective(trial: Any) -> float:
        started = time.perf_counter()
        params = {knob.name: _suggest(trial, knob) for knob in space}
        epochs = trial.suggest_int("epochs", *options.epochs)
        train_options, network = _apply(options.base, params, epochs)
        parameters = count_parameters(build_model(network))
        if parameters > MAX_PARAMETERS:
            trial.set_user_attr("pruned_at", 0)
            raise optuna.TrialPruned(f"{parameters} parameters, over {MAX_PARAMETERS}")
        reported: list[int] = []

        def report(stage: str, fraction: float, metrics: dict[str, float]) -> None:
            if stage != "training" or "val_frr" not in metrics or not options.prune:
                return
            step = int(metrics.get("epoch", len(reported) + 1))
            if reported and step <= reported[-1]:
                return
            reported.append(step)
            trial.report(metrics["val_frr"], step)
            if trial.should_prune():
                trial.set_user_attr("pruned_at", step)
                raise optuna.TrialPruned(f"behind the median after epoch {step}")

        folder = f"trials/{trial.number:03d}"
        try:
            result = train_model(dataset, output / folder, train_options, report)
        except optuna.TrialPruned:  # its time still counts
            trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))
            raise
        evaluation = evaluate_streams(WakeWordModel(result.onnx), streams)
        allowed = [p for p in evaluation.det if p.fa_per_hour <= target]
        point = min(allowed, key=lambda p: p.threshold) if allowed else evaluation.det[-1]
        eer = evaluation.eer if math.isfinite(evaluation.eer) else 1.0
        figures = {
            "false_reject_rate": point.false_reject_rate,
            "eer": eer,
            "threshold": point.threshold,
            "fa_per_hour": point.fa_per_hour,
            "model_threshold": result.threshold,
            "parameters": result.parameters,
            "best_epoch": result.best_epoch,
            "folder": folder,
            "seconds": round(time.perf_counter() - started, 1),
        }
        for key, value in figures.items():
            trial.set_user_attr(key, value)
        return point.false_reject_rate + _EER_WEIGHT * eer

    def after(study: Any, trial: Any) -> None:
        records = [_record(t) for t in study.get_trials(deepcopy=False)]
        best = _best(records)
        if best is not None and best.number == trial.number:
            _keep_best(output, best)
        _summaries(output, phrase, records, best, hours, target)
        if progress is not None:
            progress(next(r for r in records if r.number == trial.number))

    logger.info("search: %d trials so far; %d more on %s", done, trials, phrase)
    study.optimize(
        objective,
        n_trials=trials,
        timeout=options.timeout_s,
        callbacks=[after],
        gc_after_trial=True,
    )
    records = [_record(t) for t in study.get_trials(deepcopy=False)]
    return SearchResult(
        output=output,
        trials=tuple(records),
        new_trials=len(records) - done,
        best=_best(records),
        validation_hours=hours,
    )


def _best(records: list[TrialRecord]) -> TrialRecord | None:
    complete = [r for r in records if r.state == "complete" and r.value is not None]
    return min(complete, key=lambda r: (r.value, r.number)) if complete else None
