"""The batch path (``--batch-size``): the same analysis as segment by segment, within stated
bounds, on real speech; the emotion head's padded batches; the GPU refused clearly here."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from emotivoice.audio import SAMPLE_RATE, load_audio
from emotivoice.batch import BatchAnalyzer
from emotivoice.emotion.batched import PrefixRunner, check_torch_device
from emotivoice.emotion.head import EmotionHead, own_log_mel
from emotivoice.errors import AudioError, InvalidConfigError
from emotivoice.metrics import word_error_rate
from emotivoice.pipeline import AnalyzeOptions, Analyzer
from emotivoice.results import Analysis
from emotivoice.transcription import _torch_log_mel, fitted_window

#: emotion probabilities of the batched path (the prefix's PyTorch twin over padded batches)
#: against the unbatched one (the numpy prefix, one segment at a time)
PROBABILITY_TOLERANCE = 0.01
#: batched decoding has no previous-text prompt and no temperature fallback
MAX_TRANSCRIPT_WER = 0.10


@pytest.fixture(scope="module")
def clips(data_dir: Path) -> list[Path]:
    # two voices, one segment and several: JFK (11 s) and a LibriVox utterance, then a
    # recording of both one after the other (several segments, units)
    return [data_dir / "speech" / "jfk.flac", sorted((data_dir / "librivox").glob("*.flac"))[0]]


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(AnalyzeOptions.from_kwargs(beam_size=1, diarization=False))


@pytest.fixture(scope="module")
def both(
    analyzer: Analyzer, clips: list[Path]
) -> tuple[list[Analysis], list[Analysis | None], list[np.ndarray]]:
    joined = np.concatenate([load_audio(c).samples for c in clips])
    sources = [*clips, analyzer.load(joined, sample_rate=SAMPLE_RATE)]
    unbatched = [analyzer.analyze(s) for s in sources]
    batch = BatchAnalyzer(analyzer, batch_size=3, feature_workers=1)
    batched = [r.analysis for r in batch.analyze_many(sources)]
    return unbatched, batched, [joined]


def _assert_like_unbatched(one: Analysis, many: Analysis | None) -> None:
    """The batched analysis ``many`` of a recording is its unbatched one within the bounds."""
    assert many is not None
    assert [(s.start, s.end) for s in many.segments] == [(s.start, s.end) for s in one.segments]
    assert word_error_rate([one.text], [many.text]) <= MAX_TRANSCRIPT_WER
    assert many.language == one.language == "en"
    for a, b in zip(one.segments, many.segments, strict=True):
        # the same function, in a process pool; the rates come from the words, whose times
        # may differ as the transcripts may
        assert a.features is not None and b.features is not None
        from_words = {"speaking_rate_wps", "syllable_rate_sps"}
        acoustic = [
            {k: v for k, v in asdict(f).items() if k not in from_words}
            for f in (a.features, b.features)
        ]
        assert acoustic[0] == acoustic[1]
        assert a.emotion is not None and b.emotion is not None
        np.testing.assert_allclose(
            list(b.emotion.probabilities.values()),
            list(a.emotion.probabilities.values()),
            atol=PROBABILITY_TOLERANCE,
        )
        assert len(b.timeline) == len(a.timeline)
        assert b.words and all(a.start <= w.start <= w.end <= a.end + 0.5 for w in b.words)
    assert many.emotion is not None and one.emotion is not None
    assert many.emotion.dominant == one.emotion.dominant


def test_batched_analysis_matches_the_segment_by_segment_one(
    both: tuple[list[Analysis], list[Analysis | None], list[np.ndarray]],
) -> None:
    # batches of 3 over 3 recordings: several batches, each finished while the next is
    # transcribed
    unbatched, batched, _ = both
    assert len(batched) == len(unbatched) == 3
    for one, many in zip(unbatched, batched, strict=True):
        _assert_like_unbatched(one, many)
    joined = batched[2]
    assert joined is not None and len(joined.segments) >= 2
    assert sum(len(s.units) for s in joined.segments) >= 3  # units scored in one batch


def test_a_bad_file_inside_a_batch_keeps_the_order_and_the_others_results(
    analyzer: Analyzer,
    clips: list[Path],
    both: tuple[list[Analysis], list[Analysis | None], list[np.ndarray]],
    tmp_path: Path,
) -> None:
    bad = tmp_path / "not-audio.wav"
    bad.write_bytes(b"this is not audio")
    sources = [clips[0], bad, clips[1]]
    batch = BatchAnalyzer(analyzer, batch_size=8, feature_workers=1)  # one batch, both files
    results = list(batch.analyze_many(sources))
    assert [r.source for r in results] == sources
    assert isinstance(results[1].error, AudioError) and results[1].analysis is None
    for one, result in zip(both[0][:2], [results[0], results[2]], strict=True):
        assert result.error is None and result.audio is not None
        _assert_like_unbatched(one, result.analysis)
        assert result.analysis is not None
        assert sorted(result.spans) == [s.id for s in result.analysis.segments]
    assert batch.seconds["decode"] > 0 and batch.seconds["emotion"] > 0


def test_a_consumer_may_stop_while_batches_are_in_flight(
    analyzer: Analyzer, clips: list[Path]
) -> None:
    # batches of one segment: the next batches are being transcribed and finished when the
    # consumer stops after the first file; closing must neither hang nor fail
    results = BatchAnalyzer(analyzer, batch_size=1, feature_workers=1).analyze_many(
        [clips[0], clips[1], clips[0]]
    )
    first = next(results)
    assert first.analysis is not None and "fellow americans" in first.analysis.text.lower()
    results.close()


def test_a_bad_file_among_many_is_reported_and_the_rest_analysed(
    analyzer: Analyzer, clips: list[Path], tmp_path: Path
) -> None:
    bad = tmp_path / "not-audio.wav"
    bad.write_bytes(b"this is not audio")
    results = list(BatchAnalyzer(analyzer, batch_size=4).analyze_many([bad, clips[0]]))
    assert [r.source for r in results] == [bad, clips[0]]
    assert isinstance(results[0].error, AudioError) and results[0].analysis is None
    assert (
        results[1].analysis is not None and "fellow americans" in results[1].analysis.text.lower()
    )
    assert results[1].spans and results[1].audio is not None


def test_batch_options_are_checked(analyzer: Analyzer) -> None:
    with pytest.raises(InvalidConfigError, match="batch_size"):
        BatchAnalyzer(analyzer, batch_size=0)
    with pytest.raises(InvalidConfigError, match="planners must not be negative"):
        BatchAnalyzer(analyzer, planners=-1)


def test_padded_prefix_batches_equal_one_segment_at_a_time(data_dir: Path) -> None:
    # segments of three lengths in one padded batch: every real position gets what the
    # segment alone gets from the numpy runtime
    head = EmotionHead.load()
    samples = load_audio(data_dir / "speech" / "jfk.flac").samples
    mels = [own_log_mel(samples[: int(s * SAMPLE_RATE)])[0] for s in (1.3, 4.0, 9.7)]
    batched = PrefixRunner(head, "cpu").states(mels)
    assert PrefixRunner(head, "cpu").uses_torch
    for mel, states in zip(mels, batched, strict=True):
        alone = head.prefix_states(mel[None])[0]
        assert states.shape == alone.shape
        np.testing.assert_allclose(states, alone, atol=2e-3 * float(np.abs(alone).max()))


def test_the_gpu_is_refused_clearly_where_there_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    assert not torch.cuda.is_available()  # this test describes a machine without a GPU
    with pytest.raises(InvalidConfigError, match="no CUDA GPU"):
        check_torch_device("cuda")
    with pytest.raises(InvalidConfigError, match="no CUDA GPU"):
        Analyzer(AnalyzeOptions.from_kwargs(device="cuda"))
    with pytest.raises(InvalidConfigError, match="no CUDA GPU"):
        Analyzer(AnalyzeOptions.from_kwargs(emotion_device="cuda", diarization=False))
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(InvalidConfigError, match=r"emotivoice\[torch\]"):
        check_torch_device("cuda")


def test_a_batch_of_two_languages_decodes_each_in_its_own(data_dir: Path) -> None:
    # English then German in one batch: one decoder call per language (the mixed batch's
    # rows encoded again by language), each segment's words inside it
    options = AnalyzeOptions.from_kwargs(
        beam_size=1, diarization=False, features=False, emotion=False
    )
    batch = BatchAnalyzer(Analyzer(options), batch_size=16)
    [result] = batch.analyze_many([data_dir / "speech" / "multilingual.mp3"])
    analysis = result.analysis
    assert analysis is not None and len(analysis.segments) <= 16  # one batch
    shares = {share.language: share.share for share in analysis.languages}
    assert set(shares) == {"en", "de"} and min(shares.values()) > 0.3
    for segment in analysis.segments:
        assert segment.text and segment.words
        assert all(
            segment.start - 0.5 <= w.start <= w.end <= segment.end + 0.5 for w in segment.words
        )
    assert batch.seconds["decode"] > 0 and batch.seconds["encode"] > 0


def test_a_row_of_a_batch_is_not_decoded_alone(analyzer: Analyzer, data_dir: Path) -> None:
    samples = load_audio(data_dir / "speech" / "jfk.flac").samples
    transcriber = analyzer.transcriber
    pair = transcriber.encode_batch([samples[: 3 * SAMPLE_RATE], samples[3 * SAMPLE_RATE :]])
    with pytest.raises(InvalidConfigError, match="transcribe_batch"):
        transcriber.transcribe(pair[1], "en", 1.0, 0.0)
    [one, two] = transcriber.transcribe_batch(pair, ["en", "en"], [1.0, 1.0], [0.0, 3.0])
    assert "fellow" in (one.text + two.text).lower() and two.words[0].start >= 3.0


def test_the_batched_log_mel_equals_the_extractor_segment_by_segment(data_dir: Path) -> None:
    # the one PyTorch call that --device cuda makes for a batch (here on the CPU): each
    # segment's frames as faster-whisper's extractor makes them alone, lengths of all kinds
    pytest.importorskip("torch")
    from emotivoice.emotion.head import whisper_feature_extractor

    extractor = whisper_feature_extractor()
    samples = load_audio(data_dir / "speech" / "jfk.flac").samples
    segments = [samples[: int(s * SAMPLE_RATE)] for s in (0.02, 0.3, 1.3, 4.0, 9.7)]
    segments.append(samples[SAMPLE_RATE : 8 * SAMPLE_RATE + 77])
    batched = _torch_log_mel(segments, extractor, "cpu")
    for segment, frames in zip(segments, batched, strict=True):
        alone = extractor(segment)
        assert frames.shape == alone.shape
        np.testing.assert_allclose(frames, alone, atol=1e-4)


def test_a_batch_shares_a_window_fitted_to_its_longest_segment(
    analyzer: Analyzer, data_dir: Path
) -> None:
    # the default head reads its own prefix, so the batch's window is fitted, as the unbatched
    # path fits each segment's; a head on Whisper's states keeps Whisper's 30 s
    import copy
    import dataclasses

    samples = load_audio(data_dir / "speech" / "jfk.flac").samples
    transcriber = analyzer.transcriber
    pair = [samples[: 2 * SAMPLE_RATE], samples[: 8 * SAMPLE_RATE]]
    assert transcriber.options.encoder_window == "fit"
    encoded = transcriber.encode_batch(pair)
    assert encoded[0].encoder_output.shape[1] * 2 == fitted_window(8 * SAMPLE_RATE) == 1000
    full = copy.copy(transcriber)
    full.options = dataclasses.replace(transcriber.options, encoder_window="full")
    assert full.batch_window(pair) == 3000
