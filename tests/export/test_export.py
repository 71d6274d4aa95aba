"""Writers render the same analysis consistently in every format."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from emotivoice.audio import AudioInfo
from emotivoice.errors import InvalidConfigError
from emotivoice.export import WRITERS, SubtitleOptions, get_writer, subtitle_cues
from emotivoice.results import (
    SCHEMA_VERSION,
    Analysis,
    LanguageShare,
    ModelSettings,
    Segment,
    Word,
    analysis_json_schema,
)


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
    # a cue runs from its first word's start to its last word's end
    assert get_writer("srt").render(analysis) == "1\n01:01:01,300 --> 01:01:03,400\nHello, world.\n"
    vtt = get_writer("vtt").render(analysis)
    assert vtt == "WEBVTT\n\n01:01:01.300 --> 01:01:03.400\nHello, world.\n"


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
    sizes = {"windows": (800, 500), "features": (800, 1400)}  # the report's order
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
    assert "Explanations" in text and "Where in the segment the model heard" in text
    page_height = float(reader.pages[0].mediabox.height)
    for (w, h), (pixels_wide, pixels_high) in zip(drawn, sizes.values(), strict=True):
        assert h / w == pytest.approx(pixels_high / pixels_wide, rel=1e-3)
        assert h <= page_height / 2  # a tall chart is shrunk to fit, not cut or stretched


def test_speakers_in_csv_srt_and_vtt() -> None:
    import dataclasses

    first = dataclasses.replace(SEGMENT, speaker="SPEAKER_1", channel=0)
    second = dataclasses.replace(
        SEGMENT,
        id=1,
        start=3664.0,
        end=3665.0,
        text="a < b",
        words=(
            Word(3664.1, 3664.3, " a", 0.9),
            Word(3664.4, 3664.5, " <", 0.9),
            Word(3664.6, 3664.9, " b", 0.9),
        ),
        speaker="SPEAKER_2",
        channel=1,
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


# Subtitles: lines of at most max_line_width characters, at most max_line_count lines and
# max_cue_duration seconds a cue, cut between words at their timestamps.

TEXT = (
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this "
    "software and associated documentation files, to deal in the software without restriction."
)


def _segment(text: str, start: float, seconds_per_word: float, speaker: str | None) -> Segment:
    """A segment whose words follow each other every ``seconds_per_word``."""
    tokens = text.split()
    words = tuple(
        Word(start + i * seconds_per_word, start + (i + 0.8) * seconds_per_word, f" {t}", 0.9)
        for i, t in enumerate(tokens)
    )
    return Segment(
        id=0,
        start=start,
        end=words[-1].end + 0.2,
        text=text,
        language="en",
        language_probability=0.99,
        avg_logprob=-0.2,
        no_speech_prob=0.01,
        words=words,
        features=None,
        speaker=speaker,
    )


def test_cues_keep_to_the_line_width_line_count_and_duration() -> None:
    segment = _segment(TEXT, 10.0, 0.35, "SPEAKER_2")
    cues = subtitle_cues([segment])  # the defaults: 42 characters, 2 lines, 7 s
    assert len(cues) > 2
    for cue in cues:
        assert 1 <= len(cue.lines) <= 2 and all(len(line) <= 42 for line in cue.lines)
        assert cue.end - cue.start <= 7.0 and cue.speaker == "SPEAKER_2"
    # every word once, in order; each cue starts at its first word and ends at its last one
    assert " ".join(line for c in cues for line in c.lines) == TEXT
    assert cues[0].start == segment.words[0].start and cues[-1].end == segment.words[-1].end
    assert all(a.end <= b.start for a, b in itertools.pairwise(cues))

    slow = subtitle_cues([_segment(TEXT, 0.0, 1.0, None)], SubtitleOptions(max_cue_duration=3.0))
    assert all(c.end - c.start <= 3.0 for c in slow)  # 1 s a word: three words a cue at most
    one_line = subtitle_cues([segment], SubtitleOptions(max_line_width=20, max_line_count=1))
    assert all(len(c.lines) == 1 and len(c.lines[0]) <= 20 for c in one_line)


def test_a_segment_does_not_end_on_an_orphan_cue() -> None:
    """Greedy filling would leave "publish." alone in the segment's last cue (as it did for
    multilingual.mp3); that cue takes the previous cue's last line instead."""
    text = (
        "Permission is hereby granted, free of charge, to any person obtaining a copy of "
        "restriction, including without limitation the rights to use, copy, modify, merge, "
        "publish."
    )
    cues = subtitle_cues([_segment(text, 0.0, 0.3, None)])
    assert " ".join(line for c in cues for line in c.lines) == text
    assert cues[-1].lines[-1].endswith("publish.") and len(cues[-1].lines) == 2
    assert all(len(c.lines[0]) >= 14 or len(c.lines) > 1 for c in cues)
    assert all(len(line) <= 42 for c in cues for line in c.lines)


def test_a_word_longer_than_a_line_gets_a_line_of_its_own() -> None:
    long_word = "Donaudampfschifffahrtsgesellschaftskapitänsmütze"
    cues = subtitle_cues([_segment(f"ein {long_word} hier", 0.0, 0.5, None)])
    assert [c.lines for c in cues] == [("ein", long_word), ("hier",)]


def test_a_segment_without_word_times_is_cut_by_characters() -> None:
    import dataclasses

    segment = dataclasses.replace(_segment(TEXT, 5.0, 0.3, None), words=())
    cues = subtitle_cues([segment])
    assert " ".join(line for c in cues for line in c.lines) == TEXT
    assert cues[0].start == 5.0 and cues[-1].end == pytest.approx(segment.end)
    assert all(len(line) <= 42 for c in cues for line in c.lines)


def test_srt_and_vtt_cues_carry_the_speaker_tag() -> None:
    analysis = _analysis((_segment(TEXT, 1.0, 0.35, "SPEAKER_1"),))
    srt = get_writer("srt").render(analysis)
    blocks = srt.strip().split("\n\n")
    assert len(blocks) == len(subtitle_cues(analysis.segments)) > 1
    for n, block in enumerate(blocks, start=1):
        index, times, *lines = block.split("\n")
        assert index == str(n) and re.fullmatch(r"[\d:,]{12} --> [\d:,]{12}", times)
        assert lines[0].startswith("[SPEAKER_1] ") and 1 <= len(lines) <= 2
    vtt = get_writer("vtt", SubtitleOptions(max_line_width=30)).render(analysis)
    cues = vtt.removeprefix("WEBVTT\n\n").strip().split("\n\n")
    assert all(cue.split("\n")[1].startswith("<v SPEAKER_1>") for cue in cues)
    assert all(len(line) <= 30 for cue in cues for line in cue.split("\n")[2:])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_line_width": 0}, "max_line_width must be at least 1"),
        ({"max_line_count": 0}, "max_line_count must be at least 1"),
        ({"max_cue_duration": 0.0}, "max_cue_duration must be positive"),
    ],
)
def test_invalid_subtitle_options(options: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        SubtitleOptions(**options)  # type: ignore[arg-type]


# The PDF report as a reader sees it: every page rendered to an image (pypdfium2).

_PAGE_FILL_MIN = 0.5  # every page but the last is inked at least this far down its text area


def _rendered_pages(pdf: Path) -> list[Any]:
    import pypdfium2

    document = pypdfium2.PdfDocument(str(pdf))
    return [document[i].render(scale=1).to_pil().convert("L") for i in range(len(document))]


def _fill(page: Any) -> float:
    """How far down the text area (A4, 2 cm margins, the footer excluded) the ink reaches."""
    import numpy as np

    pixels = np.asarray(page)
    cm = pixels.shape[0] / 29.7
    body = pixels[int(2 * cm) : int(29.7 * cm - 2.2 * cm)]
    inked = np.flatnonzero((body < 200).any(axis=1))
    return float(inked[-1] + 1) / len(body) if inked.size else 0.0


@pytest.mark.slow
def test_pdf_report_pages_keep_the_layout_rules(data_dir: Path, tmp_path: Path) -> None:
    """The report of an angry clip with explanations and of JFK's 11 s: a cover that names the
    file and says how sure the model was, numbered pages, no near-empty page but the last,
    every figure on the page of its caption, a glossary, the transcript with emotions."""
    pytest.importorskip("reportlab")
    from pypdf import PdfReader

    from emotivoice.cli import main
    from emotivoice.export.pdf import FIGURE_CAPTION_PREFIX

    angry = data_dir / "ravdess" / "Actor_11" / "03-01-05-02-01-01-11.flac"
    jfk = data_dir / "speech" / "jfk.flac"
    args = ["--format", "json,pdf", "--explain", "--explain-windows", "4", "-q", "--fast"]
    assert main(["analyze", str(angry), str(jfk), "-o", str(tmp_path), *args]) == 0
    for audio in (angry, jfk):
        pdf = tmp_path / f"{audio.stem}.pdf"
        reader = PdfReader(pdf)
        pages = _rendered_pages(pdf)
        assert len(pages) == len(reader.pages) >= 3
        texts = [page.extract_text() for page in reader.pages]
        cover = texts[0]
        assert audio.name in cover and "Key moments" in cover
        assert re.search(r"dominant emotion in \d+% of the speech time", cover.replace("\n", " "))
        assert "average probability" in cover
        for number, (text, image) in enumerate(zip(texts, pages, strict=True), start=1):
            assert f"page {number} of {len(pages)}" in text
            if number < len(pages):
                assert _fill(image) >= _PAGE_FILL_MIN, f"{pdf.name}: page {number} nearly empty"
            captions = re.findall(rf"{FIGURE_CAPTION_PREFIX} (\d+)\.", text)
            drawn = len(reader.pages[number - 1].images)
            assert len(captions) == drawn, f"{pdf.name} page {number}: {captions}, {drawn} images"
        numbers = [
            int(n) for t in texts for n in re.findall(rf"{FIGURE_CAPTION_PREFIX} (\d+)\.", t)
        ]
        assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 6
        whole = " ".join(texts)
        assert "Glossary" in whole and all(t in whole for t in ("Jitter", "Shimmer", "HNR (dB)"))
        assert "Uncertain" in whole and "Transcript" in whole and "mean probability" not in whole
        assert "share of speech time" in whole.lower() or "speech time" in whole


def test_analysis_json_of_schema_1_2_with_emotion_still_loads_and_exports() -> None:
    """Files written before sentence-level units (schema 1.2) load: no units, no windows, no
    dimensions, no granular levels; the file's emotion without confidence; every writer runs."""
    import dataclasses

    from emotivoice.results import EmotionScores, FileEmotion, GranularEmotion, TimelinePoint

    probabilities = {"anger": 0.7, "fear": 0.1, "happiness": 0.05, "neutral": 0.05}
    probabilities |= {"sadness": 0.05, "surprise": 0.05}
    emotion = EmotionScores(
        probabilities, "anger", 0.7, False, False, (GranularEmotion("rage", "anger", 0.7),), (), ()
    )
    segment = dataclasses.replace(SEGMENT, emotion=emotion)
    point = TimelinePoint(segment.start, segment.end, probabilities, "anger")
    analysis = dataclasses.replace(
        _analysis((segment,)),
        emotion=FileEmotion("whisper-head", probabilities, "anger", (point,)),
    )
    old = json.loads(analysis.to_json())
    old["schema_version"] = "1.2"
    for seg in old["segments"]:
        del seg["units"], seg["timeline"]
        for key in ("arousal", "valence", "intensity"):
            del seg["emotion"][key]
        del seg["emotion"]["primary"][0]["level"]
    for key in ("confidence", "uncertain", "arousal", "valence", "intensity"):
        del old["emotion"][key]
    for p in old["emotion"]["timeline"]:
        del p["arousal"], p["valence"]
    jsonschema.validate(old, analysis_json_schema())
    loaded = Analysis.from_dict(old)
    assert loaded.segments[0].units == () and loaded.segments[0].emotion == emotion
    assert loaded.emotion is not None and not loaded.emotion.uncertain
    for fmt in ("json", "csv", "srt", "vtt"):
        assert get_writer(fmt).render(loaded)
