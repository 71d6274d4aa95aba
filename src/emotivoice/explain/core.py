"""Explain analysed segments: one entry point, one result object, JSON and plots.

Methods (``ExplainOptions.methods``): ``shapley`` (window Shapley + LIME + deletion
faithfulness, one table of coalition evaluations), ``counterfactual`` (prosody transforms),
``attention`` (encoder self-attention and rollout: the Hugging Face model itself for ``hf:``
backends, else the PyTorch Whisper path) and ``gradients`` (Integrated Gradients on the log-mel,
PyTorch path of a Whisper-head model). Evaluation counts and wall times are recorded per method.

What each method computes and how the budget is shared: :mod:`emotivoice.explain.options`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from emotivoice.audio import SAMPLE_RATE, Audio, AudioSource, load_audio
from emotivoice.emotion.labels import BASE_EMOTIONS
from emotivoice.errors import InvalidConfigError
from emotivoice.explain.attribution import (
    DEFAULT_BUDGET,
    BatchScorer,
    TimeAttribution,
    Window,
    attribute_time,
)
from emotivoice.explain.counterfactual import CounterfactualReport, counterfactuals
from emotivoice.explain.options import ExplainOptions
from emotivoice.explain.summary import plain_summary
from emotivoice.results import AcousticFeatures, Analysis, Word
from emotivoice.segmentation import SpeechSpan

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentExplanation:
    """Everything computed to explain one segment's predicted emotion.

    ``evaluations`` counts the evaluations of the explained model (time attribution and
    counterfactuals), never more than ``budget``; ``cost`` has them per method, with seconds.
    """

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
    budget: int = DEFAULT_BUDGET
    evaluations: int = 0
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (attention and saliency downsampled for the web UI)."""
        data: dict[str, Any] = {
            "segment": self.segment,
            "start": self.start,
            "end": self.end,
            "predicted": self.predicted,
            "summary": self.summary,
            "probabilities": self.probabilities,
            "cost": self.cost,
            "budget": self.budget,
            "evaluations": self.evaluations,
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
                "position_seconds": round(self.attention.position_seconds, 6),
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
    """Wraps a scorer to count model evaluations and to enforce the budget."""

    def __init__(
        self, scorer: BatchScorer, budget: int, on_count: Callable[[int], None] | None = None
    ) -> None:
        self.scorer, self.budget, self.calls, self.on_count = scorer, budget, 0, on_count

    def __call__(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        if self.calls + len(waves) > self.budget:  # plan_budget makes this unreachable
            raise RuntimeError(
                f"explanation would exceed its budget of {self.budget} model evaluations"
            )
        scores = self.scorer(waves)
        self.calls += len(waves)
        if self.on_count is not None:
            self.on_count(self.calls)
        return scores


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
    options: ExplainOptions | Sequence[str] | None = None,
    *,
    segment: int = 0,
    offset: float = 0.0,
    features: AcousticFeatures | None = None,
    on_evaluations: Callable[[int], None] | None = None,
    words: Sequence[Word] = (),
    **legacy: Any,
) -> SegmentExplanation:
    """Explain one segment's predicted emotion with the methods of ``options``.

    ``scorer`` wraps the backend named by ``options.emotion_model``; attention maps come from
    it when it is a Hugging Face model, otherwise from the PyTorch Whisper path, which also
    serves Integrated Gradients of the analysed head. ``features``: the segment's acoustic
    features, shown beside typical ranges. ``offset``: where the segment starts (s).
    ``on_evaluations``: called with the number of model evaluations so far. ``words``: the
    segment's words (the recording's time), quoted in the one-sentence ``summary``. Window
    times are the recording's (``offset`` added). A list of
    methods in place of ``options``, and ``legacy`` keywords (``attribution``, ``budget``,
    ``emotion_model``, ``ig_steps``), are the first API's: deprecated.
    """
    if options is not None and not isinstance(options, ExplainOptions):
        legacy, options = {"methods": tuple(options), **legacy}, None
    options = _options(options, legacy)
    methods, budget = options.methods, options.budget
    counting = _CountingScorer(scorer, budget, on_evaluations)
    cost: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    result: TimeAttribution | None = None
    if "shapley" in methods:
        result = attribute_time(samples, counting, options.planned_attribution)
        cost["shapley+lime+deletion"] = _cost(counting.calls, started)
    # the unperturbed segment's scores come from the coalition table when it exists
    original = np.array(result.full_scores) if result is not None else None
    report: CounterfactualReport | None = None
    if "counterfactual" in methods:
        before, started = counting.calls, time.perf_counter()
        report = counterfactuals(samples, counting, original)
        cost["counterfactual"] = _cost(counting.calls - before, started)
    if report is not None:
        probabilities = np.asarray(report.original)
    elif original is not None:
        probabilities = original
    else:
        probabilities = np.asarray(counting([samples])[0])
    target = int(np.argmax(probabilities))
    if result is not None and offset:  # the recording's time, as everywhere a reader looks
        result = dataclasses.replace(
            result, windows=tuple(_shifted(w, offset) for w in result.windows)
        )
    attention, gradients = _model_internals(
        samples, methods, options.emotion_model, target, options.ig_steps, cost
    )
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
        budget=budget,
        evaluations=counting.calls,
        summary=plain_summary(
            BASE_EMOTIONS[target], float(probabilities[target]), result, report, words
        ),
    )


def _shifted(window: Window, offset: float) -> Window:
    start, end = round(window.start + offset, 3), round(window.end + offset, 3)
    return dataclasses.replace(window, start=start, end=end)


def _model_internals(
    samples: np.ndarray,
    methods: Sequence[str],
    emotion_model: str,
    target: int,
    ig_steps: int,
    cost: dict[str, dict[str, float]],
) -> tuple[Any, Any]:
    """Attention maps and Integrated Gradients of the explained backend, as asked."""
    from emotivoice.emotion.backends import EmotionOptions, WhisperHeadBackend, load_backend

    attention: Any = None
    gradients: Any = None
    if "attention" in methods and emotion_model.startswith("hf:"):
        from emotivoice.explain.gradients import hf_attention_maps

        started = time.perf_counter()
        attention = hf_attention_maps(load_backend(EmotionOptions(model=emotion_model)), samples)
        cost["attention"] = _cost(1, started)
    torch_methods = {"gradients"} | ({"attention"} if attention is None else set())
    if not torch_methods & set(methods):
        return attention, gradients
    from emotivoice.explain.gradients import (
        DifferentiableEmotionModel,
        attention_maps,
        integrated_gradients,
    )

    # the analysed head (a trained .npz) on the PyTorch encoder; None loads the default one
    backend = load_backend(EmotionOptions(model=emotion_model))
    head = backend.head if isinstance(backend, WhisperHeadBackend) else None
    model = DifferentiableEmotionModel(head=head)
    if "attention" in methods and attention is None:
        started = time.perf_counter()
        attention = attention_maps(model, samples)
        cost["attention"] = _cost(1, started)
    if "gradients" in methods:
        started = time.perf_counter()
        gradients = integrated_gradients(model, samples, target, ig_steps)
        cost["gradients"] = _cost(ig_steps, started)
    return attention, gradients


def write_explanation(
    explanation: SegmentExplanation,
    samples: np.ndarray,
    folder: Path,
    words: Sequence[Word] = (),
) -> list[Path]:
    """``segment-N.json`` and its PNG plots in ``folder``; ``words`` (the segment's, in the
    recording's time) are written under the windows figure."""
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
                samples,
                a["windows"],
                explanation.predicted,
                folder / f"{stem}-windows.png",
                offset=explanation.start,
                words=[asdict(w) for w in words],
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
    start = explanation.start  # every figure in the recording's time
    if explanation.attention is not None:
        attention = explanation.attention
        n = len(attention.rollout) * attention.position_seconds
        written.append(
            plots.plot_heatmap(
                attention.layers[-1],
                folder / f"{stem}-attention.png",
                "Encoder self-attention, last layer (mean over heads)",
                "key time in the recording (s)",
                "query time in the recording (s)",
                extent=(start, start + n, start, start + n),
            )
        )
        written.append(
            plots.plot_rollout(
                attention.rollout,
                attention.position_seconds,
                len(attention.layers),
                folder / f"{stem}-rollout.png",
                offset=start,
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
                "time in the recording (s)",
                "mel band",
                extent=(start, start + seconds, 0, values.shape[0]),
            )
        )
    return written


def explain(
    source: AudioSource | Audio,
    analysis: Analysis | None = None,
    options: ExplainOptions | None = None,
    *,
    segment: int | Sequence[int] | None = None,
    spans: Mapping[int, SpeechSpan] | None = None,
    sample_rate: int | None = None,
    progress: Callable[[float, float, str], None] | None = None,
    device: str | None = None,
    **legacy: Any,
) -> tuple[SegmentExplanation, ...]:
    """Explain the predicted emotion of analysed segments of a recording.

    Args:
        source: the recording: decoded :class:`~emotivoice.audio.Audio` (used as is), or a
            path, bytes, file object or array (with ``sample_rate``) to decode.
        analysis: the :class:`~emotivoice.results.Analysis` of ``source`` (``None``: analysed
            here with ``options.emotion_model``).
        options: methods, budget and model (:class:`ExplainOptions`; checked when made).
        segment: a segment id, several, or ``None`` for every segment.
        spans: the pipeline's exact sample spans by segment id
            (:attr:`~emotivoice.pipeline.SegmentResult.span`); without them a segment is cut
            from its start and end times, which JSON keeps to the millisecond.
        progress: ``progress(done, total, message)`` as model evaluations are made (``total``:
            the budget of every segment). Without it, a progress bar on a terminal (none in a
            log, where each segment is logged at INFO level).
        device: ``cpu``, ``cuda`` or ``auto``: where the batched scorer runs (overrides
            ``options.device``; ``cuda`` needs PyTorch and a GPU).
        legacy: ``methods``, ``attribution``, ``emotion_model``, ``ig_steps``, ``budget`` as
            keywords: deprecated, use ``options``.

    Raises:
        InvalidConfigError: invalid options, or a segment id not in the analysis.
    """
    from emotivoice.emotion.backends import EmotionOptions
    from emotivoice.explain.scoring import emotion_scorer

    options = _options(options, legacy)
    if device is not None:
        options = dataclasses.replace(options, device=device)  # checked as it is made
    split = analysis is not None and any(s.channel is not None for s in analysis.segments)
    audio = (
        source
        if isinstance(source, Audio)
        else load_audio(source, sample_rate=sample_rate, keep_channels=split)
    )
    if analysis is None:
        from emotivoice.pipeline import analyze

        analysis = analyze(
            audio.samples, sample_rate=SAMPLE_RATE, emotion_model=options.emotion_model
        )
    by_id = {s.id: s for s in analysis.segments}
    ids = list(by_id) if segment is None else [segment] if isinstance(segment, int) else segment
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise InvalidConfigError(f"No segment {missing} in this analysis ({len(by_id)} segments)")
    scorer = emotion_scorer(
        EmotionOptions(model=options.emotion_model),
        device=options.device,
        precision=options.precision,
    )
    out = []
    with _ExplainProgress(len(ids), options.budget, progress) as report:
        for n, i in enumerate(ids):
            s, span = by_id[i], (spans or {}).get(i)
            samples = _cut(_heard(audio, s.channel), s.start, s.end, span)
            offset = span.start if span is not None else s.start
            report.segment(n, s.start, s.end)
            explanation = explain_segment(
                samples,
                scorer,
                options,
                segment=i,
                offset=offset,
                features=s.features,
                on_evaluations=report.evaluations,
                words=s.words,
            )
            out.append(explanation)
    return tuple(out)


class _ExplainProgress:
    """What :func:`explain` reports: to its ``progress`` callback, else a bar on a terminal
    (tqdm's own check: none when stderr is not one) and an INFO line per segment."""

    def __init__(
        self, count: int, budget: int, callback: Callable[[float, float, str], None] | None
    ) -> None:
        self.count, self.budget, self.callback = count, budget, callback
        self.index, self.message = 0, ""
        self.bar: Any = None
        if callback is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=count * budget,
                desc="explaining",
                unit="eval",
                leave=False,
                disable=None,  # not on a terminal: no bar
                delay=2.0,  # nothing for explanations that take less
            )

    def __enter__(self) -> _ExplainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.callback is not None and exc[0] is None:
            total = float(self.count * self.budget)
            self.callback(total, total, f"explained {self.count} of {self.count} segments")

    def segment(self, index: int, start: float, end: float) -> None:
        self.index = index
        self.message = f"explaining segment {index + 1}/{self.count} ({start:.1f}–{end:.1f} s)"
        logger.info("%s", self.message)
        self.evaluations(0)

    def evaluations(self, calls: int) -> None:
        done = self.index * self.budget + calls
        if self.bar is not None:
            self.bar.set_postfix_str(f"segment {self.index + 1}/{self.count}", refresh=False)
            self.bar.update(done - self.bar.n)
        elif self.callback is not None:
            self.callback(float(done), float(self.count * self.budget), self.message)


def _caller_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside this package, seen from the function that
    calls this one (a warning then names the user's line, however the call came in)."""
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith(__package__):
        frame, level = frame.f_back, level + 1
    return level


_LEGACY_KEYWORDS = ("methods", "attribution", "emotion_model", "ig_steps", "budget")


def _options(options: ExplainOptions | None, legacy: dict[str, Any]) -> ExplainOptions:
    """``options``, or the deprecated keywords of the first ``explain()`` made into them."""
    unknown = sorted(set(legacy) - set(_LEGACY_KEYWORDS))
    if unknown:
        raise TypeError(f"explain() got unexpected keyword arguments {unknown}")
    if not legacy:
        return options or ExplainOptions()
    if options is not None:
        raise InvalidConfigError("Give explain() either options or its old keywords, not both")
    warnings.warn(
        "explain(methods=..., budget=..., ...) and explain_segment(samples, scorer, methods) are "
        "deprecated: pass options=ExplainOptions(...) instead",
        DeprecationWarning,
        stacklevel=_caller_stacklevel(),
    )
    return ExplainOptions(**{k: v for k, v in legacy.items() if v is not None})


def write_report(
    analysis: Any,
    samples: np.ndarray | Audio,
    explanations: Sequence[SegmentExplanation],
    folder: Path,
    spans: Mapping[int, SpeechSpan] | None = None,
) -> list[Path]:
    """File-level plots (emotion distribution and timeline) and every segment's explanation
    (its audio cut as :func:`explain` cut it: at ``spans`` when given, from the segment's own
    channel when ``samples`` is the :class:`Audio` of a recording analysed channel by
    channel)."""
    from emotivoice.explain import plots

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if analysis.emotion is not None:
        written.append(
            plots.plot_distribution(analysis.emotion.distribution, folder / "distribution.png")
        )
        timeline = [asdict(p) for p in analysis.emotion.timeline]
        written.append(plots.plot_timeline(timeline, folder / "timeline.png", analysis.duration))
    by_id = {seg.id: seg for seg in getattr(analysis, "segments", ())}
    for e in explanations:
        segment = by_id.get(e.segment)
        channel = segment.channel if segment is not None else None
        source = _heard(samples, channel) if isinstance(samples, Audio) else samples
        cut = _cut(source, e.start, e.end, (spans or {}).get(e.segment))
        written += write_explanation(e, cut, folder, segment.words if segment else ())
    return written


def _heard(audio: Audio, channel: int | None) -> np.ndarray:
    """What a segment was analysed from: its own channel (split stereo calls), else the mix."""
    if channel is not None and audio.channels is not None:
        return audio.channels[channel]
    return audio.samples


def _cut(samples: np.ndarray, start: float, end: float, span: SpeechSpan | None) -> np.ndarray:
    """A segment's samples: the pipeline's exact span when known, else from its times (s)."""
    if span is not None:
        return samples[span.start_sample : span.end_sample]
    return samples[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
