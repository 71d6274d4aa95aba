"""``emotivoice bench stream``: live-analysis latency and agreement with batch analysis.

Starts the real app with uvicorn on a free loopback port, streams each reference clip at the
pace of speech (as a microphone would, 100 ms frames, followed by a pause) and measures:

- end of speech → final ``segment``: from the moment the last speech sample of an utterance was
  spoken (stream start + the VAD's speech end) to the arrival of its segment event;
- the interval between consecutive partials of an utterance;
- agreement with batch analysis in the same process: WER of both against the reference
  transcripts, and how often a streamed segment's dominant emotion equals that of batch analysis
  of the same span of the original audio (and, stricter, of the whole-file batch segment it
  overlaps most: batch joins speech across pauses shorter than 2 s into longer segments).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emotivoice.audio import SAMPLE_RATE, load_audio
from emotivoice.errors import InvalidConfigError
from emotivoice.evaluation.datasets import reference_utterances
from emotivoice.metrics import word_error_rate

__all__ = ["MODES", "StreamBenchReport", "format_stream_report", "run_stream_benchmark"]

#: benchmark modes → stream options: the default, the default without speculation, the
#: default with batch analysis' trailing pad and beam (the defaults until 2026-12-07), and final
#: segments made exactly as batch analysis makes them
MODES: dict[str, dict[str, Any]] = {
    "fit+speculative": {"final_window": "fit", "speculative": True},
    "fit": {"final_window": "fit", "speculative": False},
    "fit+speculative+pad200+beam5": {
        "final_window": "fit",
        "speculative": True,
        "final_pad_ms": None,
        "final_beam_size": None,
    },
    "full": {"final_window": "full", "speculative": False},
}
_TRAILING_PAUSE_S = 1.5  # the speaker stays silent after the clip, as live speech would
_FRAME_MS = 100
_ANCHORS = (
    ("whisper_streaming (Macháček et al. 2023), reported", "3.3 s latency"),
    ("RealtimeSTT, default end-of-utterance silence", "0.2 s + transcription"),
)


@dataclass(frozen=True)
class StreamBenchReport:
    """The figures of ``emotivoice bench stream``."""

    files: int
    audio_seconds: float
    endpoint_silence_ms: int
    mode: str
    segments: int
    speculative_share: float
    speculations_discarded: int
    latency_p50_s: float
    latency_p95_s: float
    latency_max_s: float
    final_compute_p50_s: float
    partial_interval_p50_s: float | None
    partials: int
    stream_wer: float
    batch_wer: float
    stream_vs_batch_wer: float
    emotion_agreement: float
    emotion_agreement_same_span: float
    batch_rtf: float
    latencies_s: tuple[float, ...]

    @property
    def wer_difference_points(self) -> float:
        """Streamed WER minus batch WER, in percentage points."""
        return (self.stream_wer - self.batch_wer) * 100

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {**asdict(self), "wer_difference_points": round(self.wer_difference_points, 2)}


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _dominant_by_overlap(segment: dict[str, Any], batch_segments: list[Any]) -> str | None:
    best, best_overlap = None, 0.0
    for b in batch_segments:
        overlap = min(segment["end"], b.end) - max(segment["start"], b.start)
        if overlap > best_overlap and b.emotion is not None:
            best, best_overlap = b.emotion.dominant, overlap
    return best


def _same_span_agreement(analyzer: Any, clip: np.ndarray, session: Any) -> list[bool]:
    """Batch-analyse each streamed segment's span of the original audio; same dominant emotion?"""
    agreement = []
    for event in session.segments:
        if not event.get("emotion"):
            continue
        span = clip[int(event["start"] * SAMPLE_RATE) : int(event["end"] * SAMPLE_RATE)]
        batch = analyzer.analyze(span, sample_rate=SAMPLE_RATE)
        scored = [s for s in batch.segments if s.emotion is not None]
        longest = max(scored, key=lambda s: s.duration, default=None)
        agreement.append(
            longest is not None
            and longest.emotion is not None
            and longest.emotion.dominant == event["emotion"]["dominant"]
        )
    return agreement


async def _stream_all(
    url: str, clips: list[np.ndarray], endpoint_ms: int, modes: Sequence[str]
) -> dict[str, list[Any]]:
    from emotivoice.client.stream import StreamClient, pcm_frames

    client = StreamClient(url)
    pause = np.zeros(int(_TRAILING_PAUSE_S * SAMPLE_RATE), dtype=np.float32)
    # warm-up (not timed): loads the models and initialises the runtimes
    await client.stream_frames(pcm_frames(clips[0][: SAMPLE_RATE * 2], _FRAME_MS))
    sessions: dict[str, list[Any]] = {mode: [] for mode in modes}
    for samples in clips:
        frames = pcm_frames(np.concatenate([samples, pause]), _FRAME_MS)
        for mode in modes:  # alternate clip by clip: load drifts hit every mode alike
            sessions[mode].append(
                await client.stream_frames(
                    frames, pace_s=_FRAME_MS / 1000, endpoint_silence_ms=endpoint_ms, **MODES[mode]
                )
            )
    return sessions


def run_stream_benchmark(
    data_dir: Path | None = None,
    max_files: int | None = None,
    endpoint_silence_ms: int = 300,
    modes: Sequence[str] = tuple(MODES),
) -> tuple[StreamBenchReport, ...]:
    """Stream the reference clips in real time to an in-process server and measure.

    Args:
        modes: names from :data:`MODES`, measured side by side.

    Returns:
        One report per mode, measured in the same run.

    Raises:
        InvalidConfigError: an unknown mode.
    """
    unknown = sorted(set(modes) - set(MODES))
    if unknown or not modes:
        raise InvalidConfigError(
            f"Unknown stream benchmark modes {unknown}; choose from {list(MODES)}."
        )
    from emotivoice.service.app import create_app
    from emotivoice.service.local_server import serve
    from emotivoice.service.settings import load_settings

    items = reference_utterances(data_dir)[:max_files]
    clips = [load_audio(i.path).samples for i in items]
    with tempfile.TemporaryDirectory(prefix="emotivoice-bench-stream-") as home:
        app = create_app(load_settings(home=Path(home)), janitor=False)
        with serve(app) as base:
            url = base.replace("http://", "ws://") + "/api/v1/stream"
            runs = asyncio.run(_stream_all(url, clips, endpoint_silence_ms, modes))
        analyzer = app.state.analyzer()  # the server's own loaded models
        started = time.perf_counter()
        batches = [analyzer.analyze(i.path) for i in items]
        batch_rtf = (time.perf_counter() - started) / (sum(c.size for c in clips) / SAMPLE_RATE)
        same_span = {
            mode: [
                a
                for clip, session in zip(clips, sessions, strict=True)
                for a in _same_span_agreement(analyzer, clip, session)
            ]
            for mode, sessions in runs.items()
        }
    references = [i.text for i in items]
    return tuple(
        dataclasses.replace(
            _report(mode, sessions, batches, references, same_span[mode], clips, batch_rtf),
            endpoint_silence_ms=endpoint_silence_ms,
        )
        for mode, sessions in runs.items()
    )


def _report(
    mode: str,
    sessions: list[Any],
    batches: list[Any],
    references: list[str],
    span_agree: list[bool],
    clips: list[np.ndarray],
    batch_rtf: float,
) -> StreamBenchReport:
    latencies, computes, intervals, agree, early, n_partials = [], [], [], [], [], 0
    for session, batch in zip(sessions, batches, strict=True):
        for event, at in zip(session.events, session.received_at, strict=True):
            if event["type"] == "segment":
                latencies.append(at - (session.started_at + event["speech_end"]))
                computes.append(event["compute_s"])
                early.append(bool(event.get("speculative")))
                dominant = event["emotion"]["dominant"] if event.get("emotion") else None
                agree.append(dominant == _dominant_by_overlap(event, list(batch.segments)))
        partials = [
            (e["segment_id"], at)
            for e, at in zip(session.events, session.received_at, strict=True)
            if e["type"] == "partial"
        ]
        n_partials += len(partials)
        intervals += [b[1] - a[1] for a, b in itertools.pairwise(partials) if a[0] == b[0]]
    stream_texts = [s.text for s in sessions]
    batch_texts = [b.text for b in batches]
    return StreamBenchReport(
        files=len(sessions),
        audio_seconds=round(sum(c.size for c in clips) / SAMPLE_RATE, 2),
        endpoint_silence_ms=0,
        mode=mode,
        segments=len(latencies),
        speculative_share=round(sum(early) / len(early), 3) if early else 0.0,
        speculations_discarded=sum(
            int(s.of_type("stats")[-1].get("speculations_discarded", 0))
            for s in sessions
            if s.of_type("stats")
        ),
        latency_p50_s=round(_percentile(latencies, 50), 3),
        latency_p95_s=round(_percentile(latencies, 95), 3),
        latency_max_s=round(max(latencies, default=float("nan")), 3),
        final_compute_p50_s=round(_percentile(computes, 50), 3),
        partial_interval_p50_s=round(statistics.median(intervals), 3) if intervals else None,
        partials=n_partials,
        stream_wer=round(word_error_rate(references, stream_texts), 4),
        batch_wer=round(word_error_rate(references, batch_texts), 4),
        stream_vs_batch_wer=round(word_error_rate(batch_texts, stream_texts), 4),
        emotion_agreement=round(sum(agree) / len(agree), 3) if agree else float("nan"),
        emotion_agreement_same_span=(
            round(sum(span_agree) / len(span_agree), 3) if span_agree else float("nan")
        ),
        batch_rtf=round(batch_rtf, 3),
        latencies_s=tuple(round(x, 3) for x in latencies),
    )


def format_stream_report(reports: Sequence[StreamBenchReport]) -> str:
    """A plain-text table, one column per final-window mode, with the reference points."""
    first = reports[0]

    def row(label: str, cell: Callable[[StreamBenchReport], str]) -> str:
        return f"{label:<44}" + "".join(f"{cell(r):>22}" for r in reports)

    lines = [
        f"{first.files} reference clips, {first.audio_seconds:.1f} s of speech streamed in real "
        f"time (100 ms frames, then {_TRAILING_PAUSE_S:g} s of silence); endpoint after "
        f"{first.endpoint_silence_ms} ms of silence; modes alternate clip by clip",
        row("mode (final encoder window, speculation)", lambda r: r.mode),
        row("end of speech -> final segment, p50", lambda r: f"{r.latency_p50_s:.2f} s"),
        row("end of speech -> final segment, p95", lambda r: f"{r.latency_p95_s:.2f} s"),
        row("end of speech -> final segment, max", lambda r: f"{r.latency_max_s:.2f} s"),
        row("final segments", lambda r: str(r.segments)),
        row("of them made during the pause (speculative)", lambda r: f"{r.speculative_share:.0%}"),
        row(
            "speculative passes discarded (speech resumed)", lambda r: str(r.speculations_discarded)
        ),
        row("model time per final, p50", lambda r: f"{r.final_compute_p50_s:.2f} s"),
        row(
            "interval between partials, p50",
            lambda r: f"{r.partial_interval_p50_s:.2f} s" if r.partial_interval_p50_s else "-",
        ),
        row("WER vs reference, streamed", lambda r: f"{r.stream_wer * 100:.2f} %"),
        row("WER vs reference, batch", lambda r: f"{r.batch_wer * 100:.2f} %"),
        row("WER difference streamed - batch", lambda r: f"{r.wer_difference_points:+.2f} pt"),
        row("WER of streamed text against batch text", lambda r: f"{r.stream_vs_batch_wer:.2%}"),
        row("emotion = batch of the same span", lambda r: f"{r.emotion_agreement_same_span:.1%}"),
        row("emotion = overlapping whole-file segment", lambda r: f"{r.emotion_agreement:.1%}"),
        row("reference: batch analyze RTF (same run)", lambda r: f"{r.batch_rtf:.3f}"),
        "anchors: " + "; ".join(f"{name}: {value}" for name, value in _ANCHORS),
        "(whole-file batch segments join pauses under 2 s, so they are longer than live ones)",
    ]
    return "\n".join(lines)
