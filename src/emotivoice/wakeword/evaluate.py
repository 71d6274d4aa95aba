"""Streaming evaluation, as a user experiences a detector: long audio, 80 ms hops, a refractory
period, positives inserted at known times.

Three streams are built from the data set's test split (voices and speakers never trained on):

- **negatives**: the test split's real speech end to end (hours of it, said honestly), in which
  every detection is a false accept;
- **confusables**: the test voices saying the confusable phrases and ordinary sentences;
- **positives**: the test voices saying the phrase, in a room or not, laid over real speech and
  noise every few seconds; a positive counts as found when a detection falls between its start
  and one second after its end, and the delay after its end is the latency.

False rejects are read at the thresholds where the negatives give at most 0.5 and 1 false
accept per hour; with ``H`` hours of negatives, zero false accepts means "fewer than 1/H per
hour", which the report states rather than a bare 0.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from emotivoice.audio import SAMPLE_RATE
from emotivoice.wakeword.augment import AugmentOptions, augment_window, mix_at_snr
from emotivoice.wakeword.data import WakeDataset, load_dataset, load_real
from emotivoice.wakeword.detector import VerifiedModel, WakeWordModel, detections, load_model

if TYPE_CHECKING:
    from emotivoice.wakeword.verify import VerifierOptions

__all__ = [
    "EvaluationOptions",
    "EvaluationReport",
    "OperatingPoint",
    "StreamScorer",
    "TestStreams",
    "build_test_streams",
    "evaluate_model",
    "evaluate_streams",
    "fa_text",
    "stream_threshold",
    "write_report",
]

logger = logging.getLogger(__name__)

Progress = Callable[[str, float], None]
TARGET_FA_PER_HOUR = (0.5, 1.0)
_FOUND_AFTER_END_S = 1.0
_THRESHOLDS = np.unique(
    np.concatenate([np.linspace(0.01, 0.9, 90), 1 - np.geomspace(0.1, 1e-4, 60)])
)


@dataclass(frozen=True)
class EvaluationOptions:
    """How the test streams are made.

    Attributes:
        refractory_s: seconds after a detection in which no other counts.
        positive_spacing_s: seconds from one inserted positive to the next.
        background_snr_db: range of the phrase's level over the background speech or noise.
        room: probability that a positive is said in a simulated room.
        max_negative_hours: cut the negative stream at this length (``None``: all of it).
        split: the data set's split the streams are made of (``val`` to choose a threshold).
        seed: the streams' randomness.
    """

    refractory_s: float = 2.0
    positive_spacing_s: float = 4.0
    background_snr_db: tuple[float, float] = (5.0, 20.0)
    room: float = 0.5
    max_negative_hours: float | None = None
    split: str = "test"
    seed: int = 1234


@dataclass(frozen=True)
class OperatingPoint:
    """One threshold's figures.

    Attributes:
        threshold: the detection threshold.
        false_reject_rate: share of inserted positives not detected.
        false_accepts: detections in the negative stream.
        fa_per_hour: ``false_accepts`` over its hours.
        confusable_accept_rate: share of confusable/sentence clips that triggered.
    """

    threshold: float
    false_reject_rate: float
    false_accepts: int
    fa_per_hour: float
    confusable_accept_rate: float


@dataclass(frozen=True)
class EvaluationReport:
    """The figures of one model on one test set.

    Attributes:
        phrase: the wake phrase.
        model: the model file.
        negative_hours: hours of real speech in the negative stream.
        positives: positives inserted.
        confusables: confusable and sentence clips in their stream.
        at_target: ``{"0.5": point, "1.0": point}``: the lowest threshold keeping false accepts
            per hour at or under the target, and its false rejects.
        at_model_threshold: the figures at the model's own threshold.
        eer: equal error rate over positives and negative segments (max score of each).
        latency_ms: median and 90th percentile delay after the phrase's end at the model's
            threshold.
        det: the DET curve, one point per threshold.
        seconds_scored: audio seconds the detector ran over (all streams).
        notes: how to read the figures.
        cpu_share: the detector's process CPU time over the audio it scored: the share of one
            core one stream takes (model loading excluded).
        verifications_per_hour: with a second stage (``VerifiedModel``), how many times the
            verifier ran per hour of the real-speech stream (NaN without one).
    """

    phrase: str
    model: str
    negative_hours: float
    positives: int
    confusables: int
    at_target: dict[str, OperatingPoint]
    at_model_threshold: OperatingPoint
    eer: float
    latency_ms: dict[str, float]
    det: tuple[OperatingPoint, ...]
    seconds_scored: float
    notes: tuple[str, ...]
    cpu_share: float = float("nan")
    verifications_per_hour: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (a figure that could not be measured is ``None``)."""
        return dict(_finite(asdict(self)))

    def summary(self) -> str:
        """A few lines for a terminal."""
        lines = [
            f"{self.phrase!r}: {self.positives} positives, "
            f"{self.negative_hours:.2f} h of real speech"
        ]
        for target, point in self.at_target.items():
            lines.append(
                f"  at <= {target} FA/h: false rejects {point.false_reject_rate:.1%} "
                f"(threshold {point.threshold:.3f}, "
                f"{fa_text(point.false_accepts, self.negative_hours)})"
            )
        own = self.at_model_threshold
        lines.append(
            f"  at the model's threshold {own.threshold:.3f}: false rejects "
            f"{own.false_reject_rate:.1%}, {fa_text(own.false_accepts, self.negative_hours)}, "
            f"confusables accepted {own.confusable_accept_rate:.1%}"
        )
        lines.append(
            f"  EER {self.eer:.1%}; latency after the phrase: median "
            f"{self.latency_ms['median']:.0f} ms, p90 {self.latency_ms['p90']:.0f} ms"
        )
        line = f"  CPU per stream {self.cpu_share:.2%} of one core"
        if not np.isnan(self.verifications_per_hour):
            line += f"; the verifier ran {self.verifications_per_hour:.0f} times per hour of speech"
        lines.append(line)
        return "\n".join(lines)


def _finite(value: Any) -> Any:
    """``value`` with NaN floats as ``None``: strict JSON has no NaN."""
    if isinstance(value, float):
        return None if np.isnan(value) else value
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def fa_text(false_accepts: int, hours: float) -> str:
    """False accepts per hour in words: zero over ``hours`` is "< 1/hours per hour"."""
    if hours <= 0:
        return "no negative audio"
    if false_accepts == 0:
        return f"0 false accepts in {hours:.2f} h (< {1 / hours:.2g} per hour)"
    return f"{false_accepts} false accepts in {hours:.2f} h ({false_accepts / hours:.2f} per hour)"


@dataclass(frozen=True)
class _Stream:
    samples: np.ndarray
    spans: tuple[tuple[float, float], ...]  # (start_s, end_s) of each positive or segment


def _concatenate(pieces: Sequence[np.ndarray], rng: np.random.Generator) -> _Stream:
    """Pieces end to end with short pauses; their spans."""
    parts, spans, position = [], [], 0
    for piece in pieces:
        pause = np.zeros(int(rng.uniform(0.2, 0.8) * SAMPLE_RATE), np.float32)
        parts += [pause, piece.astype(np.float32)]
        start = position + len(pause)
        position = start + len(piece)
        spans.append((start / SAMPLE_RATE, position / SAMPLE_RATE))
    return _Stream(np.concatenate(parts) if parts else np.zeros(0, np.float32), tuple(spans))


def _positive_stream(
    positives: Sequence[np.ndarray],
    background: Sequence[np.ndarray],
    options: EvaluationOptions,
    rng: np.random.Generator,
) -> _Stream:
    spacing = int(options.positive_spacing_s * SAMPLE_RATE)
    total = spacing * (len(positives) + 1)
    bed = np.zeros(total, np.float32)
    position = 0
    while position < total and background:  # continuous real speech under everything
        clip = background[int(rng.integers(len(background)))]
        bed[position : position + len(clip)] = clip[: total - position]
        position += len(clip) + int(rng.uniform(0.2, 1.5) * SAMPLE_RATE)
    out = bed.copy()
    spans = []
    room_only = AugmentOptions(
        room=options.room, background=0.0, band_limit=0.0, codec=0.0, gain_db=(0.0, 0.0)
    )
    for i, clip in enumerate(positives):
        start = spacing // 2 + i * spacing + int(rng.integers(0, spacing // 4))
        said = augment_window(clip, rng, [], room_only)
        end = min(start + len(said), total)
        segment = out[start:end]
        out[start:end] = (
            mix_at_snr(said[: end - start], segment, float(rng.uniform(*options.background_snr_db)))
            if np.any(segment)
            else said[: end - start]
        )
        spans.append((start / SAMPLE_RATE, end / SAMPLE_RATE))
    peak = float(np.max(np.abs(out))) or 1.0
    return _Stream(out / peak * 0.7, tuple(spans))


class StreamScorer(Protocol):
    """What the evaluation runs: an EmotiVoice :class:`WakeWordModel`, or a peer's model run
    in its own environment (:class:`~emotivoice.wakeword.peers.PeerModel`)."""

    @property
    def phrase(self) -> str: ...

    @property
    def threshold(self) -> float: ...

    @property
    def path(self) -> Path | str: ...

    def score_streams(
        self, streams: Sequence[np.ndarray]
    ) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
        """Each stream's ``(hop end times, scores)`` at 80 ms hops, as a live stream is scored,
        and the CPU seconds the scoring took."""
        ...


def _span_max(
    times: np.ndarray, scores: np.ndarray, spans: Sequence[tuple[float, float]], after_s: float
) -> np.ndarray:
    out = np.zeros(len(spans), np.float32)
    for i, (start, end) in enumerate(spans):
        inside = (times >= start) & (times <= end + after_s)
        out[i] = scores[inside].max() if inside.any() else 0.0
    return out


def _point(
    threshold: float,
    pos: tuple[np.ndarray, np.ndarray, _Stream],
    neg: tuple[np.ndarray, np.ndarray],
    conf: tuple[np.ndarray, np.ndarray, _Stream],
    hours: float,
    refractory_s: float,
) -> tuple[OperatingPoint, list[float]]:
    found = detections(pos[0], pos[1], threshold, refractory_s)
    latencies, missed = [], 0
    for start, end in pos[2].spans:
        hits = [d.time_s for d in found if start <= d.time_s <= end + _FOUND_AFTER_END_S]
        if hits:
            latencies.append(hits[0] - end)
        else:
            missed += 1
    false = len(detections(neg[0], neg[1], threshold, refractory_s))
    conf_hits = _span_max(conf[0], conf[1], conf[2].spans, _FOUND_AFTER_END_S) >= threshold
    point = OperatingPoint(
        threshold=round(float(threshold), 5),
        false_reject_rate=missed / max(len(pos[2].spans), 1),
        false_accepts=false,
        fa_per_hour=false / hours if hours > 0 else 0.0,
        confusable_accept_rate=float(conf_hits.mean()) if conf_hits.size else 0.0,
    )
    return point, latencies


def _eer(positive: np.ndarray, negative: np.ndarray) -> float:
    if not positive.size or not negative.size:
        return float("nan")
    best = (2.0, 1.0)
    for t in _THRESHOLDS:
        miss, false = float(np.mean(positive < t)), float(np.mean(negative >= t))
        if abs(miss - false) < best[0]:
            best = (abs(miss - false), (miss + false) / 2)
    return best[1]


def _test_speech(dataset: WakeDataset, max_hours: float | None, split: str) -> list[np.ndarray]:
    """The split's real recordings, decoded one by one until ``max_hours`` are reached."""
    budget = np.inf if max_hours is None else max_hours * 3600 * SAMPLE_RATE
    out: list[np.ndarray] = []
    for item in (r for r in dataset.real if r.split == split):
        if budget <= 0:
            break
        loaded = load_real([item])
        out += loaded
        budget -= sum(len(clip) for clip in loaded)
    return out


@dataclass(frozen=True)
class TestStreams:
    """The three test streams of a data set's split, made once, scored by any model."""

    positive: _Stream
    negative: _Stream
    confusable: _Stream
    negative_hours: float
    options: EvaluationOptions


def build_test_streams(
    data: Path | WakeDataset, options: EvaluationOptions | None = None
) -> TestStreams:
    """The positive, negative and confusable streams of ``data``'s split (``options.split``):
    the same streams for the same data and seed, whichever model is scored on them."""
    options = options or EvaluationOptions()
    split = options.split
    dataset = data if isinstance(data, WakeDataset) else load_dataset(data, (split,))
    rng = np.random.default_rng(options.seed)
    real = _test_speech(dataset, options.max_negative_hours, split)
    positives = dataset.select(split, "positive")
    confusables = dataset.select(split, "confusable") + dataset.select(split, "sentence")
    negative = _concatenate(real, rng)
    hours = sum(len(c) for c in real) / SAMPLE_RATE / 3600
    confusable = _concatenate(confusables, rng)
    background = real[::3] or real
    positive = _positive_stream(positives, background, options, rng)
    return TestStreams(positive, negative, confusable, hours, options)


def evaluate_model(
    model: str | Path | WakeWordModel,
    data: Path | WakeDataset,
    options: EvaluationOptions | None = None,
    progress: Progress | None = None,
    verifier: VerifierOptions | None = None,
) -> EvaluationReport:
    """Evaluate ``model`` on the test split of a generated data set, as streams.

    Args:
        model: a shipped model name, an ONNX file, or a loaded model.
        data: the data set folder (``generate``'s output) or the loaded data set.
        options: how the streams are made.
        progress: called with (stage, fraction done).
        verifier: a second stage (:mod:`emotivoice.wakeword.verify`) evaluated with the model:
            the thresholds of the figures are then the verifier's, at its gate.
    """
    report = progress or (lambda stage, fraction: None)
    loaded = model if isinstance(model, WakeWordModel) else load_model(model)
    scorer: StreamScorer = loaded
    if verifier is not None:
        from emotivoice.wakeword.verify import load_verifier

        scorer = VerifiedModel(loaded, load_verifier(loaded.phrase, verifier))
    report("reading test audio", 0.0)
    streams = build_test_streams(data, options)
    report("scoring the streams", 0.1)
    return evaluate_streams(scorer, streams)


def evaluate_streams(scorer: StreamScorer, streams: TestStreams) -> EvaluationReport:
    """The figures of one model on test streams made by :func:`build_test_streams`."""
    options, positive, negative, confusable = (
        streams.options,
        streams.positive,
        streams.negative,
        streams.confusable,
    )
    hours = streams.negative_hours
    samples = [positive.samples, negative.samples, confusable.samples]
    scored, cpu_s = scorer.score_streams(samples)
    pos = (*scored[0], positive)
    neg = scored[1]
    conf = (*scored[2], confusable)
    det = []
    for t in _THRESHOLDS:
        det.append(_point(float(t), pos, neg, conf, hours, options.refractory_s)[0])
    at_target = {}
    for target in TARGET_FA_PER_HOUR:
        allowed = [p for p in det if p.fa_per_hour <= target]
        at_target[str(target)] = min(allowed, key=lambda p: p.threshold) if allowed else det[-1]
    own, latencies = _point(scorer.threshold, pos, neg, conf, hours, options.refractory_s)
    pos_max = _span_max(pos[0], pos[1], positive.spans, _FOUND_AFTER_END_S)
    neg_max = _span_max(neg[0], neg[1], negative.spans, 0.0)
    neg_max = np.concatenate([neg_max, _span_max(conf[0], conf[1], confusable.spans, 0.0)])
    ms = np.array(latencies) * 1000
    notes = (
        f"false accepts counted over {hours:.2f} h of real speech from speakers never trained on;"
        f" 0 false accepts means fewer than {1 / max(hours, 1e-9):.2g} per hour",
        "positives: test voices only (voice-disjoint from training), inserted every "
        f"{options.positive_spacing_s:g} s over real speech at {options.background_snr_db[0]:g}-"
        f"{options.background_snr_db[1]:g} dB",
        f"refractory period {options.refractory_s:g} s; a positive counts when detected up to "
        f"{_FOUND_AFTER_END_S:g} s after its end",
    )
    seconds = sum(len(s) for s in samples) / SAMPLE_RATE
    checks = getattr(scorer, "verifications", None)  # a VerifiedModel's, per stream
    return EvaluationReport(
        phrase=scorer.phrase,
        model=str(scorer.path),
        negative_hours=round(hours, 4),
        positives=len(positive.spans),
        confusables=len(confusable.spans),
        at_target=at_target,
        at_model_threshold=own,
        eer=_eer(pos_max, neg_max),
        latency_ms={  # NaN when nothing was detected
            "median": float(np.median(ms)) if ms.size else float("nan"),
            "p90": float(np.percentile(ms, 90)) if ms.size else float("nan"),
        },
        det=tuple(det),
        seconds_scored=seconds,
        notes=notes,
        cpu_share=cpu_s / seconds if seconds else float("nan"),
        verifications_per_hour=checks[1] / hours if checks and hours > 0 else float("nan"),
    )


def stream_threshold(
    model: str | Path | WakeWordModel, data: WakeDataset, target_fa_per_hour: float = 0.5
) -> float:
    """The lowest threshold keeping false accepts per hour at or under the target on the
    validation split's real-speech stream (speakers and voices apart from the test's)."""
    report = evaluate_model(model, data, EvaluationOptions(split="val"))
    allowed = [p for p in report.det if p.fa_per_hour <= target_fa_per_hour]
    return min(p.threshold for p in allowed) if allowed else report.det[-1].threshold


def write_report(report: EvaluationReport, folder: Path) -> list[Path]:
    """``evaluation.json``, ``det.json`` and (with the ``plots`` extra) ``det.png``."""
    from emotivoice.errors import MissingExtraError
    from emotivoice.extras import pyplot
    from emotivoice.wakeword.files import atomic_file

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    data = report.to_dict()
    with atomic_file(folder / "evaluation.json") as partial:
        partial.write_text(json.dumps({k: v for k, v in data.items() if k != "det"}, indent=1))
    written.append(folder / "evaluation.json")
    with atomic_file(folder / "det.json") as partial:
        partial.write_text(
            json.dumps(
                {
                    "phrase": report.phrase,
                    "negative_hours": report.negative_hours,
                    "points": data["det"],
                },
                indent=0,
            )
        )
    written.append(folder / "det.json")
    try:
        plt = pyplot()
    except MissingExtraError:
        logger.warning("matplotlib is not installed: no det.png")
        return written
    fig, ax = plt.subplots(figsize=(5, 3.6))
    fa = np.array([max(p.fa_per_hour, 1e-2) for p in report.det])
    frr = np.array([p.false_reject_rate for p in report.det])
    ax.plot(fa, frr * 100, marker=".", markersize=3)
    ax.set_xscale("log")
    ax.set_xlabel(
        f"false accepts per hour ({report.negative_hours:.2f} h of speech; 0 drawn at 0.01)"
    )
    ax.set_ylabel("false rejects (%)")
    ax.set_title(f"DET: {report.phrase!r}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_file(folder / "det.png") as partial:
        fig.savefig(partial, dpi=120, format="png")
    plt.close(fig)
    written.append(folder / "det.png")
    return written
