"""Who spoke when: speaker turns from embeddings of short windows, clustered.

The steps (:func:`diarize`):

1. The speech regions found by voice activity detection are covered by 1.6 s windows every
   ``hop_s`` seconds; each window becomes a GE2E speaker embedding
   (:mod:`emotivoice.diarization.embedding`).
2. The embeddings are clustered by average-linkage agglomerative clustering on cosine distance
   (SciPy): cut where clusters are further apart than ``threshold`` when the number of speakers
   is not given (then kept within ``min_speakers``..``max_speakers``), or cut into exactly
   ``speakers`` clusters.
3. Every 10 ms frame of speech is given the speaker whose centroid its covering windows are most
   similar to; runs shorter than ``min_turn_s`` join a neighbour. Runs of one speaker are the
   turns; a speech region spoken by two people is split where the speaker changes.

Speakers are named ``SPEAKER_1``, ``SPEAKER_2``, ... in order of first appearance.
"""

from __future__ import annotations

import bisect
import itertools
import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np

from emotivoice.audio import SAMPLE_RATE
from emotivoice.diarization.embedding import HOP, WINDOW_FRAMES, VoiceEncoder, load_voice_encoder
from emotivoice.errors import InvalidConfigError
from emotivoice.segmentation import SpeechSpan, merge_spans

__all__ = [
    "DEFAULT_THRESHOLD",
    "ChannelMode",
    "Diarization",
    "DiarizationOptions",
    "SpeakerTurn",
    "diarize",
    "embed_speech",
    "merge_turns",
    "speaker_name",
]

logger = logging.getLogger(__name__)

ChannelMode = Literal["auto", "mix", "split"]
CHANNEL_MODES: tuple[str, ...] = ("auto", "mix", "split")
BACKENDS: tuple[str, ...] = ("ge2e", "pyannote")

#: Average cosine distance between two clusters of windows above which they are two speakers.
#: Chosen on conversations built from the ``dev`` speakers (RAVDESS actors 01-10, nEMO EB0, IC0,
#: KD0, KS0) and reported on the other speakers (``benchmarks/diarization.py``,
#: docs/benchmarks.md).
DEFAULT_THRESHOLD = 0.35
#: An estimated speaker with fewer windows than this (about 2.3 s of speech at the default hop)
#: is a stray voice quality, not a person: it joins the most similar speaker.
MIN_SPEAKER_WINDOWS = 3
#: Two estimated speakers whose average embeddings are closer than this cosine distance are one
#: voice in two moods: they are joined. (Average linkage compares clusters by their mean
#: pairwise distance, which a voice's spread inflates; the centroids show the voice itself.)
#: With the threshold above, chosen on the ``dev`` conversations: speaker count right in 10 of
#: 12 instead of 8, for a DER of 14.2 % instead of 12.6 %.
MERGE_DISTANCE = 0.20
_FRAMES_PER_S = SAMPLE_RATE // HOP


def speaker_name(index: int) -> str:
    """``SPEAKER_1`` for index 0: the label of the ``index``-th speaker to appear."""
    return f"SPEAKER_{index + 1}"


@dataclass(frozen=True)
class DiarizationOptions:
    """How speakers are told apart.

    Attributes:
        speakers: the exact number of speakers when known (``None``: estimate it).
        min_speakers: the fewest speakers an estimate may give.
        max_speakers: the most speakers an estimate may give.
        channels: ``split`` analyses each channel of a multichannel recording as its own speaker
            (stereo call recordings), ``mix`` averages the channels and tells speakers apart by
            voice, ``auto`` splits when the channels clearly carry different talkers.
        threshold: cosine distance between speaker clusters that separates two speakers when
            their number is estimated (lower: more speakers).
        hop_s: seconds between the starts of embedded windows (each 1.6 s long).
        min_turn_s: speaker runs shorter than this join a neighbouring speaker.
        backend: ``ge2e`` (offline, the shipped encoder) or ``pyannote`` (``pyannote.audio``'s
            hub pipeline; needs the package, a Hugging Face token and a network).
        device: where the GE2E encoder runs: ``cpu`` (numpy) or ``cuda`` (its PyTorch twin on
            the GPU; the batch path sets it with ``--device cuda``).
    """

    speakers: int | None = None
    min_speakers: int = 1
    max_speakers: int = 8
    channels: ChannelMode = "auto"
    threshold: float = DEFAULT_THRESHOLD
    hop_s: float = 0.75
    min_turn_s: float = 0.5
    backend: str = "ge2e"
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise InvalidConfigError(f"device must be cpu or cuda, not {self.device!r}.")
        if self.speakers is not None and self.speakers < 1:
            raise InvalidConfigError(
                f"speakers must be at least 1 (got {self.speakers}); leave it out to estimate "
                "the number of speakers."
            )
        if self.min_speakers < 1 or self.max_speakers < self.min_speakers:
            raise InvalidConfigError(
                f"min_speakers ({self.min_speakers}) must be at least 1 and at most "
                f"max_speakers ({self.max_speakers})."
            )
        if self.channels not in CHANNEL_MODES:
            raise InvalidConfigError(
                f"channels must be one of {', '.join(CHANNEL_MODES)}, not {self.channels!r}."
            )
        if self.backend not in BACKENDS:
            raise InvalidConfigError(
                f"Unknown diarization backend {self.backend!r}; use one of {', '.join(BACKENDS)}."
            )
        if not 0.0 < self.threshold < 2.0:
            raise InvalidConfigError("threshold must be a cosine distance between 0 and 2.")
        if not 0.1 <= self.hop_s <= 1.6:
            raise InvalidConfigError("hop_s must be between 0.1 and 1.6 seconds.")
        if self.min_turn_s < 0:
            raise InvalidConfigError("min_turn_s must not be negative.")


@dataclass(frozen=True)
class SpeakerTurn:
    """A stretch of speech by one speaker (``channel``: the recording's channel, when split)."""

    span: SpeechSpan
    speaker: str
    channel: int | None = None


@dataclass(frozen=True)
class Diarization:
    """The speaker turns of a recording, in time order.

    Attributes:
        turns: non-overlapping turns of each channel (channels may overlap each other).
        speakers: the speaker labels in order of first appearance.
        method: ``ge2e``, ``pyannote`` or ``channels``.
    """

    turns: tuple[SpeakerTurn, ...]
    speakers: tuple[str, ...]
    method: str

    def speaker_at(self, seconds: float, channel: int | None = None) -> str | None:
        """The speaker talking at ``seconds`` (the nearest turn's when between turns)."""
        turns = [t for t in self.turns if t.channel == channel] or list(self.turns)
        if not turns:
            return None
        starts = [t.span.start for t in turns]
        i = bisect.bisect_right(starts, seconds) - 1
        nearby = [turns[j] for j in (i, i + 1) if 0 <= j < len(turns)]
        best = min(nearby, key=lambda t: max(0.0, t.span.start - seconds, seconds - t.span.end))
        return best.speaker


def diarize(
    samples: np.ndarray,
    regions: list[SpeechSpan],
    options: DiarizationOptions | None = None,
    encoder: VoiceEncoder | None = None,
) -> Diarization:
    """Speaker turns of 16 kHz mono ``samples`` within the speech ``regions`` (VAD output).

    Args:
        samples: the recording.
        regions: speech regions in time order (unmerged VAD output).
        options: speaker count and clustering settings.
        encoder: the speaker encoder (default: the shipped GE2E encoder).

    Returns:
        The turns; one speaker for a recording too short to tell voices apart, none for silence.
    """
    opts = options or DiarizationOptions()
    if not regions:
        return Diarization(turns=(), speakers=(), method="ge2e")
    encoder = encoder or load_voice_encoder()
    embeddings, windows = embed_speech(samples, regions, opts.hop_s, encoder, opts.device)
    labels = _cluster(embeddings, [region for _, region in windows], opts)
    centroids = np.stack(
        [_unit(embeddings[labels == k].mean(axis=0)) for k in range(labels.max() + 1)]
    )
    turns = _turns(regions, windows, embeddings @ centroids.T, opts.min_turn_s)
    order = {k: i for i, k in enumerate(dict.fromkeys(k for _, k in turns))}
    named = tuple(SpeakerTurn(span, speaker_name(order[k])) for span, k in turns)
    logger.debug(
        "Diarization: %d windows, %d speakers, %d turns", len(windows), len(order), len(named)
    )
    return Diarization(
        turns=named, speakers=tuple(speaker_name(i) for i in range(len(order))), method="ge2e"
    )


def embed_speech(
    samples: np.ndarray,
    regions: list[SpeechSpan],
    hop_s: float,
    encoder: VoiceEncoder,
    device: str = "cpu",
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The speaker embedding of every 1.6 s window of the speech ``regions`` (their speech
    level raised to -30 dBFS as a whole), with each window's ``(first frame, region index)``;
    the encoder runs on ``device``."""
    windows = _windows(regions, round(hop_s * _FRAMES_PER_S))
    gain = _speech_gain(samples, regions)
    return _embed_windows(encoder, samples * gain, regions, windows, device), windows


def _speech_gain(samples: np.ndarray, regions: list[SpeechSpan]) -> np.float32:
    """The gain that raises the speech (not the silence around it) to -30 dBFS (at least 1)."""
    energy = sum(
        float(np.sum(np.square(samples[r.start_sample : r.end_sample], dtype=np.float64)))
        for r in regions
    )
    count = sum(r.end_sample - r.start_sample for r in regions)
    rms = float(np.sqrt(energy / count)) if count else 0.0
    if rms <= 0:
        return np.float32(1.0)
    return np.float32(min(max(10 ** ((-30.0 - 20 * np.log10(rms)) / 20), 1.0), 1000.0))


def _embed_windows(
    encoder: VoiceEncoder,
    samples: np.ndarray,
    regions: list[SpeechSpan],
    windows: list[tuple[int, int]],
    device: str = "cpu",
) -> np.ndarray:
    """The embedding of every window, the mel spectrogram made one region at a time (a long
    recording's silence is never transformed, and memory stays that of one region)."""
    rows: list[np.ndarray] = []
    for index, region in enumerate(regions):
        starts = [start for start, owner in windows if owner == index]
        first = region.start_sample // HOP
        mel = encoder.mel(samples[first * HOP : region.end_sample], normalise=False)
        mel = np.pad(mel, ((0, WINDOW_FRAMES), (0, 0)))  # a last window may run past the end
        rows += [mel[a - first : a - first + WINDOW_FRAMES] for a in starts]
    return encoder.embed(np.stack(rows), device=device)


def _windows(regions: list[SpeechSpan], hop: int) -> list[tuple[int, int]]:
    """``(first frame, region index)`` of every embedded window: each region is covered from its
    start in steps of ``hop`` frames, the last window ending at the region's end; a region
    shorter than a window gets one window from its start."""
    windows: list[tuple[int, int]] = []
    for index, region in enumerate(regions):
        first = region.start_sample // HOP
        last = max(first, region.end_sample // HOP - WINDOW_FRAMES)
        starts = list(range(first, last + 1, hop))
        if starts[-1] != last:
            starts.append(last)
        windows += [(s, index) for s in starts]
    return windows


def _unit(v: np.ndarray) -> np.ndarray:
    out: np.ndarray = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


#: Average-linkage clustering keeps all pairwise distances (n² / 2 numbers): above this many
#: windows (25 min of speech at the default hop), neighbouring windows of a region are averaged
#: into groups that are clustered instead, each window taking its group's speaker.
MAX_CLUSTERED_POINTS = 2000


def _cluster(embeddings: np.ndarray, owners: list[int], opts: DiarizationOptions) -> np.ndarray:
    """A cluster index per window (0-based); ``owners`` is each window's region."""
    if len(embeddings) > MAX_CLUSTERED_POINTS:
        size = -(-len(embeddings) // MAX_CLUSTERED_POINTS)
        groups = np.zeros(len(embeddings), dtype=int)
        group, run = 0, 0
        for i in range(1, len(embeddings)):
            run += 1
            if owners[i] != owners[i - 1] or run == size:
                group, run = group + 1, 0
            groups[i] = group
        means = np.stack([_unit(embeddings[groups == g].mean(axis=0)) for g in range(group + 1)])
        grouped: np.ndarray = _cluster(means, [0] * (group + 1), opts)[groups]
        return grouped
    n = len(embeddings)
    if opts.speakers is not None and opts.speakers > n:
        logger.warning(
            "%d speakers were asked for but the speech allows at most %d", opts.speakers, n
        )
    if n == 1 or (opts.speakers is None and opts.min_speakers <= 1 and n < 2 * MIN_SPEAKER_WINDOWS):
        # too few windows for two voices of MIN_SPEAKER_WINDOWS each: whatever the tree, the
        # strays would be joined into one speaker (short clips skip SciPy's costly import)
        return np.zeros(n, dtype=int)
    from scipy.cluster.hierarchy import fcluster, linkage

    tree = linkage(embeddings.astype(np.float64), method="average", metric="cosine")
    if opts.speakers is not None:
        labels = fcluster(tree, t=min(opts.speakers, n), criterion="maxclust")
    else:
        labels = fcluster(tree, t=opts.threshold, criterion="distance")
        labels = _join_strays(embeddings, labels, opts.min_speakers)
        count = int(labels.max()) + 1
        bounded = min(max(count, opts.min_speakers), opts.max_speakers, n)
        if bounded != count:
            labels = fcluster(tree, t=bounded, criterion="maxclust")
    _, dense = np.unique(labels, return_inverse=True)
    result: np.ndarray = dense.astype(int)
    return result


def _join_strays(embeddings: np.ndarray, labels: np.ndarray, keep: int) -> np.ndarray:
    """Estimated clusters tidied while more than ``keep`` remain: the smallest one with fewer
    than :data:`MIN_SPEAKER_WINDOWS` windows joins the cluster whose centroid is nearest; when
    none is that small, the two nearest centroids are joined if within :data:`MERGE_DISTANCE`."""
    labels = np.unique(labels, return_inverse=True)[1]
    while labels.max() + 1 > keep:
        counts = np.bincount(labels)
        centroids = np.stack(
            [_unit(embeddings[labels == j].mean(axis=0)) for j in range(len(counts))]
        )
        similarity = centroids @ centroids.T
        np.fill_diagonal(similarity, -np.inf)
        small = np.flatnonzero(counts < MIN_SPEAKER_WINDOWS)
        if small.size:
            k = int(small[np.argmin(counts[small])])
            target = int(np.argmax(similarity[k]))
        else:
            k, target = (int(i) for i in np.unravel_index(np.argmax(similarity), similarity.shape))
            if 1.0 - similarity[k, target] > MERGE_DISTANCE:
                break
        labels[labels == k] = target
        labels = np.unique(labels, return_inverse=True)[1]
    return labels


def _turns(
    regions: list[SpeechSpan],
    windows: list[tuple[int, int]],
    similarity: np.ndarray,
    min_turn_s: float,
) -> list[tuple[SpeechSpan, int]]:
    """Speaker runs inside each region from the similarity of its windows to each speaker."""
    turns: list[tuple[SpeechSpan, int]] = []
    by_region: dict[int, list[int]] = {}
    for w, (_, owner) in enumerate(windows):
        by_region.setdefault(owner, []).append(w)
    min_frames = round(min_turn_s * _FRAMES_PER_S)
    for index, region in enumerate(regions):
        first = region.start_sample // HOP
        n_frames = max(1, -(-region.end_sample // HOP) - first)
        score = np.zeros((n_frames, similarity.shape[1]))
        cover = np.zeros(n_frames)
        for w in by_region[index]:
            a = max(0, windows[w][0] - first)
            b = min(n_frames, a + WINDOW_FRAMES)
            score[a:b] += similarity[w]
            cover[a:b] += 1
        labels = np.argmax(score / np.maximum(cover, 1)[:, None], axis=1)
        for a, b, k in _absorb_short_runs(labels, score, min_frames):
            start = max(region.start_sample, (first + a) * HOP)
            end = min(region.end_sample, (first + b) * HOP)
            if end > start:
                turns.append((SpeechSpan(start, end), int(k)))
    return turns


def _runs(labels: np.ndarray) -> list[list[int]]:
    """``[start, end, label]`` of each run of equal labels."""
    edges = np.flatnonzero(np.diff(labels)) + 1
    bounds = [0, *edges.tolist(), len(labels)]
    return [[a, b, int(labels[a])] for a, b in itertools.pairwise(bounds)]


def _absorb_short_runs(labels: np.ndarray, score: np.ndarray, min_frames: int) -> list[list[int]]:
    """Runs of one speaker, the shortest first joining the neighbour it is more similar to,
    until every run lasts ``min_frames`` or the region has one run."""
    runs = _runs(labels)
    while len(runs) > 1:
        i = min(range(len(runs)), key=lambda j: runs[j][1] - runs[j][0])
        a, b, _ = runs[i]
        if b - a >= min_frames:
            break
        neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(runs)]
        j = max(neighbours, key=lambda n: score[a:b, runs[n][2]].sum())
        runs[i][2] = runs[j][2]
        merged: list[list[int]] = []
        for run in runs:
            if merged and merged[-1][2] == run[2]:
                merged[-1][1] = run[1]
            else:
                merged.append(run)
        runs = merged
    return runs


def merge_turns(
    turns: tuple[SpeakerTurn, ...], max_segment_s: float, max_gap_s: float
) -> list[SpeakerTurn]:
    """Join each speaker's consecutive turns (of one channel) into segments as
    :func:`~emotivoice.segmentation.merge_spans` joins speech: across pauses shorter than
    ``max_gap_s``, up to ``max_segment_s``; a change of speaker always starts a new segment.

    Returns:
        The segments in time order.
    """
    merged: list[SpeakerTurn] = []
    for channel in dict.fromkeys(t.channel for t in turns):
        own = [t for t in turns if t.channel == channel]
        for speaker, run in itertools.groupby(own, key=lambda t: t.speaker):
            spans = merge_spans([t.span for t in run], max_segment_s, max_gap_s)
            merged += [SpeakerTurn(span, speaker, channel) for span in spans]
    merged.sort(key=lambda t: (t.span.start_sample, t.channel or 0))
    return merged
