"""The natural-speech benchmark's pieces: its clips, TTS voices and the share it reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from emotivoice.evaluation.natural_speech import (
    UnitResult,
    acted_neutral,
    format_summary,
    licence_sentences,
    read_speech,
    summarise,
    synthesise,
    tts_voices,
)


def _unit(group: str, dominant: str, confidence: float, arousal: float | None = None) -> UnitResult:
    probabilities = dict.fromkeys(
        ("anger", "fear", "happiness", "neutral", "sadness", "surprise"), 0.0
    )
    probabilities[dominant] = confidence
    dims = None if arousal is None else {"arousal": arousal, "valence": 0.5, "intensity": 0.2}
    return UnitResult("c", group, 0.0, 2.0, dominant, confidence, probabilities, dims)


def test_share_counts_only_confident_non_neutral_units() -> None:
    units = [
        _unit("read", "neutral", 0.9, 0.2),
        _unit("read", "anger", 0.45, 0.6),  # not confident
        _unit("synthetic", "anger", 0.5, 0.7),  # confident: counted
        _unit("synthetic", "neutral", 0.3, 0.3),
        _unit("acted_neutral", "sadness", 0.8),
    ]
    summary = summarise(units)
    assert summary["read"]["confident_non_neutral"] == 0.0
    assert summary["synthetic"]["confident_non_neutral"] == 0.5
    assert summary["calm"]["units"] == 4 and summary["calm"]["confident_non_neutral"] == 0.25
    assert summary["calm"]["high_arousal_share"] == 0.5
    assert "mean_arousal" not in summary["acted_neutral"]
    table = format_summary(summary)
    assert "25.0%" in table and table.splitlines()[0].startswith("group")


def test_clips_of_the_shared_data(data_dir: Path) -> None:
    read = read_speech(data_dir)
    assert len(read) == 16 and {c.group for c in read} == {"read"}
    acted = acted_neutral(data_dir, per_corpus=5)
    assert len(acted) == 10 and acted == acted_neutral(data_dir, per_corpus=5)  # seeded
    assert all("-01-01-" in c.path.name for c in acted if c.name.startswith("ravdess"))


def test_licence_sentences_are_prose() -> None:
    licence = Path("/usr/share/common-licenses/Apache-2.0")
    if not licence.exists():
        pytest.skip("no Debian licence texts here")
    sentences = licence_sentences(licence, 5)
    assert len(sentences) == 5 and all(8 <= len(s.split()) <= 30 for s in sentences)


def test_an_offline_voice_reads_a_sentence(tmp_path: Path) -> None:
    from emotivoice.audio import load_audio

    voices = [v for v in tts_voices() if not v[0].startswith("piper")][:1]
    if not voices:
        pytest.skip("no espeak-ng or flite installed")
    (clip,) = synthesise(
        [("one", "The quick brown fox jumps over the lazy dog.")], voices, tmp_path
    )
    audio = load_audio(clip.path)
    assert clip.group == "synthetic" and 1.0 < audio.duration < 6.0
