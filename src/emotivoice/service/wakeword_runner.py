"""What a worker does with a wake-word training job: generate the phrase's data, train the
student, evaluate it as a stream, keep a few clips to listen to.

It runs in a worker process (the Celery task in :mod:`emotivoice.service.jobs`: the embedded
worker that ``serve`` starts, or a scale-out worker), never in the API process: a run is
minutes of CPU. Progress (stage, percent, the latest epoch's loss and validation figures) is
written to the job's row; a heartbeat thread keeps it fresh between reports, and the janitor
fails a job whose worker stopped. A cancelled or deleted job stops at its next report and
leaves no folder behind.

The run folder (:meth:`~emotivoice.service.storage.Store.wakeword_dir`) holds ``data/`` (the
generated data set), ``run/`` (the training run and its ONNX files), ``evaluation/``
(``evaluation.json``, ``det.json``, ``det.png``) and ``samples/`` (a few generated clips as WAV
and ``samples.json``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from emotivoice.audio import SAMPLE_RATE, encode_audio
from emotivoice.errors import EmotiVoiceError, NoTrainingDataError
from emotivoice.service.errors import api_error
from emotivoice.service.runner import Heartbeat
from emotivoice.service.schemas import WakeWordOptionsIn
from emotivoice.service.settings import Settings
from emotivoice.service.storage import Store
from emotivoice.service.storage.wakeword import (
    DATA_FOLDER,
    EVALUATION_FOLDER,
    RUN_FOLDER,
    SAMPLES_FOLDER,
)

__all__ = ["SAMPLES_FILE", "real_speech_dir", "run_wakeword_job"]

logger = logging.getLogger(__name__)

SAMPLES_FILE = "samples.json"
DATA_DIR_ENV = "EMOTIVOICE_DATA_DIR"  # the shared data, as the benchmarks find it
#: generated clips kept to listen to, per kind (from the training split)
SAMPLES_PER_KIND = {"positive": 4, "confusable": 4, "sentence": 2}
# progress percent at the start of each stage
_SPANS = {
    "synthesising": (0.0, 30.0),
    "windows": (30.0, 35.0),
    "training": (35.0, 80.0),
    "threshold": (80.0, 86.0),
    "export": (86.0, 90.0),
    "evaluating": (90.0, 99.0),
}
_STAGE_TEXT = {
    "synthesising": "generating clips with the offline voices",
    "windows": "drawing and augmenting training windows",
    "threshold": "choosing the threshold on validation speech",
    "export": "exporting ONNX (float and int8)",
    "evaluating": "evaluating as a stream",
}


class _JobLost(Exception):
    """The job was cancelled or deleted while it ran."""


class _Beat(Heartbeat):
    """Keeps the job's heartbeat fresh while the library works; carries its progress writes."""

    def __init__(self, store: Store, job_id: str) -> None:
        super().__init__(max(0.5, min(5.0, store.settings.stale_after_s / 4)), f"wakeword-{job_id}")
        self.store, self.job_id = store, job_id
        self.metrics: dict[str, Any] = {}

    def beat(self) -> bool:
        return bool(self.store.wakeword_progress(self.job_id))

    def update(self, stage: str, fraction: float, metrics: dict[str, float] | None = None) -> None:
        """Write the job's progress; raises :class:`_JobLost` once it was cancelled."""
        start, end = _SPANS.get(stage, (0.0, 99.0))
        percent = start + (end - start) * min(max(fraction, 0.0), 1.0)
        text = _STAGE_TEXT.get(stage, stage)
        if metrics:
            self.metrics = {k: _finite(v) for k, v in metrics.items()}
            if stage == "training" and "epoch" in metrics:
                text = f"training: epoch {int(metrics['epoch'])} of {int(metrics.get('epochs', 0))}"
        if self.lost.is_set() or not self.store.wakeword_progress(
            self.job_id, percent, text, dict(self.metrics)
        ):
            self.lost.set()
            raise _JobLost(self.job_id)


def _finite(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 5)


def real_speech_dir(settings: Settings) -> Path:
    """The real-speech folder wake-word jobs take their negatives from: the setting
    ``wakeword_speech_dir``, else ``EMOTIVOICE_DATA_DIR`` (the benchmarks' shared data).

    Raises:
        NoTrainingDataError: neither names a folder.
    """
    configured = settings.wakeword_speech_dir
    if configured is None and os.environ.get(DATA_DIR_ENV):
        configured = Path(os.environ[DATA_DIR_ENV])
    if configured is None or not configured.is_dir():
        raise NoTrainingDataError(
            "This server has no real-speech folder for wake-word training (the speech false "
            "accepts are counted on): ask the operator to set EMOTIVOICE_WAKEWORD_SPEECH_DIR "
            "to the shared data folder."
        )
    return configured


def run_wakeword_job(store: Store, job_id: str, worker: str) -> str:
    """Run a queued wake-word job; ``completed``, ``failed`` or ``skipped``.

    Raises:
        Exception: transient infrastructure errors (database unreachable) propagate; input
            errors and library errors mark the job failed.
    """
    row = store.claim_wakeword(job_id, worker)
    if row is None:
        logger.info("Skipping wake-word job %s: not queued", job_id)
        return "skipped"
    folder = store.wakeword_dir(job_id)
    try:
        with _Beat(store, job_id) as beat:
            result = _train(store.settings, row.phrase, row.options, folder, beat)
            if not store.complete_wakeword(job_id, result):
                raise _JobLost(job_id)
    except _JobLost:
        logger.info("Wake-word job %s was cancelled; stopping", job_id)
        shutil.rmtree(folder, ignore_errors=True)
        return "skipped"
    except EmotiVoiceError as e:
        _, code = api_error(e)
        store.fail_wakeword(job_id, code, e.message)
        logger.info("Wake-word job %s failed: %s", job_id, e.message)
        return "failed"
    logger.info("Completed wake-word job %s", job_id)
    return "completed"


def _train(
    settings: Settings, phrase: str, raw_options: dict[str, Any], folder: Path, beat: _Beat
) -> dict[str, Any]:
    from emotivoice.wakeword import (
        EvaluationOptions,
        GenerateOptions,
        TrainOptions,
        evaluate_model,
        generate_dataset,
        train_model,
        write_report,
    )

    options = WakeWordOptionsIn(**raw_options).resolved()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    data = folder / DATA_FOLDER
    generate = GenerateOptions(
        positives=options["positives"],
        confusables=options["confusables"],
        sentences=options["sentences"],
        val_positives=options["val_positives"],
        test_positives=options["test_positives"],
        engines=("espeak-ng", "flite"),
        seed=options["seed"],
        workers=1,
    )
    beat.update("synthesising", 0.0)
    card = generate_dataset(
        phrase, data, real_speech_dir(settings), generate, lambda s, f: beat.update(s, f)
    )
    samples = _keep_samples(data, folder / SAMPLES_FOLDER)
    train = TrainOptions(
        epochs=options["epochs"],
        real_windows=options["real_windows"],
        hard_negatives=options["hard_negatives"],
        seed=options["seed"],
        threads=1,
    )
    epochs = train.epochs + (train.hard_epochs if train.hard_negatives else 0)
    beat.metrics = {"epochs": epochs}

    def training(stage: str, fraction: float, metrics: dict[str, float]) -> None:
        beat.update(stage, fraction, {**metrics, "epochs": epochs} if metrics else None)

    trained = train_model(data, folder / RUN_FOLDER, train, training)
    beat.update("evaluating", 0.0)
    report = evaluate_model(
        trained.onnx,
        data,
        EvaluationOptions(max_negative_hours=options["evaluation_hours"]),
        lambda s, f: beat.update("evaluating", f),
    )
    write_report(report, folder / EVALUATION_FOLDER)
    figures = report.to_dict()
    figures.pop("det")
    return {
        "evaluation": figures,
        "threshold": trained.threshold,
        "parameters": trained.parameters,
        "best_epoch": trained.best_epoch,
        "epochs": [{k: _finite(v) for k, v in e.items()} for e in trained.epochs],
        "train_seconds": round(trained.seconds, 1),
        "windows": trained.windows,
        "data": {
            "clips": card.clips,
            "tts_hours": card.tts_hours,
            "real_speech_hours": card.real_speech_hours,
            "confusable_phrases": card.confusable_phrases[:20],
        },
        "samples": len(samples),
    }


def _keep_samples(data: Path, out: Path) -> list[dict[str, Any]]:
    """A few training clips of each kind as WAV files (and ``samples.json``), voices varied."""
    from emotivoice.wakeword import load_dataset

    dataset = load_dataset(data, ("train",))
    out.mkdir(parents=True, exist_ok=True)
    kept: list[dict[str, Any]] = []
    for kind, count in SAMPLES_PER_KIND.items():
        voices: set[str] = set()
        chosen = 0
        for clip, audio in zip(dataset.clips, dataset.audio, strict=True):
            if clip.kind != kind or clip.voice in voices or chosen >= count:
                continue
            voices.add(clip.voice)
            chosen += 1
            name = f"{kind}-{chosen}.wav"
            encode_audio(audio, "wav", "pcm_s16le", target=out / name)
            record = {"name": name, **{k: v for k, v in asdict(clip).items() if k != "split"}}
            record["seconds"] = round(len(audio) / SAMPLE_RATE, 2)
            kept.append(record)
    (out / SAMPLES_FILE).write_text(json.dumps(kept, indent=1))
    return kept
