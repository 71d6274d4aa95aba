"""analyze(): real speech in, transcript, languages, words, features and encoder states out."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

import emotivoice
from emotivoice.audio import SAMPLE_RATE
from emotivoice.errors import InvalidConfigError, InvalidResultError
from emotivoice.evaluation.datasets import reference_utterances
from emotivoice.metrics import normalize_text, word_error_rate
from emotivoice.pipeline import AnalyzeOptions, Analyzer
from emotivoice.results import Analysis, analysis_json_schema, load_analysis

MAX_REFERENCE_WER = 0.06


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


@pytest.fixture(scope="module")
def jfk_analysis(analyzer: Analyzer, jfk_path: Path) -> Analysis:
    return analyzer.analyze(jfk_path)


def test_jfk_transcript_words_and_features(jfk_analysis: Analysis) -> None:
    assert "fellow americans" in normalize_text(jfk_analysis.text)
    assert jfk_analysis.language == "en"
    assert jfk_analysis.text == " ".join(s.text for s in jfk_analysis.segments)
    words = [w for s in jfk_analysis.segments for w in s.words]
    assert len(words) >= 20
    assert all(0 <= w.start <= w.end <= jfk_analysis.duration + 0.01 for w in words)
    assert all(a.start <= b.start for a, b in itertools.pairwise(words))
    assert all(0.0 <= w.probability <= 1.0 for w in words)
    country = [w for w in words if "country" in w.text.lower()]
    assert len(country) == 2 and country[-1].start > 9.0  # "...for your country." ends the clip
    seg = jfk_analysis.segments[0]
    assert seg.features is not None and seg.features.f0_mean_hz is not None
    assert 70 < seg.features.f0_mean_hz < 300
    assert seg.avg_logprob < 0 and 0 <= seg.no_speech_prob <= 1


def test_json_validates_against_schema(jfk_analysis: Analysis) -> None:
    import jsonschema

    data = json.loads(jfk_analysis.to_json())
    jsonschema.validate(data, analysis_json_schema())
    data["segments"][0]["words"][0]["probability"] = 2.0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, analysis_json_schema())


def test_saved_analysis_loads_back_equal(jfk_analysis: Analysis, tmp_path: Path) -> None:
    path = tmp_path / "analysis.json"
    path.write_text(jfk_analysis.to_json())
    loaded = load_analysis(path)
    assert loaded == jfk_analysis  # every field, emotion and features included
    assert loaded.segments[0].emotion is not None and loaded.emotion is not None
    data = json.loads(jfk_analysis.to_json())
    data["explanations"] = {"segments": []}  # keys a later stage adds are ignored
    del data["emotion"]  # optional keys may be missing
    assert Analysis.from_dict(data).emotion is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("segments"), "analysis.segments is missing"),
        (lambda d: d["segments"][0].update(start="zero"), "analysis.segments[0].start"),
        (lambda d: d["segments"][0]["words"][0].pop("end"), "segments[0].words[0].end"),
        (lambda d: d["languages"].append(3), "analysis.languages[1] should be an object"),
        (lambda d: d["segments"][0]["emotion"].update(complex={}), "emotion.complex"),
    ],
)
def test_malformed_saved_analysis_names_the_field(
    jfk_analysis: Analysis, change: object, message: str
) -> None:
    data = json.loads(jfk_analysis.to_json())
    change(data)  # type: ignore[operator]
    with pytest.raises(InvalidResultError, match=message.replace("[", r"\[")):
        Analysis.from_dict(data)


def test_unreadable_saved_analysis(tmp_path: Path) -> None:
    for name, content in (("not-json.json", "{oops"), ("list.json", "[1, 2]")):
        (tmp_path / name).write_text(content)
        with pytest.raises(InvalidResultError, match="analysis"):
            load_analysis(tmp_path / name)
    with pytest.raises(InvalidResultError, match="Cannot read"):
        load_analysis(tmp_path / "missing.json")


def test_encoder_states_are_kept_per_segment(analyzer: Analyzer, jfk_path: Path) -> None:
    audio = analyzer.load(jfk_path)
    results = list(analyzer.iter_segments(audio))
    assert results
    for r in results:
        states = r.encoded.states
        expected_positions = (r.span.end_sample - r.span.start_sample) // 320  # 20 ms/position
        assert states.shape[1] == 512  # Whisper base width
        assert abs(states.shape[0] - expected_positions) <= 1
        assert np.isfinite(states).all() and states.std() > 0.1


def test_multilingual_file_english_then_german(analyzer: Analyzer, data_dir: Path) -> None:
    analysis = analyzer.analyze(data_dir / "speech" / "multilingual.mp3")
    langs = [s.language for s in analysis.segments if s.text]
    assert langs[0] == "en" and langs[-1] == "de"
    switch = langs.index("de")
    assert set(langs[:switch]) == {"en"} and set(langs[switch:]) == {"de"}
    assert {share.language for share in analysis.languages} == {"en", "de"}
    assert "software" in analysis.segments[0].text.lower()


def test_silence_gives_no_segments(analyzer: Analyzer) -> None:
    analysis = analyzer.analyze(
        np.zeros(SAMPLE_RATE * 3, dtype=np.float32), sample_rate=SAMPLE_RATE
    )
    assert analysis.segments == () and analysis.language is None and analysis.text == ""
    assert analysis.duration == pytest.approx(3.0)


def test_forced_language_and_fast_mode(jfk_path: Path) -> None:
    analysis = emotivoice.analyze(jfk_path, language="en", beam_size=1, features=False)
    assert analysis.model.language_forced and analysis.model.beam_size == 1
    assert all(s.language_probability == 1.0 and s.features is None for s in analysis.segments)
    assert "fellow americans" in normalize_text(analysis.text)


def test_invalid_options_are_rejected() -> None:
    with pytest.raises(InvalidConfigError, match=r"valid options = .*beam_size"):
        AnalyzeOptions.from_kwargs(beam=3)
    with pytest.raises(InvalidConfigError, match="beam_size"):
        AnalyzeOptions.from_kwargs(beam_size=0)
    with pytest.raises(InvalidConfigError, match="Unknown language"):
        Analyzer(AnalyzeOptions.from_kwargs(language="klingon"))
    with pytest.raises(InvalidConfigError, match="English-only"):
        Analyzer(AnalyzeOptions.from_kwargs(model="tiny.en", language="de"))


def test_english_only_model_runs(jfk_path: Path) -> None:
    analysis = emotivoice.analyze(
        jfk_path, model="tiny.en", beam_size=1, features=False, emotion=False
    )
    assert analysis.language == "en"
    assert "fellow americans" in normalize_text(analysis.text)
    # the default emotion head runs its own Whisper-base layers on the log-mel: any model works
    with_emotion = emotivoice.analyze(jfk_path, model="tiny.en", beam_size=1, features=False)
    assert with_emotion.segments[0].emotion is not None


def test_final_layer_head_needs_its_whisper_model(jfk_path: Path, tmp_path: Path) -> None:
    import json

    import numpy as np

    from emotivoice.emotion.head import DEFAULT_HEAD

    # a head on the final encoder states (the former default) reads Whisper base's 512 values
    with np.load(Path(emotivoice.__file__).parent / "emotion" / "weights" / DEFAULT_HEAD) as f:
        arrays = dict(f)
    metadata = json.loads(str(arrays["metadata"]))
    metadata["config"]["tap"] = "final"
    arrays["metadata"] = np.array(json.dumps(metadata))
    head = tmp_path / "final-layer-head.npz"
    np.savez(head, **arrays)
    options = {"beam_size": 1, "features": False, "emotion_model": str(head)}
    assert emotivoice.analyze(jfk_path, **options).segments[0].emotion is not None
    # it reads the states of the window it was trained on: Whisper's 30 s, whatever was asked
    analyzer = Analyzer(AnalyzeOptions.from_kwargs(**options))
    assert analyzer.transcriber.options.encoder_window == "full"
    with pytest.raises(InvalidConfigError, match="Whisper base"):  # a clear error, not a crash
        emotivoice.analyze(jfk_path, model="tiny.en", **options)


@pytest.mark.slow
def test_reference_wer_and_language(analyzer: Analyzer, data_dir: Path) -> None:
    items = reference_utterances(data_dir)
    assert len(items) == 15
    analyses = [analyzer.analyze(item.path) for item in items]
    wer = word_error_rate([i.text for i in items], [a.text for a in analyses])
    assert wer <= MAX_REFERENCE_WER, f"WER {wer:.3f}"
    assert all(a.language == "en" for a in analyses)


def test_one_voice_is_one_speaker(jfk_analysis: Analysis) -> None:
    assert jfk_analysis.model.diarization == "ge2e"
    (speaker,) = jfk_analysis.speakers
    assert speaker.id == "SPEAKER_1" and speaker.channel is None and speaker.share == 1.0
    assert speaker.talk_time_s == pytest.approx(jfk_analysis.speech_duration, abs=0.01)
    assert {s.speaker for s in jfk_analysis.segments} == {"SPEAKER_1"}
    assert {w.speaker for s in jfk_analysis.segments for w in s.words} == {"SPEAKER_1"}
    assert speaker.emotion is not None and speaker.emotion.dominant in speaker.emotion.distribution
    assert speaker.f0_mean_hz is not None and 70 < speaker.f0_mean_hz < 300


def test_stereo_call_gives_one_speaker_per_channel(analyzer: Analyzer, data_dir: Path) -> None:
    """Two talkers, one per channel, speaking at once: each transcribed from its own channel."""
    import jsonschema

    analysis = analyzer.analyze(data_dir / "speech" / "stereo_diarization.wav")
    assert analysis.model.diarization == "channels"
    said = {s.speaker: (s.channel, normalize_text(s.text)) for s in analysis.segments}
    assert said["SPEAKER_1"][0] == 0 and "confused complaint" in said["SPEAKER_1"][1]
    assert said["SPEAKER_2"][0] == 1 and "horizon" in said["SPEAKER_2"][1]
    one, two = analysis.speakers
    assert (one.channel, two.channel) == (0, 1)
    assert one.overlap_s > 1.0 and two.interruptions == 1  # the second talker starts over the first
    jsonschema.validate(json.loads(analysis.to_json()), analysis_json_schema())


def test_diarization_off_treats_the_recording_as_one_voice(data_dir: Path) -> None:
    options = AnalyzeOptions.from_kwargs(diarization=False, features=False, emotion=False)
    analysis = Analyzer(options).analyze(data_dir / "speech" / "stereo_diarization.wav")
    assert analysis.speakers == () and analysis.model.diarization is None
    assert all(s.speaker is None and s.channel is None for s in analysis.segments)
    assert len(analysis.segments) == 1  # the two channels mixed, as before speakers existed
