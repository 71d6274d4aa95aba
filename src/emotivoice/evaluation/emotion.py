"""Emotion benchmark: a backend scored on a labelled corpus through the real pipeline path.

Each clip is speech-cropped like a pipeline segment, encoded once by the fast Whisper runtime
(the states the default head reads in ``analyze``) and scored by the backend. Reported:
accuracy, unweighted average recall (UA), macro-F1, per-class recall, confusion matrix (JSON,
and PNG with the ``plots`` extra), and mean milliseconds per clip. A trained head records the
speakers it learned from and its own held-out evaluations: the benchmark counts the clips by
speakers the model has heard (a score on them measures fit, not generalisation) and prints those
evaluations beside its figures.

``cross_validate=K`` additionally trains heads with the recipe on K speaker-disjoint folds of
the corpus (the pipeline's own log-mel frames, the encoder prefix fine-tuned with the head as
in the recipe, no augmentation) and reports their pooled metrics: what a head trained on the
rest of this corpus reaches on unseen speakers. Fine-tuning runs on the CPU here: minutes per
fold for a corpus of a thousand clips.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emotivoice.emotion.backends import (
    EmotionBackend,
    EmotionOptions,
    WhisperHeadBackend,
    load_backend,
)
from emotivoice.emotion.head import tap_states
from emotivoice.emotion.labels import BASE_EMOTIONS
from emotivoice.emotion.torch_head import encoder_variables
from emotivoice.errors import MissingExtraError
from emotivoice.extras import pyplot
from emotivoice.metrics import classification_report
from emotivoice.training.config import TrainConfig
from emotivoice.training.corpora import read_corpus
from emotivoice.training.recipe import speaker_folds_report
from emotivoice.training.states import StateSet, prepare_clips

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmotionBenchmark:
    """Figures of one benchmark run."""

    dataset: str
    layout: str
    backend: str
    clips: int
    ms_per_clip: float
    report: dict[str, Any]
    cross_validation: dict[str, Any] | None
    # clips by speakers the model was trained on (None: the model does not record its speakers)
    seen_clips: int | None = None
    # the model's own held-out evaluations from its training (UA, accuracy, macro-F1 and
    # per-class recall by name: cross-corpus recall shows a class that does not transfer)
    stored_evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "layout": self.layout,
            "backend": self.backend,
            "clips": self.clips,
            "ms_per_clip": self.ms_per_clip,
            "report": self.report,
            "cross_validation": self.cross_validation,
            "seen_clips": self.seen_clips,
            "stored_evaluations": self.stored_evaluations,
        }


def training_record(backend: EmotionBackend) -> tuple[frozenset[str] | None, dict[str, Any]]:
    """The speakers a trained head learned from (``None``: not recorded, as for Hugging Face
    models and heads exported before it was) and its stored held-out evaluations."""
    if not isinstance(backend, WhisperHeadBackend):
        return None, {}
    metadata = backend.head.metadata
    speakers = metadata.get("training_speakers")
    evaluations = {
        name: {k: report[k] for k in ("ua", "accuracy", "macro_f1", "recall") if k in report}
        for name, report in metadata.get("evaluations", {}).items()
    }
    return (None if speakers is None else frozenset(speakers)), evaluations


def run_emotion_benchmark(
    dataset: Path,
    layout: str,
    options: EmotionOptions | None = None,
    max_clips: int | None = None,
    cross_validate: int = 0,
    seed: int = 0,
) -> EmotionBenchmark:
    """Score ``options.model`` on a corpus; optionally cross-validate the recipe on it."""
    from emotivoice.transcription import Transcriber, TranscriptionOptions

    options = options or EmotionOptions()
    labeled = read_corpus(dataset, layout)
    if max_clips is not None and len(labeled) > max_clips:
        chosen = np.random.default_rng(seed).choice(len(labeled), max_clips, replace=False)
        labeled = [labeled[i] for i in sorted(chosen)]
    clips = prepare_clips(labeled)
    backend = load_backend(options)
    heard, evaluations = training_record(backend)
    transcriber = Transcriber(TranscriptionOptions(encoder_window="full"))  # as heads were trained
    # the recipe on this corpus's clean clips, one fit per fold of ``epochs`` epochs (a soup,
    # copies or the small-corpus floor of steps would multiply the time)
    config = TrainConfig(augment_copies=0, seed=seed, soup=1, min_steps=0)
    states, predicted, elapsed = [], [], 0.0
    for clip in clips:
        started = time.perf_counter()
        encoded = transcriber.encode(clip.samples)
        p = backend.probabilities(clip.samples, encoded)
        elapsed += time.perf_counter() - started
        predicted.append(int(np.argmax(p)))
        if cross_validate >= 2:  # what the recipe trains on
            inputs = (
                encoded.own_features.T if config.adapter_rank else tap_states(encoded, config.tap)
            )
            states.append(np.asarray(inputs, np.float16))
    truth = np.array([BASE_EMOTIONS.index(c.emotion) for c in clips])
    report = classification_report(truth, np.array(predicted), BASE_EMOTIONS)
    cross = None
    if cross_validate >= 2:
        data = StateSet(
            states,
            truth,
            np.array([c.speaker for c in clips]),
            np.array([c.corpus for c in clips]),
            np.zeros(len(clips), bool),
            encoder_variables("base") if config.adapter_rank else None,
        )
        cross = _cross_validate(data, cross_validate, config)
    return EmotionBenchmark(
        dataset=str(dataset),
        layout=layout,
        backend=backend.name,
        clips=len(clips),
        ms_per_clip=round(1000 * elapsed / max(len(clips), 1), 1),
        report=report,
        cross_validation=cross,
        seen_clips=None if heard is None else sum(c.speaker in heard for c in clips),
        stored_evaluations=evaluations,
    )


def _cross_validate(data: StateSet, folds: int, config: TrainConfig) -> dict[str, Any]:
    folds = min(folds, len(set(data.speakers.tolist())))
    return {"folds": folds, **speaker_folds_report(data, data.speakers, folds, config)}


def format_benchmark(result: EmotionBenchmark) -> str:
    """A readable table of the figures."""
    r = result.report
    lines = [
        f"{result.backend} on {result.dataset} ({result.layout}), {result.clips} clips, "
        f"{result.ms_per_clip:.1f} ms per clip (encoder + head)",
        f"accuracy {r['accuracy']:.3f}   UA {r['ua']:.3f}   macro-F1 {r['macro_f1']:.3f}",
        recall_line(r["recall"]),
        "confusion (rows: truth, columns: predicted; " + ", ".join(BASE_EMOTIONS) + ")",
        *("  " + " ".join(f"{n:5d}" for n in row) for row in r["confusion"]),
    ]
    if result.seen_clips:
        lines.append(
            f"note: {result.seen_clips} of {result.clips} clips are by speakers this model was "
            "trained on: these figures measure fit, not generalisation "
            "(--cross-validate K trains heads without the tested speakers)"
        )
    if result.cross_validation:
        c = result.cross_validation
        lines.append(
            f"recipe, {c['folds']} speaker-disjoint folds on this corpus: "
            f"accuracy {c['accuracy']:.3f}   UA {c['ua']:.3f}   macro-F1 {c['macro_f1']:.3f}"
        )
        lines.append("  " + recall_line(c["recall"]))
    if result.stored_evaluations:
        lines.append("the model's own held-out evaluations (stored when it was trained):")
        for name, e in result.stored_evaluations.items():
            lines.append(
                f"  {name}: accuracy {e['accuracy']:.3f}   UA {e['ua']:.3f}   "
                f"macro-F1 {e['macro_f1']:.3f}"
            )
            if e.get("recall"):
                lines.append("    " + recall_line(e["recall"]))
    return "\n".join(lines)


# a class recalled less often than this is called out (issue 24's floor across corpora)
LOW_RECALL = 0.25


def recall_line(recall: dict[str, float]) -> str:
    """Per-class recall, the classes under :data:`LOW_RECALL` marked with ``!``."""
    return "recall  " + "  ".join(
        f"{k} {v:.2f}{'!' if v < LOW_RECALL else ''}" for k, v in recall.items()
    )


def write_confusion(result: EmotionBenchmark, folder: Path) -> list[Path]:
    """``emotion-benchmark.json`` and, with matplotlib installed, ``confusion.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "emotion-benchmark.json"]
    written[0].write_text(json.dumps(result.to_dict(), indent=1))
    try:
        plt = pyplot()
    except MissingExtraError as error:  # the figures are optional; the report is written
        logger.warning("%s: no PNG", error.message)
        return written
    confusion = np.array(result.report["confusion"], dtype=float)
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(BASE_EMOTIONS)), BASE_EMOTIONS, rotation=45, ha="right")
    ax.set_yticks(range(len(BASE_EMOTIONS)), BASE_EMOTIONS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), n in np.ndenumerate(confusion):
        ax.text(
            j, i, str(int(n)), ha="center", va="center", color="white" if rates[i, j] > 0.5 else "k"
        )
    ax.set_title(f"{result.backend}: UA {result.report['ua']:.3f}")
    fig.colorbar(image, ax=ax, label="recall")
    fig.tight_layout()
    png = folder / "confusion.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return [*written, png]
