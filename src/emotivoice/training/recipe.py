"""The emotion recipe's evaluation and export: speaker-disjoint folds, cross-corpus runs, the
calibration and final fits, and the head file they make (``emotivoice train-emotion``).

Evaluation folds (:func:`run_recipe`) are speaker-disjoint: RAVDESS actor folds and nEMO speaker
folds (training on everything else, both corpora), and cross-corpus runs (train on one corpus
only, test on the other).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from emotivoice.emotion.labels import BASE_EMOTIONS
from emotivoice.metrics import classification_report
from emotivoice.training.config import TrainConfig
from emotivoice.training.fit import (
    FitJob,
    fit_temperature,
    head_extras,
    run_fit_job,
    training_speakers,
)
from emotivoice.training.states import StateSet

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
    arrays = results["final"][0][1] | head_extras(temperature, metadata)
    return RecipeResult(evaluations, arrays, config, calibration)
