"""One small writer class per output format (as whisper's ``WriteSRT``/``WriteJSON``)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from emotivoice.emotion.backends import EmotionScores
from emotivoice.errors import InvalidConfigError
from emotivoice.export.subtitles import SubtitleOptions, subtitle_cues
from emotivoice.results import Analysis, Segment

__all__ = [
    "EXPORT_FORMATS",
    "WRITERS",
    "SubtitleOptions",
    "Writer",
    "get_writer",
    "write_export",
    "write_outputs",
]


class Writer:
    """Renders an analysis as text in one format."""

    extension: ClassVar[str]

    def render(self, analysis: Analysis) -> str:
        """The file content."""
        raise NotImplementedError

    def write(self, analysis: Analysis, path: Path) -> Path:
        """Write the rendering to ``path`` (UTF-8) and return the path."""
        path.write_text(self.render(analysis), encoding="utf-8")
        return path


class JsonWriter(Writer):
    """The full analysis as JSON (see ``analysis_json_schema()``)."""

    extension = "json"

    def render(self, analysis: Analysis) -> str:
        return analysis.to_json(indent=2) + "\n"


class CsvWriter(Writer):
    """One row per segment: times, speaker, language, text and the acoustic features.

    Text cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``,
    ``@``, a tab or a carriage return) are prefixed with ``'``, as OWASP advises against CSV
    injection; numbers are written as they are.
    """

    extension = "csv"

    def render(self, analysis: Analysis) -> str:
        rows = [
            {k: _neutralised(v) for k, v in _csv_row(analysis, s).items()}
            for s in analysis.segments
        ]
        columns = list(rows[0]) if rows else list(_csv_row(analysis, None))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _neutralised(value: object) -> object:
    """``value``, with ``'`` before a string a spreadsheet would take for a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _csv_row(analysis: Analysis, segment: Segment | None) -> dict[str, object]:
    from emotivoice.features import AcousticFeatures

    row: dict[str, object] = {
        "file": analysis.source.name,
        "segment": segment.id if segment else "",
        "start": segment.start if segment else "",
        "end": segment.end if segment else "",
        "speaker": (segment.speaker or "") if segment else "",
        "channel": "" if segment is None or segment.channel is None else segment.channel + 1,
        "language": segment.language if segment else "",
        "text": segment.text if segment else "",
        "avg_logprob": segment.avg_logprob if segment else "",
        "no_speech_prob": segment.no_speech_prob if segment else "",
    }
    if segment is not None and segment.features is not None:
        row.update({k: "" if v is None else v for k, v in segment.features.to_row().items()})
    else:
        row.update(dict.fromkeys(AcousticFeatures.column_names(), ""))
    row.update(_emotion_columns(segment.emotion if segment else None))
    row["unit_emotions"] = (
        " | ".join(
            f"{u.start:.2f}-{u.end:.2f} {u.emotion.dominant} {u.emotion.confidence:.2f}"
            + (" uncertain" if u.emotion.uncertain else "")
            for u in segment.units
        )
        if segment is not None
        else ""
    )
    return row


def _emotion_columns(emotion: EmotionScores | None) -> dict[str, object]:
    from emotivoice.emotion.dimensions import DIMENSIONS
    from emotivoice.emotion.labels import BASE_EMOTIONS

    columns: dict[str, object] = {
        "emotion": emotion.dominant if emotion else "",
        "emotion_confidence": emotion.confidence if emotion else "",
        "emotion_uncertain": emotion.uncertain if emotion else "",
    }
    for base in BASE_EMOTIONS:
        columns[f"p_{base}"] = emotion.probabilities[base] if emotion else ""
    for name in DIMENSIONS:
        value = getattr(emotion, name) if emotion else None
        columns[name] = "" if value is None else value
    columns["emotions_primary"] = " ".join(e.name for e in emotion.primary) if emotion else ""
    columns["emotions_secondary"] = " ".join(e.name for e in emotion.secondary) if emotion else ""
    columns["emotions_complex"] = " ".join(e.name for e in emotion.complex) if emotion else ""
    return columns


def _timestamp(seconds: float, decimal: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


class SrtWriter(Writer):
    """SubRip subtitles, cues cut by :class:`SubtitleOptions` at word times, ``[SPEAKER_1]``
    before a cue's text when speakers were told apart."""

    extension = "srt"

    def __init__(self, options: SubtitleOptions | None = None) -> None:
        self.options = options or SubtitleOptions()

    def render(self, analysis: Analysis) -> str:
        cues = [
            f"{n}\n{_timestamp(c.start, ',')} --> {_timestamp(c.end, ',')}\n"
            f"{f'[{c.speaker}] ' if c.speaker else ''}{chr(10).join(c.lines)}\n"
            for n, c in enumerate(subtitle_cues(analysis.segments, self.options), start=1)
        ]
        return "\n".join(cues)


class VttWriter(Writer):
    """WebVTT subtitles, cues cut by :class:`SubtitleOptions` at word times, the speaker as a
    voice span (``<v SPEAKER_1>``)."""

    extension = "vtt"

    def __init__(self, options: SubtitleOptions | None = None) -> None:
        self.options = options or SubtitleOptions()

    def render(self, analysis: Analysis) -> str:
        cues = [
            f"{_timestamp(c.start, '.')} --> {_timestamp(c.end, '.')}\n"
            f"{f'<v {c.speaker}>' if c.speaker else ''}"
            f"{chr(10).join(_vtt_text(line) for line in c.lines)}\n"
            for c in subtitle_cues(analysis.segments, self.options)
        ]
        return "WEBVTT\n\n" + "\n".join(cues)


def _vtt_text(text: str) -> str:
    """Cue text with the characters WebVTT reserves escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


WRITERS: dict[str, type[Writer]] = {
    w.extension: w for w in (JsonWriter, CsvWriter, SrtWriter, VttWriter)
}


def get_writer(fmt: str, subtitles: SubtitleOptions | None = None) -> Writer:
    """The writer for ``fmt`` (``json``, ``csv``, ``srt``, ``vtt``); ``subtitles`` cuts the
    cues of ``srt`` and ``vtt`` (default: :class:`SubtitleOptions`)."""
    fmt = fmt.lower()
    if fmt not in WRITERS:
        raise InvalidConfigError(
            f"Unknown output format {fmt!r}; available formats = {sorted(WRITERS)}"
        )
    if fmt in ("srt", "vtt"):
        return (SrtWriter if fmt == "srt" else VttWriter)(subtitles)
    return WRITERS[fmt]()


EXPORT_FORMATS = (*WRITERS, "pdf")  # the text writers and the PDF report


def write_export(
    analysis: Analysis,
    fmt: str,
    path: Path,
    explain_dir: Path | None = None,
    subtitles: SubtitleOptions | None = None,
) -> Path:
    """Write ``analysis`` in one of :data:`EXPORT_FORMATS` to ``path``: a text writer's
    rendering (subtitle cues cut by ``subtitles``), or the PDF report (with the explanation
    figures of ``explain_dir``)."""
    if fmt.lower() == "pdf":
        from emotivoice.export.pdf import write_pdf

        return write_pdf(analysis, path, explain_dir)
    return get_writer(fmt, subtitles).write(analysis, path)


def write_outputs(
    analysis: Analysis,
    directory: Path,
    stem: str,
    formats: Iterable[str],
    explain_dir: Path | None = None,
    subtitles: SubtitleOptions | None = None,
) -> list[Path]:
    """Write ``analysis`` once per format of :data:`EXPORT_FORMATS` as ``directory/stem.<ext>``
    (a PDF report shows the explanation figures of ``explain_dir``; ``subtitles`` cuts the
    SRT and WebVTT cues)."""
    formats = [fmt.lower() for fmt in formats]
    unknown = sorted(set(formats) - set(EXPORT_FORMATS))
    if unknown:
        raise InvalidConfigError(
            f"Unknown output format {unknown[0]!r}; available formats = {list(EXPORT_FORMATS)}"
        )
    directory.mkdir(parents=True, exist_ok=True)
    return [
        write_export(analysis, fmt, directory / f"{stem}.{fmt}", explain_dir, subtitles)
        for fmt in formats
    ]
