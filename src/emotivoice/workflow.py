"""The one use case every front door runs: analyse a recording, explain it, write the results.

``emotivoice analyze`` and the service's worker both call :func:`analyze_and_write`. What they
choose differently is passed in: where the files go and their names (the worker writes
``analysis.*``, ``report.pdf`` and ``explain/``; the CLI ``<stem>.*`` and ``<stem>-explain/``), how
many segments to explain, how progress is shown, and what happens to each finished segment (the
worker stores it at once, so a client sees segments while the rest is analysed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from emotivoice.audio import Audio
from emotivoice.explain.options import ExplainOptions
from emotivoice.export import SubtitleOptions, write_export, write_outputs
from emotivoice.pipeline import Analyzer, ProgressCallback, SegmentResult
from emotivoice.results import Analysis
from emotivoice.segmentation import SpeechSpan

__all__ = [
    "STAGE_EXPLAINING",
    "STAGE_WRITING",
    "WrittenAnalysis",
    "analyze_and_write",
    "explain_folder",
    "write_analysis",
]

STAGE_EXPLAINING = "explaining emotions"
STAGE_WRITING = "writing exports"  # the PDF report, after the explanations it shows

#: called with :data:`STAGE_EXPLAINING` or :data:`STAGE_WRITING` as that stage begins
StageCallback = Callable[[str], None]


@dataclass(frozen=True)
class WrittenAnalysis:
    """What :func:`analyze_and_write` made: the analysis and the files written."""

    analysis: Analysis
    files: tuple[Path, ...]
    explain_dir: Path | None


def explain_folder(out: Path, stem: str) -> Path:
    """The folder of the explanation report of the recording written as ``stem`` in ``out``."""
    return out / f"{stem}-explain"


def analyze_and_write(
    analyzer: Analyzer,
    audio: Audio,
    out: Path,
    stem: str,
    formats: Sequence[str],
    *,
    explain: ExplainOptions | None = None,
    explain_dir: Path | None = None,
    explain_max_segments: int | None = None,
    file_names: Mapping[str, str] | None = None,
    progress: ProgressCallback | None = None,
    explain_progress: ProgressCallback | None = None,
    on_segment: Callable[[SegmentResult], None] | None = None,
    on_stage: StageCallback | None = None,
    started: float | None = None,
    subtitles: SubtitleOptions | None = None,
) -> WrittenAnalysis:
    """Analyse ``audio``, explain its emotions if asked, and write it in every format.

    Args:
        analyzer: the loaded models and analysis options.
        audio: the decoded recording (``analyzer.load``).
        out: the output folder; files are ``out/<stem>.<format>`` unless ``file_names`` names
            a format's file (e.g. ``{"pdf": "report.pdf"}``).
        formats: any of :data:`emotivoice.export.EXPORT_FORMATS`; the PDF report is written
            last, with the explanation figures.
        explain: explanation options (``None``: no explanations). Explanations need emotion
            and at least one segment; segments are cut at the pipeline's exact sample spans.
        explain_dir: where the explanation report goes (default :func:`explain_folder`).
        explain_max_segments: explain only this many of the longest segments.
        progress: called as segments finish (seconds done, seconds in all, message).
        explain_progress: called as explanations make model evaluations (evaluations done,
            evaluations at most, message); ``None``: :func:`~emotivoice.explain.explain`'s
            own feedback (a bar on a terminal).
        on_segment: called with each finished segment before the next one starts.
        on_stage: called as explaining and writing begin.
        started: when the work began (``time.perf_counter()``), for the analysis'
            ``processing_time_s``; default: now (the segments' analysis alone).
        subtitles: how SRT and WebVTT cues are cut (default: :class:`SubtitleOptions`).
    """
    started = time.perf_counter() if started is None else started
    formats = list(dict.fromkeys(formats))  # each format once, in the order asked
    results = []
    for result in analyzer.iter_segments(audio, progress):
        if on_segment is not None:
            on_segment(result)
        results.append(result)
    if progress is not None:  # the last segment may end before the recording does
        progress(audio.duration, audio.duration, "every segment analysed")
    segments = tuple(r.segment for r in results)
    analysis = analyzer.assemble(audio, segments, time.perf_counter() - started)
    return write_analysis(
        analyzer,
        audio,
        analysis,
        {r.segment.id: r.span for r in results},
        out,
        stem,
        formats,
        explain=explain,
        explain_dir=explain_dir,
        explain_max_segments=explain_max_segments,
        file_names=file_names,
        explain_progress=explain_progress,
        on_stage=on_stage,
        subtitles=subtitles,
    )


def write_analysis(
    analyzer: Analyzer,
    audio: Audio,
    analysis: Analysis,
    spans: Mapping[int, SpeechSpan],
    out: Path,
    stem: str,
    formats: Sequence[str],
    *,
    explain: ExplainOptions | None = None,
    explain_dir: Path | None = None,
    explain_max_segments: int | None = None,
    file_names: Mapping[str, str] | None = None,
    explain_progress: ProgressCallback | None = None,
    on_stage: StageCallback | None = None,
    subtitles: SubtitleOptions | None = None,
) -> WrittenAnalysis:
    """Explain (if asked) and write a finished analysis: the second half of
    :func:`analyze_and_write`, also what the batch path runs for each of its files.

    ``spans``: the pipeline's exact sample span of each segment id (explanations cut there);
    the other arguments are :func:`analyze_and_write`'s.
    """
    formats = list(dict.fromkeys(formats))
    segments = analysis.segments
    names = dict(file_names or {})
    later = [f for f in formats if f == "pdf"]  # the PDF report shows the explanation figures
    written = _write(analysis, out, stem, [f for f in formats if f not in later], names, subtitles)
    folder = None
    if explain is not None and analyzer.emotion is not None and segments:
        from emotivoice.explain.core import explain as explain_segments
        from emotivoice.explain.core import write_report

        if on_stage is not None:
            on_stage(STAGE_EXPLAINING)
        chosen = sorted(segments, key=lambda s: -s.duration)[:explain_max_segments]
        ids = sorted(s.id for s in chosen)
        explanations = explain_segments(
            audio, analysis, explain, segment=ids, spans=spans, progress=explain_progress
        )
        folder = explain_dir or explain_folder(out, stem)
        write_report(analysis, audio, explanations, folder, spans)
    if on_stage is not None:
        on_stage(STAGE_WRITING)
    written += _write(analysis, out, stem, later, names, subtitles, folder)
    return WrittenAnalysis(analysis=analysis, files=tuple(written), explain_dir=folder)


def _write(
    analysis: Analysis,
    out: Path,
    stem: str,
    formats: Sequence[str],
    names: Mapping[str, str],
    subtitles: SubtitleOptions | None,
    explain_dir: Path | None = None,
) -> list[Path]:
    named = [f for f in formats if f in names]
    unnamed = [f for f in formats if f not in named]
    written = write_outputs(analysis, out, stem, unnamed, explain_dir, subtitles)
    return written + [
        write_export(analysis, f, out / names[f], explain_dir, subtitles) for f in named
    ]
