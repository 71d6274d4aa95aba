"""The streaming engine on real speech: endpointing, partial text, final segments, limits."""

from __future__ import annotations

import dataclasses
import io
import itertools
import wave
from pathlib import Path

import numpy as np
import pytest

from emotivoice.audio import SAMPLE_RATE, load_audio
from emotivoice.errors import (
    AudioDecodeError,
    InvalidConfigError,
    StreamTooLongError,
    UnsupportedFormatError,
)
from emotivoice.pipeline import AnalyzeOptions, Analyzer, SegmentContext
from emotivoice.segmentation import VadOptions
from emotivoice.streaming.analyzer import StreamingAnalyzer, StreamOptions, local_agreement
from emotivoice.streaming.decoder import StreamDecoder
from emotivoice.streaming.endpointer import SpeechEndpointer
from emotivoice.streaming.events import PartialEvent, SegmentEvent, VadEvent
from emotivoice.transcription import Transcriber, fitted_window


def pcm(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def run(stream: StreamingAnalyzer, data: bytes, frame_bytes: int, partials: bool = True) -> list:
    events = []
    for i in range(0, len(data), frame_bytes):
        events += stream.feed(data[i : i + frame_bytes], partials=partials)
    return events + stream.finish()


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


@pytest.mark.slow
def test_final_segments_do_not_depend_on_frame_size(analyzer: Analyzer, jfk_samples) -> None:
    data = pcm(jfk_samples)
    small = run(StreamingAnalyzer(analyzer), data, frame_bytes=640, partials=False)  # 20 ms
    large = run(StreamingAnalyzer(analyzer), data, frame_bytes=8000)  # 250 ms, with partials
    finals = [[e.segment for e in ev if isinstance(e, SegmentEvent)] for ev in (small, large)]
    assert finals[0] == finals[1]
    text = " ".join(s.text for s in finals[0]).lower()
    for phrase in ("my fellow americans", "ask not", "your country can do for you"):
        assert phrase in text
    segment = finals[0][0]
    assert segment.words and segment.emotion is not None and segment.features is not None
    assert segment.words[0].start >= segment.start  # times are in the stream, not the segment
    vad = [e for e in small if isinstance(e, VadEvent)]
    assert [e.state for e in vad[:2]] == ["start", "end"] and len(vad) == 2 * len(finals[0])
    partials = [e for e in large if isinstance(e, PartialEvent)]
    assert partials and not [e for e in small if isinstance(e, PartialEvent)]
    # LocalAgreement: within an utterance the stable text only grows
    for before, after in itertools.pairwise(partials):
        if before.segment_id == after.segment_id:
            assert after.stable.startswith(before.stable)
    assert any("fellow" in p.text.lower() for p in partials)


@pytest.mark.slow
def test_segments_are_batch_analysis_of_the_endpointed_spans(analyzer: Analyzer, data_dir) -> None:
    samples = load_audio(
        data_dir / "librivox" / "sense_and_sensibility_01_austen_64kb-0870.flac"
    ).samples
    data = pcm(samples)
    options = StreamOptions(partials=False, final_window="full")  # speculative, as by default
    events = run(StreamingAnalyzer(analyzer, options), data, 3200)
    finals = [e for e in events if isinstance(e, SegmentEvent)]
    streamed = [e.segment for e in finals]
    heard = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    endpointer = SpeechEndpointer(analyzer.options.vad, StreamOptions().endpoint_silence_ms)
    turns = endpointer.push(heard) + endpointer.flush(heard.size)
    spans = [t.span for t in turns if t.kind == "end" and t.span is not None]
    context, batch = SegmentContext(), []
    for index, span in enumerate(spans):
        chunk = heard[span.start_sample : span.end_sample]
        result, context = analyzer.analyze_span(chunk, span, index, context)
        batch.append(result.segment)
    assert streamed == batch
    assert "john dashwood" in " ".join(s.text for s in streamed).lower()
    # 100 ms frames: the 200 ms pad is heard a frame before the 300 ms pause ends an utterance
    assert any(e.speculative for e in finals)


@pytest.mark.slow
def test_fit_finals_keep_a_short_pad_and_decode_with_a_narrow_beam(
    analyzer: Analyzer, data_dir
) -> None:
    """The default ``fit`` finals: spans with 100 ms of audio after speech (batch: 200 ms), a
    fitted window without the previous text, decoded with a beam of 2; otherwise the same
    ``analyze_span`` as batch analysis."""
    samples = load_audio(data_dir / "librispeech" / "2830-3980-0029.flac").samples
    data = pcm(samples)
    options = StreamOptions(partials=False)
    assert (options.final_window, options.final_pad_ms, options.final_beam_size) == ("fit", 100, 2)
    finals = [
        e
        for e in run(StreamingAnalyzer(analyzer, options), data, 3200)
        if isinstance(e, SegmentEvent)
    ]
    heard = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    endpointer = SpeechEndpointer(analyzer.options.vad, options.endpoint_silence_ms, 100)
    turns = [t for t in endpointer.push(heard) + endpointer.flush(heard.size) if t.kind == "end"]
    assert [round(t.span.end - t.time, 3) for t in turns if t.span] == [0.1] * len(turns)
    decoder = Transcriber(dataclasses.replace(analyzer.transcriber.options, beam_size=2))
    context, batch = SegmentContext(), []
    for index, turn in enumerate(turns):
        span = turn.span
        assert span is not None
        chunk = heard[span.start_sample : span.end_sample]
        context = dataclasses.replace(context, previous_tokens=())
        result, context = analyzer.analyze_span(
            chunk, span, index, context, fitted_window(chunk.size), decoder
        )
        batch.append(result.segment)
    assert [e.segment for e in finals] == batch
    # with 200 ms Whisper said this clip's first sentence twice in a fitted window
    text = " ".join(s.text for s in batch).lower()
    assert text.count("apostles") == 1 and "one mind with me" in text


@pytest.mark.slow
def test_speculative_finals_are_discarded_when_speech_resumes(
    analyzer: Analyzer, jfk_samples
) -> None:
    # With a 1 s endpoint every shorter pause between phrases starts a speculative final that
    # speech then overtakes; what is sent must be what a stream without speculation sends.
    data = pcm(jfk_samples)
    streams = [
        StreamingAnalyzer(
            analyzer, StreamOptions(partials=False, endpoint_silence_ms=1000, speculative=on)
        )
        for on in (True, False)
    ]
    events = [run(stream, data, 3200) for stream in streams]
    finals = [[e for e in ev if isinstance(e, SegmentEvent)] for ev in events]
    assert [e.segment for e in finals[0]] == [e.segment for e in finals[1]]
    assert finals[0] and not any(e.speculative for e in finals[1])
    assert streams[0].stats().speculations_discarded >= 1
    assert streams[1].stats().speculations_discarded == 0


@pytest.mark.slow
def test_an_early_endpoint_sends_a_complete_sentence_without_waiting_for_the_pause(
    analyzer: Analyzer, data_dir: Path
) -> None:
    # "Kids are talking by the door." then silence, in 100 ms frames, a 1 s endpoint: with
    # early_endpoint the sentence's final is sent once its speculative pass ends the sentence,
    # most of the second sooner; the segment is the same.
    clip = load_audio(data_dir / "ravdess" / "Actor_01" / "03-01-01-01-01-01-01.flac").samples
    data = pcm(np.concatenate([clip, np.zeros(2 * SAMPLE_RATE, np.float32)]))
    sent_at, segments = [], []
    for early in (True, False):
        options = StreamOptions(partials=False, endpoint_silence_ms=1000, early_endpoint=early)
        stream = StreamingAnalyzer(analyzer, options)
        for i in range(0, len(data), 3200):
            finals = [e for e in stream.feed(data[i : i + 3200]) if isinstance(e, SegmentEvent)]
            if finals:
                sent_at.append(i // 3200)
                segments.append(finals)
        assert not [e for e in stream.finish() if isinstance(e, SegmentEvent)]
    assert [len(s) for s in segments] == [1, 1]
    assert segments[0][0].segment == segments[1][0].segment
    assert segments[0][0].segment.text.strip().endswith(".")
    assert sent_at[0] + 6 <= sent_at[1]  # 100 ms frames: at least 0.6 s sooner


def test_the_endpointer_ends_a_pause_on_request(jfk_samples) -> None:
    """end_pause() closes the open utterance with the span span_if_ended() promised, and
    nothing before its trailing pad is in."""
    endpointer = SpeechEndpointer(VadOptions(), endpoint_silence_ms=2000, trailing_pad_ms=100)
    ended = []
    for i in range(0, jfk_samples.size, 512):
        ended += [t for t in endpointer.push(jfk_samples[i : i + 512]) if t.kind == "end"]
        promised = endpointer.span_if_ended()
        turns = endpointer.end_pause()
        assert (promised is None) == (not turns)
        if turns:
            assert turns[0].kind == "end" and turns[0].span == promised
            assert not endpointer.in_speech and endpointer.span_if_ended() is None
            ended.append(turns[0])
    assert len(ended) >= 3  # JFK's phrases, each ended at its first pause


@pytest.mark.slow
def test_audio_sent_before_stop_makes_the_same_finals_without_extra_passes(
    analyzer: Analyzer, jfk_samples
) -> None:
    # After the client's stop, the audio still queued is fed with ending=True: no partial and no
    # speculative pass (they would only delay finish), and the very same final segments.
    data = pcm(jfk_samples)
    normal = run(StreamingAnalyzer(analyzer), data, 3200)
    stream = StreamingAnalyzer(analyzer)
    half = len(data) // 2 // 3200 * 3200
    events = [e for i in range(0, half, 3200) for e in stream.feed(data[i : i + 3200])]
    partials_before = stream.stats().partials
    ending = [
        e
        for i in range(half, len(data), 3200)
        for e in stream.feed(data[i : i + 3200], ending=True)
    ]
    events += ending + stream.finish()
    assert not any(isinstance(e, PartialEvent) for e in ending)
    assert stream.stats().partials == partials_before
    assert not any(e.speculative for e in ending if isinstance(e, SegmentEvent))
    finals = [e.segment for e in events if isinstance(e, SegmentEvent)]
    assert finals == [e.segment for e in normal if isinstance(e, SegmentEvent)]


def test_opus_stream_decodes_like_the_file(encoded_jfk: dict[str, Path]) -> None:
    for name in ("ogg-opus", "webm-opus"):
        data = encoded_jfk[name].read_bytes()
        decoder = StreamDecoder(name)
        pieces = [decoder.feed(data[i : i + 333]) for i in range(0, len(data), 333)]
        streamed = np.concatenate([*pieces, decoder.finish()])
        np.testing.assert_array_equal(streamed, load_audio(encoded_jfk[name]).samples)


def test_pcm_decoder_resamples_and_keeps_odd_bytes(jfk_samples) -> None:
    at_48k = np.repeat(jfk_samples[: SAMPLE_RATE * 2], 3)  # 2 s at 48 kHz
    data = pcm(at_48k)
    decoder = StreamDecoder("pcm_s16le", sample_rate=48000)
    pieces = [decoder.feed(data[i : i + 1001]) for i in range(0, len(data), 1001)]
    out = np.concatenate([*pieces, decoder.finish()])
    assert abs(out.size - 2 * SAMPLE_RATE) <= 16
    assert np.corrcoef(out[100:-100], jfk_samples[100 : out.size - 100])[0, 1] > 0.95


def test_bad_input_is_a_typed_error() -> None:
    with pytest.raises(UnsupportedFormatError, match="supported encodings"):
        StreamDecoder("mp3")
    decoder = StreamDecoder("ogg-opus")
    with pytest.raises(AudioDecodeError, match="cannot be decoded"):
        for _ in range(20):
            decoder.feed(b"this is not an ogg stream at all " * 100)
        decoder.finish()


def test_endpointer_probabilities_and_cuts_do_not_depend_on_frames(jfk_samples) -> None:
    options = VadOptions(max_segment_s=3.0)
    results = []
    for frame in (160, 512, 4000):
        endpointer = SpeechEndpointer(options, endpoint_silence_ms=300)
        turns = []
        for i in range(0, jfk_samples.size, frame):
            turns += endpointer.push(jfk_samples[i : i + frame])
        results.append(turns + endpointer.flush(jfk_samples.size))
    assert results[0] == results[1] == results[2]
    spans = [t.span for t in results[0] if t.kind == "end" and t.span is not None]
    assert len(spans) >= 4
    assert all(s.end - s.start <= 3.0 for s in spans)
    assert all(a.end_sample <= b.start_sample for a, b in itertools.pairwise(spans))


def test_local_agreement() -> None:
    assert local_agreement(["And", "so,", "my"], ["and", "so", "my", "fellow"]) == 3
    assert local_agreement(["ask", "not"], ["as", "not"]) == 0


def test_max_duration_and_recording(jfk_samples) -> None:
    analyzer = Analyzer(AnalyzeOptions(emotion=None, features=False))
    stream = StreamingAnalyzer(analyzer, StreamOptions(max_duration_s=1.0, partials=False))
    stream.feed(pcm(jfk_samples[: SAMPLE_RATE // 2]))
    with pytest.raises(StreamTooLongError, match="maximum of 1 s"):
        stream.feed(pcm(jfk_samples[:SAMPLE_RATE]))
    with wave.open(io.BytesIO(stream.recording_wav())) as wav:
        assert wav.getframerate() == SAMPLE_RATE and wav.getnframes() == SAMPLE_RATE // 2
    stream.close()


@pytest.mark.slow
def test_live_speaker_labels(analyzer: Analyzer) -> None:
    """With ``speakers`` on, a two-person conversation's finals carry two labels, each word its
    segment's; speculation does not change them (only sent segments teach the tracker)."""
    from emotivoice.evaluation.diarization import build_conversations

    conversation = build_conversations("test", 2, seed=5, turns=4, emotions_per_speaker=1)[0]
    data = pcm(conversation.samples)
    finals = []
    for speculative in (True, False):
        options = StreamOptions(partials=False, speakers=True, speculative=speculative)
        events = run(StreamingAnalyzer(analyzer, options), data, 3200)
        finals.append([e.segment for e in events if isinstance(e, SegmentEvent)])
    labels = [s.speaker for s in finals[0]]
    assert [(s.start, s.end) for s in finals[0]] == [(s.start, s.end) for s in finals[1]]
    assert labels == [s.speaker for s in finals[1]]
    assert labels[0] == "SPEAKER_1" and len(set(labels)) >= 2
    assert all(w.speaker == s.speaker for s in finals[0] for w in s.words)
    off = run(StreamingAnalyzer(analyzer, StreamOptions(partials=False)), data, 3200)
    assert all(e.segment.speaker is None for e in off if isinstance(e, SegmentEvent))


def _wake_then_speech(jfk_samples: np.ndarray) -> tuple[np.ndarray, float]:
    """An espeak-ng voice saying "hey jarvis" (the shipped model scores it 0.996), then JFK;
    returns the audio and where the phrase ends (s)."""
    from emotivoice.wakeword.tts import Voice, synthesize

    said = synthesize("hey jarvis", Voice("espeak-ng", "en-029+Andy", "Andy"))
    pause = np.zeros(SAMPLE_RATE, np.float32)
    audio = np.concatenate([pause, said, pause, jfk_samples[: 4 * SAMPLE_RATE], pause])
    return audio, (len(pause) + len(said)) / SAMPLE_RATE


@pytest.mark.slow
def test_a_stream_with_a_wake_word_reports_it_where_it_was_said(
    analyzer: Analyzer, jfk_samples: np.ndarray
) -> None:
    from emotivoice.streaming.events import WakeEvent

    audio, phrase_end = _wake_then_speech(jfk_samples)
    options = StreamOptions(partials=False, wake_word="hey_jarvis")
    events = run(StreamingAnalyzer(analyzer, options), pcm(audio), frame_bytes=3200)
    wakes = [e for e in events if isinstance(e, WakeEvent)]
    assert len(wakes) == 1, wakes  # once: the detector's refractory period holds
    assert phrase_end - 0.5 <= wakes[0].time <= phrase_end + 0.5
    assert wakes[0].phrase == "hey jarvis" and wakes[0].score >= 0.9
    assert wakes[0].to_dict()["type"] == "wake"
    segments = [e for e in events if isinstance(e, SegmentEvent)]
    assert any("fellow americans" in s.segment.text.lower() for s in segments)
    # without a wake word: no detector, no event
    plain = run(StreamingAnalyzer(analyzer, StreamOptions(partials=False)), pcm(audio), 3200)
    assert not [e for e in plain if isinstance(e, WakeEvent)]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("final_window", "short", "final_window must be one of"),
        ("partial_interval_s", 0.0, "partial_interval_s must be a positive"),
        ("endpoint_silence_ms", -1, "endpoint_silence_ms must be between"),
        ("final_pad_ms", 5000, "final_pad_ms must be between 0 and 2000"),
        ("final_beam_size", 0, "final_beam_size must be between 1 and 16"),
    ],
)
def test_invalid_stream_options_are_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        StreamOptions(**{field: value})  # type: ignore[arg-type]
