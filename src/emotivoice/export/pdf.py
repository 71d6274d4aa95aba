"""A PDF report of an analysis (ReportLab): summary, charts, transcript with emotions, features,
and the explanation figures when there are any.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from emotivoice.extras import import_extra
from emotivoice.results import Analysis

__all__ = ["write_pdf"]

logger = logging.getLogger(__name__)

_FEATURES = (
    ("f0_mean_hz", "pitch mean (Hz)", "{:.0f}"),
    ("f0_range_semitones", "pitch range (st)", "{:.1f}"),
    ("energy_db_mean", "energy (dB)", "{:.1f}"),
    ("speaking_rate_wps", "words/s", "{:.2f}"),
    ("jitter_local", "jitter", "{:.3f}"),
    ("shimmer_local", "shimmer", "{:.3f}"),
    ("hnr_db", "HNR (dB)", "{:.1f}"),
)
_FIGURE_CAPTIONS = {
    "windows": "Window attributions (Shapley values) over the waveform",
    "deletion": "Deletion curve: faithfulness of the attribution against random orders",
    "counterfactuals": "How the emotion probabilities move under prosody changes",
    "features": "Acoustic features beside typical ranges",
    "attention": "Encoder self-attention (last layer, mean over heads)",
    "saliency": "Integrated Gradients saliency on the log-mel input",
    "rollout": "Attention rollout over all encoder layers",
}


def _require_reportlab() -> Any:
    return import_extra("reportlab", "pdf", "PDF reports")


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:04.1f}"


def _emotion_cell(segment: Any) -> str:
    e = segment.emotion
    if e is None:
        return "-"
    text = f"{e.dominant} {e.confidence:.0%}"
    if e.uncertain:
        text += " (uncertain)"
    extra = [g.name for g in e.primary[:2]] + [c.name for c in e.complex]
    return text + (f"<br/><font size=7>{escape(', '.join(extra))}</font>" if extra else "")


def _figure(png: Path, max_width: float, max_height: float) -> Any:
    """A flowable of ``png`` at its own aspect ratio, as large as fits the given box."""
    from reportlab.lib.utils import ImageReader
    from reportlab.platypus import Image

    pixels_wide, pixels_high = ImageReader(str(png)).getSize()
    scale = min(max_width / pixels_wide, max_height / pixels_high)
    return Image(str(png), width=pixels_wide * scale, height=pixels_high * scale)


@dataclass(frozen=True)
class _Layout:
    """Styles and sizes shared by the report's parts."""

    styles: Any
    small: Any
    width: float
    figure_box: tuple[float, float]
    table_style: Any


def _layout() -> _Layout:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import TableStyle

    styles = getSampleStyleSheet()
    width = A4[0] - 4 * cm
    return _Layout(
        styles=styles,
        small=styles["BodyText"].clone("small", fontSize=8, leading=10),
        width=width,
        # Figures: 80 % of the text width, and at most half a page tall (tall feature charts).
        figure_box=(width * 0.8, (A4[1] - 4 * cm) * 0.5),
        table_style=TableStyle(
            [
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ]
        ),
    )


def write_pdf(analysis: Analysis, path: Path, explain_dir: Path | None = None) -> Path:
    """Write the report of ``analysis`` to ``path``; explanation PNGs from ``explain_dir``."""
    _require_reportlab()
    from reportlab.lib.pagesizes import A4
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    layout = _layout()
    story: list[Any] = [Paragraph("EmotiVoice analysis report", layout.styles["Title"])]
    story += _summary(analysis, layout)
    with tempfile.TemporaryDirectory(prefix="emotivoice-pdf-") as tmp:
        story += _emotion_charts(analysis, layout, Path(tmp))
        story += _speakers(analysis, layout, Path(tmp))
        story += _transcript(analysis, layout)
        story += _feature_table(analysis, layout)
        story += _explanation_figures(explain_dir, layout)
        path.parent.mkdir(parents=True, exist_ok=True)
        SimpleDocTemplate(
            str(path), pagesize=A4, title="EmotiVoice analysis report", author="EmotiVoice"
        ).build(story)
    logger.debug("Wrote PDF report %s", path)
    return path


def _summary(analysis: Analysis, layout: _Layout) -> list[Any]:
    from reportlab.lib.units import cm
    from reportlab.platypus import Spacer, Table

    src = analysis.source
    summary = [
        ["Recording", f"{src.format} / {src.codec}, {src.sample_rate} Hz, {src.channels} ch"],
        ["Duration", f"{analysis.duration:.1f} s ({analysis.speech_duration:.1f} s of speech)"],
        ["Language", ", ".join(f"{s.language} {s.share:.0%}" for s in analysis.languages) or "-"],
        ["Dominant emotion", analysis.emotion.dominant if analysis.emotion else "-"],
        ["Segments", str(len(analysis.segments))],
        ["Speakers", _speaker_line(analysis)],
        [
            "Model",
            f"Whisper {analysis.model.whisper_model}, emotion {analysis.model.emotion_model}",
        ],
        ["Created", f"{analysis.created_at} (EmotiVoice {analysis.emotivoice_version})"],
    ]
    widths = [4 * cm, layout.width - 4 * cm]
    return [Table(summary, colWidths=widths, style=layout.table_style), Spacer(1, 8)]


def _emotion_charts(analysis: Analysis, layout: _Layout, tmp: Path) -> list[Any]:
    from reportlab.platypus import Paragraph

    if analysis.emotion is None or not analysis.segments:
        return []
    from emotivoice.explain import plots

    charts = [
        plots.plot_distribution(analysis.emotion.distribution, tmp / "dist.png"),
        plots.plot_timeline([asdict(p) for p in analysis.emotion.timeline], tmp / "timeline.png"),
    ]
    heading = Paragraph("Emotions", layout.styles["Heading2"])
    return [heading] + [_figure(chart, *layout.figure_box) for chart in charts]


_METHODS = {
    "ge2e": "told apart by voice",
    "pyannote": "told apart by pyannote",
    "channels": "one per channel",
}


def _speaker_line(analysis: Analysis) -> str:
    if analysis.model.diarization is None:
        return "not told apart (diarization off)"
    method = _METHODS.get(analysis.model.diarization, analysis.model.diarization)
    return f"{len(analysis.speakers)} ({method})"


def _speakers(analysis: Analysis, layout: _Layout, tmp: Path) -> list[Any]:
    """Per-speaker summary: a table and the speaker lanes, on a page of their own."""
    from reportlab.platypus import KeepTogether, Paragraph, Table

    if not analysis.speakers:
        return []
    from emotivoice.explain import plots

    head = ["speaker", "talk time", "turns", "interrupts", "overlap", "words/s", "pitch", "emotion"]
    rows: list[list[Any]] = [head]
    for sp in analysis.speakers:
        name = sp.id if sp.channel is None else f"{sp.id} (channel {sp.channel + 1})"
        emotion = "-"
        if sp.emotion is not None:
            top = sp.emotion.dominant
            emotion = f"{top} {sp.emotion.distribution[top]:.0%}"
        pitch = (
            "-" if sp.f0_mean_hz is None else f"{sp.f0_mean_hz:.0f} ± {sp.f0_std_hz or 0:.0f} Hz"
        )
        rate = "-" if sp.speaking_rate_wps is None else f"{sp.speaking_rate_wps:.2f}"
        rows.append(
            [
                name,
                f"{sp.talk_time_s:.1f} s ({sp.share:.0%})",
                str(sp.turns),
                str(sp.interruptions),
                f"{sp.overlap_s:.1f} s",
                rate,
                pitch,
                emotion,
            ]
        )
    lanes = plots.plot_speaker_lanes(analysis.segments, tmp / "speakers.png")
    return [
        KeepTogether(
            [
                Paragraph("Speakers", layout.styles["Heading2"]),
                Table(rows, style=layout.table_style, repeatRows=1),
                _figure(lanes, *layout.figure_box),
            ]
        )
    ]


def _transcript(analysis: Analysis, layout: _Layout) -> list[Any]:
    from reportlab.lib.units import cm
    from reportlab.platypus import Paragraph, Table

    rows: list[list[Any]] = [["time", "text", "emotion"]]
    for s in analysis.segments:
        said = escape(s.text) or "<i>(no speech)</i>"
        rows.append(
            [
                f"{_clock(s.start)}-{_clock(s.end)}",
                Paragraph(
                    f"<b>{escape(s.speaker)}</b>: {said}" if s.speaker else said, layout.small
                ),
                Paragraph(_emotion_cell(s), layout.small),
            ]
        )
    if len(rows) == 1:
        rows.append(["-", "No speech was found.", "-"])
    widths = [2.6 * cm, layout.width - 6.6 * cm, 4 * cm]
    return [
        Paragraph("Transcript", layout.styles["Heading2"]),
        Table(rows, colWidths=widths, style=layout.table_style),
    ]


def _feature_table(analysis: Analysis, layout: _Layout) -> list[Any]:
    from reportlab.platypus import Paragraph, Table

    featured = [s for s in analysis.segments if s.features is not None]
    if not featured:
        return []
    head = ["segment"] + [label for _, label, _ in _FEATURES]
    body = []
    for s in featured:
        values = s.features.to_dict() if s.features else {}
        body.append(
            [str(s.id)]
            + ["-" if values.get(k) is None else fmt.format(values[k]) for k, _, fmt in _FEATURES]
        )
    return [
        Paragraph("Acoustic features", layout.styles["Heading2"]),
        Table([head, *body], style=layout.table_style, repeatRows=1),
    ]


def _explanation_figures(explain_dir: Path | None, layout: _Layout) -> list[Any]:
    from reportlab.platypus import PageBreak, Paragraph

    if explain_dir is None or not explain_dir.is_dir():
        return []
    story: list[Any] = [PageBreak(), Paragraph("Explanations", layout.styles["Heading2"])]
    for png in sorted(explain_dir.glob("segment-*.png")):
        kind = png.stem.split("-")[-1]
        caption = f"Segment {png.stem.split('-')[1]}: {_FIGURE_CAPTIONS.get(kind, kind)}"
        story += [Paragraph(caption, layout.small), _figure(png, *layout.figure_box)]
    return story
