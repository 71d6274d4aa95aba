"""Explain analysed segments: one entry point, one result object, JSON and plots.

Methods (``methods=``): ``shapley`` (window Shapley + LIME + deletion faithfulness, one table of
coalition evaluations), ``counterfactual`` (prosody transforms), ``attention`` (encoder
self-attention and rollout, PyTorch path) and ``gradients`` (Integrated Gradients on the
log-mel, PyTorch path). Evaluation counts and wall times are recorded per method.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emotivoice.emotion.labels import BASE_EMOTIONS
from emotivoice.errors import InvalidConfigError
from emotivoice.explain.attribution import (
    AttributionOptions,
    BatchScorer,
    TimeAttribution,
    attribute_time,
)
from emotivoice.explain.counterfactual import CounterfactualReport, counterfactuals

logger = logging.getLogger(__name__)

METHODS = ("shapley", "counterfactual", "attention", "gradients")
DEFAULT_METHODS = ("shapley", "counterfactual")
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class SegmentExplanation:
    """Everything computed to explain one segment's predicted emotion."""

    segment: int
    start: float
    end: float
    predicted: str
    probabilities: dict[str, float]
    attribution: TimeAttribution | None
    counterfactual: CounterfactualReport | None
    attention: Any | None = None
    gradients: Any | None = None
    cost: dict[str, dict[str, float]] = field(default_factory=dict)
    features: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (attention and saliency downsampled for the web UI)."""
        data: dict[str, Any] = {
            "segment": self.segment,
            "start": self.start,
            "end": self.end,
            "predicted": self.predicted,
            "probabilities": self.probabilities,
            "cost": self.cost,
            "features": list(self.features),
        }
        if self.attribution is not None:
            data["attribution"] = asdict(self.attribution) | {
                "supporting": list(self.attribution.supporting),
                "opposing": list(self.attribution.opposing),
            }
        if self.counterfactual is not None:
            data["counterfactual"] = asdict(self.counterfactual)
        if self.attention is not None:
            data["attention"] = {
                "position_seconds": self.attention.position_seconds,
                "rollout": [round(float(v), 5) for v in self.attention.rollout],
                "layers": [_pool(a, 100).round(5).tolist() for a in self.attention.layers],
            }
        if self.gradients is not None:
            data["gradients"] = {
                "frame_seconds": self.gradients.frame_seconds * _factor(self.gradients.values, 300),
                "steps": self.gradients.steps,
                "convergence_delta": round(self.gradients.convergence_delta, 5),
                "saliency": _pool(self.gradients.values, 300, rows=False).round(6).tolist(),
            }
        return data


def _factor(matrix: np.ndarray, limit: int) -> int:
    return max(1, -(-matrix.shape[-1] // limit))


def _pool(matrix: np.ndarray, limit: int, rows: bool = True) -> np.ndarray:
    """Average-pool the last axis (and the first, if ``rows``) to at most ``limit`` entries."""
    k = _factor(matrix, limit)
    out = matrix[..., : matrix.shape[-1] // k * k].reshape(*matrix.shape[:-1], -1, k).mean(-1)
    if rows and out.shape[0] > limit:
        r = -(-out.shape[0] // limit)
        out = out[: out.shape[0] // r * r].reshape(-1, r, out.shape[1]).mean(1)
    return np.asarray(out)


class _CountingScorer:
    """Wraps a scorer to count model evaluations."""

    def __init__(self, scorer: BatchScorer) -> None:
        self.scorer, self.calls = scorer, 0

    def __call__(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        self.calls += len(waves)
        return self.scorer(waves)


def _cost(evaluations: int, started: float) -> dict[str, float]:
    return {"evaluations": evaluations, "seconds": round(time.perf_counter() - started, 3)}


def feature_context(features: Any) -> tuple[dict[str, Any], ...]:
    """The segment's acoustic features beside typical ranges (``feature_ranges.json``)."""
    if features is None:
        return ()
    from importlib import resources

    table = json.loads(
        resources.files("emotivoice.explain").joinpath("feature_ranges.json").read_text()
    )["ranges"]
    values = features.to_dict()
    rows = []
    for name, (low, high) in table.items():
        value = values.get(name)
        if value is None:
            continue
        where = "below" if value < low else "above" if value > high else "within"
        rows.append({"name": name, "value": value, "low": low, "high": high, "position": where})
    return tuple(rows)


def explain_segment(
    samples: np.ndarray,
    scorer: BatchScorer,
    methods: Sequence[str] = DEFAULT_METHODS,
    attribution: AttributionOptions | None = None,
    segment: int = 0,
    offset: float = 0.0,
    ig_steps: int = 16,
    features: Any = None,
    emotion_model: str = "default",
) -> SegmentExplanation:
    """Explain one segment's predicted emotion with the requested methods.

    ``features``: the segment's :class:`~emotivoice.features.AcousticFeatures`, shown beside
    typical ranges. ``emotion_model``: the backend ``scorer`` wraps; attention maps come from
    it when it is a Hugging Face model, otherwise from the PyTorch Whisper path, which also
    serves Integrated Gradients (of the default head).
    """
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise InvalidConfigError(f"Unknown explanation methods {sorted(unknown)}; use {METHODS}")
    counting = _CountingScorer(scorer)
    cost: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    result: TimeAttribution | None = None
    if "shapley" in methods:
        result = attribute_time(samples, counting, attribution)
        cost["shapley+lime+deletion"] = _cost(counting.calls, started)
    # the unperturbed segment's scores come from the coalition table when it exists
    original = np.array(result.full_scores) if result is not None else None
    report: CounterfactualReport | None = None
    if "counterfactual" in methods:
        before, started = counting.calls, time.perf_counter()
        report = counterfactuals(samples, counting, original)
        cost["counterfactual"] = _cost(counting.calls - before, started)
    probabilities = np.asarray(report.original if report else counting([samples])[0])
    target = int(np.argmax(probabilities))
    attention: Any = None
    gradients: Any = None
    if "attention" in methods and emotion_model.startswith("hf:"):
        from emotivoice.emotion.recognizer import EmotionOptions, load_backend
        from emotivoice.explain.gradients import hf_attention_maps

        started = time.perf_counter()
        backend = load_backend(EmotionOptions(model=emotion_model))
        attention = hf_attention_maps(backend, samples)
        cost["attention"] = _cost(1, started)
    torch_methods = {"gradients"} | ({"attention"} if attention is None else set())
    if torch_methods & set(methods):
        from emotivoice.explain.gradients import (
            DifferentiableEmotionModel,
            attention_maps,
            integrated_gradients,
        )

        model = DifferentiableEmotionModel()
        if "attention" in methods and attention is None:
            started = time.perf_counter()
            attention = attention_maps(model, samples)
            cost["attention"] = _cost(1, started)
        if "gradients" in methods:
            started = time.perf_counter()
            gradients = integrated_gradients(model, samples, target, ig_steps)
            cost["gradients"] = _cost(ig_steps, started)
    return SegmentExplanation(
        segment=segment,
        start=round(offset, 3),
        end=round(offset + len(samples) / SAMPLE_RATE, 3),
        predicted=BASE_EMOTIONS[target],
        probabilities={
            e: round(float(p), 5) for e, p in zip(BASE_EMOTIONS, probabilities, strict=True)
        },
        attribution=result,
        counterfactual=report,
        attention=attention,
        gradients=gradients,
        cost=cost,
        features=feature_context(features),
    )


def write_explanation(
    explanation: SegmentExplanation, samples: np.ndarray, folder: Path
) -> list[Path]:
    """``segment-N.json`` and its PNG plots in ``folder``."""
    from emotivoice.explain import plots

    folder.mkdir(parents=True, exist_ok=True)
    stem = f"segment-{explanation.segment}"
    data = explanation.to_dict()
    written = [folder / f"{stem}.json"]
    written[0].write_text(json.dumps(data, indent=1))
    if explanation.attribution is not None:
        a = data["attribution"]
        written.append(
            plots.plot_window_attribution(
                samples, a["windows"], explanation.predicted, folder / f"{stem}-windows.png"
            )
        )
        written.append(
            plots.plot_deletion(a["deletion"], a["random_area"], folder / f"{stem}-deletion.png")
        )
    if explanation.features:
        written.append(plots.plot_feature_ranges(data["features"], folder / f"{stem}-features.png"))
    if explanation.counterfactual is not None:
        written.append(
            plots.plot_counterfactuals(
                data["counterfactual"], folder / f"{stem}-counterfactuals.png"
            )
        )
    if explanation.attention is not None:
        n = len(explanation.attention.rollout) * explanation.attention.position_seconds
        written.append(
            plots.plot_heatmap(
                explanation.attention.layers[-1],
                folder / f"{stem}-attention.png",
                "Encoder self-attention, last layer (mean over heads)",
                "key time (s)",
                "query time (s)",
                extent=(0, n, 0, n),
            )
        )
    if explanation.gradients is not None:
        values = explanation.gradients.values
        seconds = values.shape[1] * explanation.gradients.frame_seconds
        written.append(
            plots.plot_heatmap(
                values,
                folder / f"{stem}-saliency.png",
                f"Integrated Gradients for '{explanation.predicted}'",
                "time (s)",
                "mel band",
                extent=(0, seconds, 0, values.shape[0]),
            )
        )
    return written


def explain(
    source: Any,
    *,
    segment: int | Sequence[int] | None = None,
    methods: Sequence[str] = DEFAULT_METHODS,
    analysis: Any = None,
    sample_rate: int | None = None,
    attribution: AttributionOptions | None = None,
    emotion_model: str = "default",
    ig_steps: int = 16,
) -> tuple[SegmentExplanation, ...]:
    """Explain the predicted emotion of analysed segments of a recording.

    Args:
        source: the recording (path, bytes, file object or array with ``sample_rate``).
        segment: a segment id, several, or ``None`` for every segment.
        methods: any of :data:`METHODS` (default: Shapley/LIME/faithfulness + counterfactuals).
        analysis: an existing :class:`~emotivoice.results.Analysis` of ``source`` (else analysed).
        attribution: window count, baseline, budget.
        emotion_model: the emotion backend to explain (as in ``analyze``).
    """
    from emotivoice.audio import load_audio
    from emotivoice.emotion.recognizer import EmotionOptions
    from emotivoice.explain.scoring import emotion_scorer
    from emotivoice.pipeline import analyze

    audio = load_audio(source, sample_rate=sample_rate)
    if analysis is None:
        analysis = analyze(audio.samples, sample_rate=SAMPLE_RATE, emotion_model=emotion_model)
    ids = (
        [s.id for s in analysis.segments]
        if segment is None
        else [segment]
        if isinstance(segment, int)
        else list(segment)
    )
    by_id = {s.id: s for s in analysis.segments}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise InvalidConfigError(f"No segment {missing} in this analysis ({len(by_id)} segments)")
    scorer = emotion_scorer(EmotionOptions(model=emotion_model))
    out = []
    for i in ids:
        s = by_id[i]
        samples = audio.samples[int(s.start * SAMPLE_RATE) : int(s.end * SAMPLE_RATE)]
        out.append(
            explain_segment(samples, scorer, methods, attribution, i, s.start, ig_steps, s.features)
        )
    return tuple(out)


def write_report(
    analysis: Any, samples: np.ndarray, explanations: Sequence[SegmentExplanation], folder: Path
) -> list[Path]:
    """File-level plots (emotion distribution and timeline) and every segment's explanation."""
    from emotivoice.explain import plots

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if analysis.emotion is not None:
        written.append(
            plots.plot_distribution(analysis.emotion.distribution, folder / "distribution.png")
        )
        timeline = [asdict(p) for p in analysis.emotion.timeline]
        written.append(plots.plot_timeline(timeline, folder / "timeline.png"))
    for explanation in explanations:
        a, b = int(explanation.start * SAMPLE_RATE), int(explanation.end * SAMPLE_RATE)
        written += write_explanation(explanation, samples[a:b], folder)
    return written
