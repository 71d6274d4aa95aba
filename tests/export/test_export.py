"""Writers render the same analysis consistently in every format."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from emotivoice.audio import AudioInfo
from emotivoice.errors import InvalidConfigError
from emotivoice.export import WRITERS, get_writer
from emotivoice.results import SCHEMA_VERSION, Analysis, LanguageShare, ModelSettings, Segment, Word


def _analysis(segments: tuple[Segment, ...]) -> Analysis:
    return Analysis(
        schema_version=SCHEMA_VERSION,
        emotivoice_version="test",
        created_at="2026-01-01T00:00:00+00:00",
        source=AudioInfo("wav", "pcm_s16le", 16000, 1, 3723.5, "x.wav"),
        duration=3723.5,
        language="en" if segments else None,
        languages=(LanguageShare("en", 2.0, 1.0),) if segments else (),
        segments=segments,
        model=ModelSettings("base", "cpu", "int8", 5, False),
        processing_time_s=1.0,
    )


SEGMENT = Segment(
    id=0,
    start=3661.25,
    end=3663.5,
    text="Hello, world.",
    language="en",
    language_probability=0.9,
    avg_logprob=-0.2,
    no_speech_prob=0.01,
    words=(Word(3661.3, 3661.8, " Hello,", 0.9), Word(3662.0, 3663.4, " world.", 0.8)),
    features=None,
)


def test_srt_and_vtt_timestamps() -> None:
    analysis = _analysis((SEGMENT,))
    assert get_writer("srt").render(analysis) == "1\n01:01:01,250 --> 01:01:03,500\nHello, world.\n"
    vtt = get_writer("vtt").render(analysis)
    assert vtt == "WEBVTT\n\n01:01:01.250 --> 01:01:03.500\nHello, world.\n"


def test_csv_and_json() -> None:
    analysis = _analysis((SEGMENT,))
    rows = list(csv.DictReader(io.StringIO(get_writer("csv").render(analysis))))
    assert rows[0]["text"] == "Hello, world." and rows[0]["start"] == "3661.25"
    data = json.loads(get_writer("json").render(analysis))
    assert data["segments"][0]["words"][1]["text"] == " world."


def test_empty_analysis_renders_headers_only() -> None:
    analysis = _analysis(())
    text = get_writer("csv").render(analysis)
    assert text.count("\n") == 1 and "mfcc_means_13" in text
    assert get_writer("srt").render(analysis) == ""
    assert get_writer("vtt").render(analysis) == "WEBVTT\n\n"


def test_unknown_format() -> None:
    assert set(WRITERS) == {"json", "csv", "srt", "vtt"}
    with pytest.raises(InvalidConfigError, match="available formats"):
        get_writer("docx")


def test_pdf_figures_keep_their_aspect_ratio(tmp_path: Path) -> None:
    """Each explanation figure is drawn at its own shape, not squeezed to one ratio."""
    pytest.importorskip("reportlab")
    import re

    from PIL import Image
    from pypdf import PdfReader

    from emotivoice.export.pdf import write_pdf

    figures = tmp_path / "explain"
    figures.mkdir()
    sizes = {"features": (800, 1400), "windows": (800, 500)}  # sorted: features first
    for kind, size in sizes.items():
        Image.new("RGB", size, "white").save(figures / f"segment-0-{kind}.png")
    pdf = write_pdf(_analysis((SEGMENT,)), tmp_path / "report.pdf", figures)
    reader = PdfReader(pdf)
    content = " ".join(page.get_contents().get_data().decode("latin-1") for page in reader.pages)
    # ReportLab draws an image as "w 0 0 h 0 0 cm /FormXob.<id> Do" (points).
    drawn = [
        (float(w), float(h))
        for w, h in re.findall(r"([\d.]+) 0 0 ([\d.]+) 0 0 cm\s*/FormXob\.\w+ Do", content)
    ]
    assert len(drawn) == len(sizes)
    text = " ".join(page.extract_text() for page in reader.pages)
    assert "Explanations" in text and "Window attributions" in text
    page_height = float(reader.pages[0].mediabox.height)
    for (w, h), (pixels_wide, pixels_high) in zip(drawn, sizes.values(), strict=True):
        assert h / w == pytest.approx(pixels_high / pixels_wide, rel=1e-3)
        assert h <= page_height / 2  # a tall chart is shrunk to fit, not cut or stretched


def test_speakers_in_csv_srt_and_vtt() -> None:
    import dataclasses

    first = dataclasses.replace(SEGMENT, speaker="SPEAKER_1", channel=0)
    second = dataclasses.replace(
        SEGMENT, id=1, start=3664.0, end=3665.0, text="a < b", speaker="SPEAKER_2", channel=1
    )
    analysis = _analysis((first, second))
    rows = list(csv.DictReader(io.StringIO(get_writer("csv").render(analysis))))
    assert [(r["speaker"], r["channel"]) for r in rows] == [("SPEAKER_1", "1"), ("SPEAKER_2", "2")]
    srt = get_writer("srt").render(analysis)
    assert "\n[SPEAKER_1] Hello, world.\n" in srt and "\n[SPEAKER_2] a < b\n" in srt
    vtt = get_writer("vtt").render(analysis)
    assert "\n<v SPEAKER_1>Hello, world.\n" in vtt
    assert "\n<v SPEAKER_2>a &lt; b\n" in vtt  # WebVTT reserves < and &


def test_csv_neutralises_cells_a_spreadsheet_would_run() -> None:
    """Text such as ``=HYPERLINK(...)`` is written as ``'=HYPERLINK(...)``; numbers stay numbers."""
    import dataclasses

    evil = dataclasses.replace(SEGMENT, text='=HYPERLINK("http://x.example","click")')
    at = dataclasses.replace(SEGMENT, id=1, text="@SUM(A1:A2)", avg_logprob=-0.5)
    rows = list(csv.DictReader(io.StringIO(get_writer("csv").render(_analysis((evil, at))))))
    assert rows[0]["text"] == '\'=HYPERLINK("http://x.example","click")'
    assert rows[1]["text"] == "'@SUM(A1:A2)"
    assert rows[1]["avg_logprob"] == "-0.5"  # a number, not text


def test_analysis_json_of_schema_1_0_still_loads() -> None:
    """Files written before speakers existed load with no speakers."""
    from emotivoice.results import Analysis

    old = json.loads(_analysis((SEGMENT,)).to_json())
    del old["speakers"], old["model"]["diarization"]
    for seg in old["segments"]:
        del seg["speaker"], seg["channel"]
        for word in seg["words"]:
            del word["speaker"]
    loaded = Analysis.from_dict(old)
    assert loaded.speakers == () and loaded.segments[0].speaker is None
