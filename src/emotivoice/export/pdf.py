"""A PDF report of an analysis (ReportLab) that can be handed to someone who was not there: a
cover summary in plain words (file, length, languages, speakers, the dominant emotion with how
sure the model was, three key moments), charts, the transcript with an emotion per segment,
features, the explanation figures when there are any, and a glossary. Pages are numbered;
every figure is kept on one page with its caption.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from emotivoice.extras import import_extra
from emotivoice.results import FEATURE_LABELS, Analysis, EmotionScores, EmotionUnit, Segment

__all__ = ["FIGURE_CAPTION_PREFIX", "write_pdf"]

logger = logging.getLogger(__name__)

FIGURE_CAPTION_PREFIX = "Figure"  # every caption starts "Figure N." (the layout tests find them)

_FEATURES = (  # the report's columns: (name, number format); labels from FEATURE_LABELS
    ("f0_mean_hz", "{:.0f}"),
    ("f0_range_semitones", "{:.1f}"),
    ("energy_db_mean", "{:.1f}"),
    ("speaking_rate_wps", "{:.2f}"),
    ("jitter_local", "{:.3f}"),
    ("shimmer_local", "{:.3f}"),
    ("hnr_db", "{:.1f}"),
)
# The order a reader meets the explanation figures in: where, what-if, how it sounded, then
# the checks and the model internals.
_FIGURE_CAPTIONS = {
    "windows": "Where in the segment the model heard the emotion: each window's Shapley value "
    "over the waveform (green supports the emotion, red opposes it), the words beneath",
    "counterfactuals": "How the emotion probabilities move when pitch, energy, tempo or "
    "spectral tilt is changed",
    "features": "Acoustic features beside typical ranges",
    "deletion": "Deletion curve: how fast the prediction falls as the most important windows "
    "are removed, against random orders",
    "attention": "Advanced: encoder self-attention (last layer, mean over heads)",
    "rollout": "Advanced: attention rollout over all encoder layers",
    "saliency": "Advanced: Integrated Gradients saliency on the log-mel input",
}
_GLOSSARY = (
    (
        "Dominant emotion",
        "the emotion with the highest probability in a segment or unit; for the "
        "recording, the one with the highest probability averaged over its speech.",
    ),
    (
        "Unit",
        "a sentence, or a stretch between pauses, of a segment (1 to 8 s by default): "
        "emotion is scored on each unit's own audio, so a segment can hold several.",
    ),
    (
        "Arousal, valence, intensity",
        "how activated (calm to excited), how positive and how strongly expressed the speech "
        "sounds, each from 0 to 100 %; arousal carries over best to voices and languages the "
        "model has not heard.",
    ),
    (
        "Confidence",
        "the model's probability for the emotion it names, from 0 to 100 %. With six "
        "emotions, 17 % is a guess.",
    ),
    (
        "Uncertain",
        "the top probability is low (below {uncertain:.0%}) or the stretch "
        "is shorter than {short:g} s: read its label as a hint, not a finding.",
    ),
    ("Pitch (F0)", "how high the voice is, in hertz; its range in semitones (12 = an octave)."),
    (
        "Energy",
        "loudness of the voiced speech in decibels; 6 dB more is about twice the amplitude.",
    ),
    ("Words/s", "speaking rate: transcribed words per second of speech."),
    (
        "Jitter",
        "cycle-to-cycle variation of the pitch period (0.01 = 1 %); higher in rough, "
        "tense or shaky voices.",
    ),
    (
        "Shimmer",
        "cycle-to-cycle variation of loudness (0.05 = 5 %); higher in breathy or rough voices.",
    ),
    (
        "HNR (dB)",
        "harmonics-to-noise ratio: how much of the voice is tone rather than noise; "
        "clear voices score about 15-25 dB, hoarse or breathy ones less.",
    ),
    (
        "Shapley value",
        "how much one stretch of the segment moves the emotion's probability "
        "when it is heard rather than masked, averaged over all orders.",
    ),
    (
        "Counterfactual",
        "the same segment with one property changed (e.g. pitch 2 semitones "
        "lower), scored again: what the model's answer depends on.",
    ),
)


def _require_reportlab() -> Any:
    return import_extra("reportlab", "pdf", "PDF reports")


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:04.1f}"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _emotion_cell(segment: Segment) -> str:
    e = segment.emotion
    if e is None:
        return "-"
    if len(segment.units) > 1:  # one line per unit
        return "<br/>".join(
            f"<font size=7>{_clock(u.start)}</font> {_emotion_text(u.emotion)}"
            for u in segment.units
        )
    extra = [g.name for g in e.primary] + [c.name for c in e.complex]
    return _emotion_text(e) + (
        f"<br/><font size=7>{escape(', '.join(extra))}</font>" if extra else ""
    )


def _emotion_text(e: EmotionScores) -> str:
    return f"{e.dominant} {e.confidence:.0%}" + (" (uncertain)" if e.uncertain else "")


def _emotion_short(e: EmotionScores) -> str:
    return f"{e.dominant} {e.confidence:.0%}" + (", uncertain" if e.uncertain else "")


def _units(analysis: Analysis) -> list[EmotionUnit]:
    """The scored units of the analysis (a segment without units, from a file before schema
    1.3, counts as one)."""
    return [unit for s in analysis.segments for unit in s.emotion_units]


def time_shares(analysis: Analysis) -> dict[str, float]:
    """Share of speech time in which each emotion was a unit's dominant one."""
    units = _units(analysis)
    total = sum(u.duration for u in units)
    shares: dict[str, float] = {}
    for u in units:
        if total > 0:
            shares[u.emotion.dominant] = shares.get(u.emotion.dominant, 0.0) + u.duration / total
    return shares


@dataclass(frozen=True)
class _Layout:
    """Styles and sizes shared by the report's parts."""

    styles: Any
    small: Any
    caption: Any
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
    small = styles["BodyText"].clone("small", fontSize=8, leading=10)
    return _Layout(
        styles=styles,
        small=small,
        caption=small.clone("caption", textColor=colors.HexColor("#444444"), spaceAfter=8),
        width=width,
        # Figures: 80 % of the text width, at most 40 % of a page tall: two fit on a page.
        figure_box=(width * 0.8, (A4[1] - 4 * cm) * 0.4),
        table_style=TableStyle(
            [
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ]
        ),
    )


class _Figures:
    """Numbers the figures and keeps each one on a page with its caption."""

    def __init__(self, layout: _Layout) -> None:
        self.layout, self.count = layout, 0

    def __call__(self, png: Path, caption: str, headings: Sequence[Any] = ()) -> Any:
        from reportlab.lib.utils import ImageReader
        from reportlab.platypus import Image, KeepTogether, Paragraph

        self.count += 1
        pixels_wide, pixels_high = ImageReader(str(png)).getSize()
        box_wide, box_high = self.layout.figure_box
        scale = min(box_wide / pixels_wide, box_high / pixels_high)
        image = Image(str(png), width=pixels_wide * scale, height=pixels_high * scale)
        label = f"<b>{FIGURE_CAPTION_PREFIX} {self.count}.</b> {escape(caption)}"
        return KeepTogether([*headings, image, Paragraph(label, self.layout.caption)])


def write_pdf(analysis: Analysis, path: Path, explain_dir: Path | None = None) -> Path:
    """Write the report of ``analysis`` to ``path``; explanation PNGs from ``explain_dir``."""
    _require_reportlab()
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import cm
    from reportlab.platypus import SimpleDocTemplate

    layout = _layout()
    figures = _Figures(layout)
    with tempfile.TemporaryDirectory(prefix="emotivoice-pdf-") as tmp:
        story = _cover(analysis, layout)
        story += _emotion_charts(analysis, layout, figures, Path(tmp))
        story += _speakers(analysis, layout, figures, Path(tmp))
        story += _transcript(analysis, layout)
        story += _feature_table(analysis, layout)
        story += _explanation_figures(explain_dir, layout, figures)
        story += _glossary(analysis, layout)
        path.parent.mkdir(parents=True, exist_ok=True)
        title = f"EmotiVoice report: {analysis.source.name}"
        doc = SimpleDocTemplate(
            str(path), pagesize=A4, title=title, author="EmotiVoice", bottomMargin=2.2 * cm
        )
        footer = _Footer(analysis.source.name, A4[0])
        doc.build(story, onFirstPage=footer, onLaterPages=footer, canvasmaker=_numbered_canvas())
    logger.debug("Wrote PDF report %s", path)
    return path


class _Footer:
    """The file name and the page number at the foot of every page."""

    def __init__(self, name: str, page_width: float) -> None:
        self.name, self.page_width = name, page_width

    def __call__(self, canvas: Any, doc: Any) -> None:
        from reportlab.lib.units import cm

        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.setFillGray(0.4)
        canvas.drawString(2 * cm, 1.2 * cm, f"EmotiVoice report · {self.name}")
        canvas.restoreState()


def _numbered_canvas() -> type:
    """A canvas that writes "page N of M" once the number of pages is known."""
    from reportlab.lib.units import cm
    from reportlab.pdfgen.canvas import Canvas

    class NumberedCanvas(Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # ReportLab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            for number, state in enumerate(self._pages, start=1):
                self.__dict__.update(state)
                self.saveState()
                self.setFont("Helvetica", 8)
                self.setFillGray(0.4)
                width = self._pagesize[0]
                self.drawRightString(
                    width - 2 * cm, 1.2 * cm, f"page {number} of {len(self._pages)}"
                )
                self.restoreState()
                super().showPage()
            super().save()

    return NumberedCanvas


def _languages(analysis: Analysis) -> str:
    return ", ".join(f"{s.language} {s.share:.0%}" for s in analysis.languages) or "none"


def _summary_sentences(analysis: Analysis) -> str:
    """The cover's plain-language paragraph, built from the analysis' own figures."""
    name = escape(analysis.source.name)
    speech = analysis.speech_duration
    if not analysis.segments:
        return f"<b>{name}</b> lasts {analysis.duration:.1f} s; no speech was found in it."
    langs = analysis.languages
    spoken = (
        f"in {langs[0].language}"
        if len(langs) == 1
        else f"in {len(langs)} languages ({_languages(analysis)})"
    )
    who = (
        f"{_plural(len(analysis.speakers), 'speaker')}"
        if analysis.speakers
        else "voices not told apart"
    )
    text = (
        f"<b>{name}</b> lasts {analysis.duration:.1f} s, {speech:.1f} s of it speech {spoken}; "
        f"{who}; {_plural(len(analysis.segments), 'segment')}."
    )
    if analysis.emotion is None:
        return text + " Emotions were not analysed."
    emotion = analysis.emotion
    dominant = emotion.dominant
    share = time_shares(analysis).get(dominant, 0.0)
    probability = emotion.distribution[dominant]
    units = _units(analysis)
    uncertain = sum(1 for u in units if u.emotion.uncertain)
    if emotion.uncertain:
        text += (
            f" <b>No emotion stands out</b> (overall <i>uncertain</i>): the most probable is "
            f"{dominant}, with an average probability of only {probability:.0%}; it was the "
            f"dominant emotion in {share:.0%} of the speech time."
        )
    else:
        text += (
            f" The model heard mostly <b>{dominant}</b>: it was the dominant emotion in "
            f"{share:.0%} of the speech time, with an average probability of {probability:.0%}."
        )
    if emotion.arousal is not None:
        text += f" Arousal averaged {emotion.arousal:.0%}, valence {emotion.valence:.0%}."
    if uncertain:
        text += (
            f" {uncertain} of {_plural(len(units), 'sentence-level unit')} are marked "
            "<i>uncertain</i> (the model's top probability was low or the unit very short): "
            "treat their labels as hints."
        )
    return text


def _key_moments(analysis: Analysis, count: int = 3) -> list[tuple[Segment, EmotionUnit]]:
    """The units the model was surest about (certain ones first), with their segments, in time
    order."""
    scored = [(s, u) for s in analysis.segments for u in s.emotion_units if u.text.strip()]
    scored.sort(key=lambda su: (su[1].emotion.uncertain, -su[1].emotion.confidence))
    return sorted(scored[:count], key=lambda su: su[1].start)


def _quote(text: str, limit: int = 90) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + " …"


def _cover(analysis: Analysis, layout: _Layout) -> list[Any]:
    from reportlab.lib.units import cm
    from reportlab.platypus import Paragraph, Spacer, Table

    styles = layout.styles
    story: list[Any] = [
        Paragraph("Emotion report", styles["Title"]),
        Paragraph(escape(analysis.source.name), styles["Heading2"]),
        Paragraph(_summary_sentences(analysis), styles["BodyText"]),
        Spacer(1, 8),
    ]
    src, emotion = analysis.source, analysis.emotion
    dominant = "-"
    if emotion is not None:
        top = emotion.dominant
        dominant = (
            f"{top}: {time_shares(analysis).get(top, 0.0):.0%} of speech time, average "
            f"probability {emotion.distribution[top]:.0%}"
        )
        if emotion.uncertain:
            dominant = f"uncertain: no emotion stands out (most probable {dominant})"
    facts = [
        ["File", src.name],
        ["Recording", f"{src.format} / {src.codec}, {src.sample_rate} Hz, {src.channels} ch"],
        ["Duration", f"{analysis.duration:.1f} s ({analysis.speech_duration:.1f} s of speech)"],
        ["Languages", _languages(analysis)],
        ["Speakers", _speaker_line(analysis)],
        ["Dominant emotion", dominant],
        ["Segments", str(len(analysis.segments))],
        [
            "Model",
            f"Whisper {analysis.model.whisper_model}, emotion {analysis.model.emotion_model}",
        ],
        ["Created", f"{analysis.created_at} (EmotiVoice {analysis.emotivoice_version})"],
    ]
    rows = [[k, Paragraph(escape(v), layout.small)] for k, v in facts]
    story.append(Table(rows, colWidths=[4 * cm, layout.width - 4 * cm], style=layout.table_style))
    moments = _key_moments(analysis)
    if moments:
        story += [Spacer(1, 6), Paragraph("Key moments", styles["Heading3"])]
        for s, u in moments:
            who = f"{escape(s.speaker)}, " if s.speaker else ""
            story.append(
                Paragraph(
                    f"• <b>{_clock(u.start)}–{_clock(u.end)}</b> ({who}"
                    f"{_emotion_short(u.emotion)}): “{escape(_quote(u.text))}”",
                    styles["BodyText"],
                )
            )
    return [*story, Spacer(1, 8)]


def _emotion_charts(analysis: Analysis, layout: _Layout, figures: _Figures, tmp: Path) -> list[Any]:
    from reportlab.platypus import Paragraph

    if analysis.emotion is None or not analysis.segments:
        return []
    from emotivoice.explain import plots

    shares = plots.plot_time_shares(time_shares(analysis), tmp / "shares.png")
    timeline = plots.plot_timeline(
        [asdict(p) for p in analysis.emotion.timeline], tmp / "timeline.png", analysis.duration
    )
    heading = Paragraph("Emotions", layout.styles["Heading2"])
    return [
        figures(
            shares,
            "Share of the speech time in which each emotion was the segment's dominant one "
            "(segments weighted by their length).",
            [heading],
        ),
        figures(
            timeline,
            "Each emotion's probability over the recording, smoothed across neighbouring "
            "segments; flat over a segment, joined across pauses.",
        ),
    ]


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


def _speakers(analysis: Analysis, layout: _Layout, figures: _Figures, tmp: Path) -> list[Any]:
    """Per-speaker summary: a table, then the speaker lanes."""
    from reportlab.platypus import Paragraph, Table

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
        Paragraph("Speakers", layout.styles["Heading2"]),
        Table(rows, style=layout.table_style, repeatRows=1),
        figures(lanes, "Who spoke when; each segment coloured by its dominant emotion."),
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
        Table(rows, colWidths=widths, style=layout.table_style, repeatRows=1),
    ]


def _feature_table(analysis: Analysis, layout: _Layout) -> list[Any]:
    from reportlab.platypus import Paragraph, Table

    featured = [s for s in analysis.segments if s.features is not None]
    if not featured:
        return []
    head = ["segment"] + [FEATURE_LABELS[name] for name, _ in _FEATURES]
    body = []
    for s in featured:
        values = s.features.to_dict() if s.features else {}
        body.append(
            [_clock(s.start)]
            + ["-" if values.get(k) is None else fmt.format(values[k]) for k, fmt in _FEATURES]
        )
    return [
        Paragraph("Acoustic features", layout.styles["Heading2"]),
        Paragraph(
            "How each segment was said; the glossary at the end explains each measure.",
            layout.small,
        ),
        Table([head, *body], style=layout.table_style, repeatRows=1),
    ]


def _figure_order(png: Path) -> tuple[int, int, str]:
    match = re.fullmatch(r"segment-(\d+)-(\w+)", png.stem)
    segment, kind = (int(match[1]), match[2]) if match else (10**9, png.stem)
    kinds = list(_FIGURE_CAPTIONS)
    return segment, kinds.index(kind) if kind in kinds else len(kinds), kind


def _explanation_figures(explain_dir: Path | None, layout: _Layout, figures: _Figures) -> list[Any]:
    from reportlab.platypus import Paragraph

    if explain_dir is None or not explain_dir.is_dir():
        return []
    pngs = sorted(explain_dir.glob("segment-*-*.png"), key=_figure_order)
    if not pngs:
        return []
    story: list[Any] = []
    headings = [Paragraph("Explanations", layout.styles["Heading2"])]  # kept with the first
    current = -1
    for png in pngs:
        segment, _, kind = _figure_order(png)
        if segment != current:
            current = segment
            headings.append(
                Paragraph(_segment_heading(explain_dir, segment), layout.styles["Heading3"])
            )
        caption = f"Segment {segment}: {_FIGURE_CAPTIONS.get(kind, kind)}."
        story.append(figures(png, caption, headings))
        headings = []
    return story


def _segment_heading(explain_dir: Path, segment: int) -> str:
    """``Segment 2 (0:00.9–0:03.3): anger``, with the explanation's one-sentence summary."""
    saved = explain_dir / f"segment-{segment}.json"
    try:
        data = json.loads(saved.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"Segment {segment}"
    head = f"Segment {segment} ({_clock(data['start'])}–{_clock(data['end'])}): {data['predicted']}"
    summary = data.get("summary")
    return head + (f"<br/><font size=9>{escape(summary)}</font>" if summary else "")


def _glossary(analysis: Analysis, layout: _Layout) -> list[Any]:
    from reportlab.platypus import Paragraph

    from emotivoice.emotion.backends import EmotionOptions

    defaults = EmotionOptions()
    story: list[Any] = [Paragraph("Glossary", layout.styles["Heading2"])]
    for term, meaning in _GLOSSARY:
        text = meaning.format(uncertain=defaults.uncertain_below, short=defaults.short_segment_s)
        story.append(Paragraph(f"<b>{term}</b>: {escape(text)}", layout.small))
    return story
