"""Plots of explanations and emotions (matplotlib, PNG, one style). Needs ``emotivoice[plots]``.

Every function takes plain data (the JSON form of the explanation) and a path, writes one PNG
and returns the path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emotivoice.audio import SAMPLE_RATE
from emotivoice.emotion.labels import BASE_EMOTIONS
from emotivoice.extras import pyplot
from emotivoice.results import FEATURE_LABELS

COLOURS = {
    "anger": "#d62728",
    "fear": "#9467bd",
    "happiness": "#ffbf00",
    "neutral": "#7f7f7f",
    "sadness": "#1f77b4",
    "surprise": "#2ca02c",
}
FIGSIZE = (8.0, 4.0)
DPI = 100


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def plot_distribution(distribution: Mapping[str, float], path: Path) -> Path:
    """Bar chart of the file's emotion distribution: each emotion's probability averaged over
    the segments, weighted by their length (not a share of time: see :func:`plot_time_shares`)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    values = [distribution[e] for e in BASE_EMOTIONS]
    ax.bar(BASE_EMOTIONS, values, color=[COLOURS[e] for e in BASE_EMOTIONS])
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean probability\n(weighted by segment length)")
    ax.set_title("Emotion distribution")
    return _save(fig, path)


def plot_time_shares(shares: Mapping[str, float], path: Path) -> Path:
    """Bar chart of the share of speech time in which each emotion was the dominant one."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    values = [shares.get(e, 0.0) for e in BASE_EMOTIONS]
    bars = ax.bar(BASE_EMOTIONS, values, color=[COLOURS[e] for e in BASE_EMOTIONS])
    ax.bar_label(bars, [f"{v:.0%}" if v else "" for v in values], fontsize=9)
    ax.set_ylim(0, 1.08)
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.set_ylabel("share of speech time")
    ax.set_title("How long each emotion was the dominant one")
    return _save(fig, path)


def plot_timeline(
    timeline: Sequence[Mapping[str, Any]], path: Path, duration: float | None = None
) -> Path:
    """Probability of each emotion over the file: flat over the stretch each point (window, or
    segment in older files) stands for, joined across the pauses, so a file of one segment still
    shows a line, not a point (see :func:`step_spans`)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    times = [t for span in step_spans(timeline) for t in span]
    for emotion in BASE_EMOTIONS:
        values = [p["probabilities"][emotion] for p in timeline for _ in (0, 1)]
        ax.plot(times, values, color=COLOURS[emotion], label=emotion, linewidth=1.8)
    ax.set_ylim(0, 1)
    end = duration if duration else (times[-1] if times else 1.0)
    ax.set_xlim(0, end)
    ax.set_xlabel("time in the recording (s)")
    ax.set_ylabel("probability (sliding windows)")
    ax.set_title("Emotion timeline")
    ax.legend(ncol=3, fontsize=8, loc="upper right")
    return _save(fig, path)


def step_spans(points: Sequence[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """The stretch each timeline point stands for: its own start and end, cut halfway to a
    neighbour's centre where the two overlap (sliding windows), so the stretches follow in time
    (the web UI's ``stepSpans`` does the same)."""
    centres = [(p["start"] + p["end"]) / 2 for p in points]
    spans = []
    for i, p in enumerate(points):
        a, b = float(p["start"]), float(p["end"])
        if i > 0 and points[i - 1]["end"] > a:
            a = (centres[i - 1] + centres[i]) / 2
        if i + 1 < len(points) and points[i + 1]["start"] < b:
            b = (centres[i] + centres[i + 1]) / 2
        spans.append((a, b))
    return spans


def plot_speaker_lanes(segments: Sequence[Any], path: Path) -> Path:
    """One lane per speaker: each segment a bar coloured by its dominant emotion."""
    plt = pyplot()
    speakers = list(dict.fromkeys(s.speaker for s in segments if s.speaker))
    fig, ax = plt.subplots(figsize=(FIGSIZE[0], 0.6 + 0.45 * len(speakers)))
    for lane, speaker in enumerate(speakers):
        for s in (s for s in segments if s.speaker == speaker):
            colour = COLOURS[s.emotion.dominant] if s.emotion is not None else "#888888"
            ax.barh(lane, s.end - s.start, left=s.start, height=0.6, color=colour)
    ax.set_yticks(range(len(speakers)), speakers)
    ax.invert_yaxis()
    ax.set_xlabel("time (s)")
    ax.set_title("Who spoke when (colour: dominant emotion)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLOURS[e]) for e in BASE_EMOTIONS]
    ax.legend(
        handles,
        BASE_EMOTIONS,
        ncol=6,
        fontsize=7,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.35 if len(speakers) < 3 else -0.2),
        frameon=False,
    )
    return _save(fig, path)


def plot_window_attribution(
    samples: np.ndarray,
    windows: Sequence[Mapping[str, float]],
    target: str,
    path: Path,
    offset: float = 0.0,
    words: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """Waveform, the words said and the spectrogram, each window shaded by its Shapley value;
    times are the recording's (``samples`` start at ``offset`` s, like the windows and words)."""
    plt = pyplot()
    fig, (wave_ax, word_ax, spec_ax) = plt.subplots(
        3, 1, figsize=(8.0, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 0.7, 2.3]}
    )
    t = offset + np.arange(len(samples)) / SAMPLE_RATE
    wave_ax.plot(t, samples, color="#333333", linewidth=0.5)
    limit = max(abs(w["shapley"]) for w in windows) or 1.0
    for w in windows:
        colour = "#2ca02c" if w["shapley"] >= 0 else "#d62728"
        alpha = 0.1 + 0.5 * abs(w["shapley"]) / limit
        for ax in (wave_ax, word_ax):
            ax.axvspan(w["start"], w["end"], color=colour, alpha=alpha)
        wave_ax.text(
            (w["start"] + w["end"]) / 2,
            0.9 * float(np.abs(samples).max() or 1),
            f"{w['shapley']:+.2f}",
            ha="center",
            fontsize=8,
        )
    wave_ax.set_ylabel("amplitude")
    wave_ax.set_title(f"Where the model heard '{target}' (green supports, red opposes)")
    for k, word in enumerate(words):  # two rows, so that neighbouring words do not overlap
        centre = (word["start"] + word["end"]) / 2
        word_ax.text(centre, 0.7 if k % 2 == 0 else 0.25, str(word["text"]).strip(),
                     ha="center", va="center", fontsize=7, clip_on=True)  # fmt: skip
    word_ax.set_yticks([])
    word_ax.set_ylim(0, 1)
    word_ax.set_ylabel("words", rotation=0, ha="right", va="center")
    spec_ax.specgram(
        samples, NFFT=400, Fs=SAMPLE_RATE, noverlap=240, cmap="magma", xextent=(t[0], t[-1])
    )
    spec_ax.set_ylabel("Hz")
    spec_ax.set_xlabel("time in the recording (s)")
    spec_ax.set_xlim(t[0], t[-1])
    return _save(fig, path)


def plot_counterfactuals(report: Mapping[str, Any], path: Path) -> Path:
    """Change of every emotion's probability under each prosody transform."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    names = [c["name"] for c in report["counterfactuals"]]
    deltas = np.array([c["deltas"] for c in report["counterfactuals"]])
    width = 0.8 / len(BASE_EMOTIONS)
    for k, emotion in enumerate(BASE_EMOTIONS):
        ax.bar(
            np.arange(len(names)) + k * width - 0.4 + width / 2,
            deltas[:, k],
            width,
            color=COLOURS[emotion],
            label=emotion,
        )
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("Δ probability")
    ax.set_title("Prosody counterfactuals")
    ax.legend(ncol=3, fontsize=8)
    return _save(fig, path)


def plot_deletion(curves: Sequence[Mapping[str, Any]], random_area: float, path: Path) -> Path:
    """Deletion curves of each attribution method; the random-order baseline is an area (a
    mean over random orders), so it is stated beside the curves, not drawn as a flat line."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for curve in curves:
        p = curve["probabilities"]
        ax.plot(
            np.linspace(0, 1, len(p)),
            p,
            marker="o",
            label=f"{curve['method']} (area {curve['area']:.3f})",
        )
    ax.set_xlabel("share of windows removed")
    ax.set_ylabel("predicted-class probability")
    ax.set_ylim(0, 1)
    ax.set_title("Deletion curves (lower area = more faithful)")
    ax.legend(fontsize=8, title=f"random order: area {random_area:.3f}", title_fontsize=8)
    return _save(fig, path)


def colour_limit(matrix: np.ndarray, percentile: float = 99.5) -> float:
    """Where a heatmap's colour scale ends: the ``percentile`` of the magnitudes, not their
    maximum, since a few extreme cells (Integrated Gradients concentrate on some) would wash the
    rest of the map out; cells beyond it show in the end colour (the colour bar marks the cut)."""
    magnitude = np.abs(matrix)
    return float(np.percentile(magnitude, percentile)) or float(magnitude.max()) or 1.0


def plot_heatmap(
    matrix: np.ndarray, path: Path, title: str, xlabel: str, ylabel: str, extent: Any = None
) -> Path:
    """A heatmap (attention or saliency), its colour scale cut at :func:`colour_limit`."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    limit, peak = colour_limit(matrix), float(np.abs(matrix).max())
    signed = bool((matrix < 0).any())
    image = ax.imshow(
        matrix,
        aspect="auto",
        origin="lower",
        extent=extent,
        cmap="RdBu_r" if signed else "viridis",
        vmin=-limit if signed else 0,
        vmax=limit,
    )
    clipped = peak > limit
    fig.colorbar(image, ax=ax, extend=("both" if signed else "max") if clipped else "neither")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _save(fig, path)


def plot_rollout(
    rollout: Sequence[float],
    position_seconds: float,
    layers: int,
    path: Path,
    offset: float = 0.0,
) -> Path:
    """Attention rollout: how much of the encoder's mixed attention each moment receives
    (``offset``: where the segment starts in the recording, s)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    values = np.asarray(rollout, dtype=np.float64)
    t = offset + (np.arange(len(values)) + 0.5) * position_seconds
    ax.fill_between(t, values, color="#3452c7", alpha=0.3, linewidth=0)
    ax.plot(t, values, color="#3452c7", linewidth=1.2, label="rollout")
    uniform = 1.0 / max(len(values), 1)
    ax.axhline(uniform, color="#7f7f7f", linestyle="--", label="uniform attention")
    ax.set_xlim(offset, offset + len(values) * position_seconds)
    ax.set_ylim(0, float(values.max(initial=uniform)) * 1.1)
    ax.set_xlabel("time in the recording (s)")
    ax.set_ylabel("share of attention received")
    ax.set_title(f"Attention rollout over {layers} encoder layers")
    ax.legend(fontsize=8, loc="upper right")
    return _save(fig, path)


def plot_feature_ranges(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Each feature's value placed within its typical range (0 = low end, 1 = high end)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.0, 0.35 * len(rows) + 1.2))
    for k, row in enumerate(rows):
        span = (row["high"] - row["low"]) or 1.0
        x = (row["value"] - row["low"]) / span
        colour = {"below": "#1f77b4", "within": "#2ca02c", "above": "#d62728"}[row["position"]]
        ax.plot([0, 1], [k, k], color="#cccccc", linewidth=6, solid_capstyle="butt")
        ax.plot([min(max(x, -0.5), 1.5)], [k], "o", color=colour)
        ax.text(1.55, k, f"{row['value']:.3g}", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), [FEATURE_LABELS.get(r["name"], r["name"]) for r in rows])
    ax.set_xlim(-0.55, 1.75)
    ax.set_xticks([0, 1], ["typical low", "typical high"])
    ax.set_title("Segment features against typical neutral speech (5th–95th percentile)")
    return _save(fig, path)
