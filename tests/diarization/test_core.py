"""Speaker turns: options, clustering on real voices, merging into segments, stereo channels."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from emotivoice.audio import SAMPLE_RATE, Audio, AudioInfo, load_audio
from emotivoice.diarization import (
    Diarization,
    DiarizationOptions,
    SpeakerTurn,
    channels_differ,
    diarize,
    find_speakers,
    merge_turns,
)
from emotivoice.errors import InvalidConfigError
from emotivoice.segmentation import SpeechSpan, VadOptions, speech_regions


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"speakers": 0}, "speakers must be at least 1"),
        ({"min_speakers": 3, "max_speakers": 2}, "at most max_speakers"),
        ({"channels": "left"}, "channels must be one of auto, mix, split"),
        ({"backend": "magic"}, "Unknown diarization backend"),
    ],
)
def test_bad_options_say_what_is_wrong(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        DiarizationOptions(**options)  # type: ignore[arg-type]


def _span(a: float, b: float) -> SpeechSpan:
    return SpeechSpan(round(a * SAMPLE_RATE), round(b * SAMPLE_RATE))


def test_merge_turns_joins_one_speaker_and_never_two() -> None:
    turns = (
        SpeakerTurn(_span(0, 2), "SPEAKER_1"),
        SpeakerTurn(_span(2.5, 4), "SPEAKER_1"),  # short pause: joined
        SpeakerTurn(_span(4.2, 6), "SPEAKER_2"),  # another speaker: a new segment
        SpeakerTurn(_span(9, 10), "SPEAKER_2"),  # long pause: a new segment
    )
    merged = merge_turns(turns, max_segment_s=15, max_gap_s=2.0)
    assert [(t.span.start, t.span.end, t.speaker) for t in merged] == [
        (0, 4, "SPEAKER_1"),
        (4.2, 6, "SPEAKER_2"),
        (9, 10, "SPEAKER_2"),
    ]


def test_speaker_at_is_the_nearest_turn() -> None:
    d = Diarization(
        (SpeakerTurn(_span(0, 2), "SPEAKER_1"), SpeakerTurn(_span(3, 5), "SPEAKER_2")),
        ("SPEAKER_1", "SPEAKER_2"),
        "ge2e",
    )
    assert [d.speaker_at(t) for t in (1.0, 2.2, 2.9, 4.0, 9.0)] == [
        "SPEAKER_1",
        "SPEAKER_1",
        "SPEAKER_2",
        "SPEAKER_2",
        "SPEAKER_2",
    ]


def test_two_speakers_found_in_a_built_conversation() -> None:
    """Speakers the threshold was not chosen on (the ``test`` half), one style each."""
    pytest.importorskip("pyannote.metrics")
    from emotivoice.evaluation.diarization import (
        build_conversations,
        diarize_conversation,
        score_conversation,
    )

    conversation = build_conversations("test", count=2, emotions_per_speaker=1, seed=3)[1]
    result, seconds = diarize_conversation(conversation, DiarizationOptions())
    score = score_conversation(conversation, result, seconds)
    assert score.found_speakers == 2
    assert score.der < 0.2, score
    # the exact count given: the same two speakers
    forced, _ = diarize_conversation(conversation, DiarizationOptions(speakers=2))
    assert forced.speakers == ("SPEAKER_1", "SPEAKER_2")


def test_long_recordings_cluster_groups_of_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above MAX_CLUSTERED_POINTS windows, averaged groups are clustered (memory stays bounded)
    and the speakers come out the same."""
    pytest.importorskip("pyannote.metrics")
    import emotivoice.diarization.core as core
    from emotivoice.evaluation.diarization import build_conversations, diarize_conversation

    conversation = build_conversations("test", count=2, emotions_per_speaker=1, seed=3)[1]
    full, _ = diarize_conversation(conversation, DiarizationOptions())
    monkeypatch.setattr(core, "MAX_CLUSTERED_POINTS", 30)
    grouped, _ = diarize_conversation(conversation, DiarizationOptions())
    assert grouped.speakers == full.speakers == ("SPEAKER_1", "SPEAKER_2")
    agree = sum(
        min(a.span.end, b.span.end) - max(a.span.start, b.span.start)
        for a in full.turns
        for b in grouped.turns
        if a.speaker == b.speaker and min(a.span.end, b.span.end) > max(a.span.start, b.span.start)
    )
    assert agree > 0.9 * sum(t.span.end - t.span.start for t in full.turns)


def test_one_voice_is_one_speaker(jfk_samples: np.ndarray) -> None:
    regions = speech_regions(jfk_samples)
    result = diarize(jfk_samples, regions)
    assert result.speakers == ("SPEAKER_1",)
    assert {t.speaker for t in result.turns} == {"SPEAKER_1"}
    assert sum(t.span.end - t.span.start for t in result.turns) == pytest.approx(
        sum(r.end - r.start for r in regions), abs=0.05
    )


def test_silence_has_no_speakers() -> None:
    assert diarize(np.zeros(SAMPLE_RATE * 3, dtype=np.float32), []).speakers == ()


def test_more_speakers_than_the_speech_allows(
    jfk_samples: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    """One second of speech holds one window: asking for four speakers gives one, with a
    warning, not an error."""
    samples = jfk_samples[:SAMPLE_RATE]
    with caplog.at_level(logging.WARNING, logger="emotivoice.diarization"):
        result = diarize(samples, [SpeechSpan(0, len(samples))], DiarizationOptions(speakers=4))
    assert result.speakers == ("SPEAKER_1",)
    assert "speech allows at most 1" in caplog.text


def test_stereo_call_is_split_by_channel(data_dir: object) -> None:
    from pathlib import Path

    path = Path(str(data_dir)) / "speech" / "stereo_diarization.wav"
    audio = load_audio(path, keep_channels=True)
    assert audio.channels is not None and audio.channels.shape == (2, len(audio.samples))
    np.testing.assert_allclose(audio.channels.mean(axis=0), audio.samples, atol=1e-6)
    assert channels_differ(audio.channels)
    result = find_speakers(audio, VadOptions(), DiarizationOptions())
    assert result.method == "channels" and result.speakers == ("SPEAKER_1", "SPEAKER_2")
    assert {(t.speaker, t.channel) for t in result.turns} == {("SPEAKER_1", 0), ("SPEAKER_2", 1)}


def test_identical_channels_are_not_split(jfk_path: object, jfk_samples: np.ndarray) -> None:
    """jfk.flac is stereo with the same sound on both channels: one voice, mixed."""
    audio = load_audio(str(jfk_path), keep_channels=True)
    assert audio.channels is not None and not channels_differ(audio.channels)
    assert find_speakers(audio, VadOptions(), DiarizationOptions()).method == "ge2e"


def test_split_on_a_mono_recording_says_so(jfk_samples: np.ndarray) -> None:
    audio = Audio(jfk_samples, AudioInfo("wav", "pcm_s16le", 16000, 1, 11.0, "call.wav"))
    with pytest.raises(InvalidConfigError, match=r"call\.wav: channels='split' needs a recording"):
        find_speakers(audio, VadOptions(), DiarizationOptions(channels="split"))


def test_pyannote_backend_names_what_to_install(jfk_samples: np.ndarray) -> None:
    """Offline users get a clear error, not a hub download attempt."""
    from emotivoice.errors import MissingExtraError, ModelNotFoundError

    audio = Audio(jfk_samples, AudioInfo("wav", "pcm_s16le", 16000, 1, 11.0, "x.wav"))
    with pytest.raises((MissingExtraError, ModelNotFoundError)) as caught:
        find_speakers(audio, VadOptions(), DiarizationOptions(backend="pyannote", channels="mix"))
    assert "pyannote" in str(caught.value)
