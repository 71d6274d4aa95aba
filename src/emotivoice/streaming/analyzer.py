"""Live analysis of an audio stream: VAD endpointing, stable partial text, final segments.

A :class:`StreamingAnalyzer` holds one stream's state only (decoder, VAD, buffers, partial-text
agreement); the models belong to a shared, loaded :class:`~emotivoice.pipeline.Analyzer` and are
only read. Final segments are made by :meth:`Analyzer.analyze_span` - the same code, model
settings and padding as batch analysis. With ``final_window="full"`` a streamed segment carries
the same text, words, emotions and features a batch analysis of that span would; the default
``fit`` drops the previous text as prompt and is close to it. Final segments are speculative:
their models run once the pause's trailing pad has been heard, before the pause is long enough
to end the utterance, and the result is kept only if it does.

Provisional text between endpoints (``partial`` events) comes from a cheap greedy pass over a
shortened encoder window and is stabilised with LocalAgreement-2 (Macháček et al. 2023,
whisper_streaming): a word becomes ``stable`` once two consecutive hypotheses agree on it.

The class is synchronous and not thread-safe: call it from one thread (a server hands it to a
worker thread, since the model calls take a second or so).
"""

from __future__ import annotations

import dataclasses
import io
import re
import time
import wave
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from emotivoice.audio import SAMPLE_RATE, to_pcm16
from emotivoice.diarization.online import OnlineSpeakers
from emotivoice.errors import InvalidConfigError, StreamTooLongError
from emotivoice.pipeline import SegmentContext, SegmentResult
from emotivoice.segmentation import SpeechSpan
from emotivoice.streaming.decoder import StreamDecoder
from emotivoice.streaming.endpointer import SpeechEndpointer
from emotivoice.streaming.events import (
    PartialEvent,
    SegmentEvent,
    StatsEvent,
    StreamEvent,
    VadEvent,
    WakeEvent,
)
from emotivoice.transcription import Transcriber, fitted_window

if TYPE_CHECKING:
    from emotivoice.pipeline import Analyzer
    from emotivoice.wakeword.detector import WakeWordDetector

__all__ = ["StreamOptions", "StreamingAnalyzer", "local_agreement"]

_FINAL_WINDOWS = ("full", "fit")
# Partial text is greedy and short-lived: 1 s of silence after the audio is enough margin there
# (final segments get the fitted window's 2 s: with 1 s Whisper sometimes repeated the segment)
_PARTIAL_WINDOW_MARGIN_FRAMES = 100
_MIN_PARTIAL_S = 0.5  # less audio than this gives Whisper too little to say anything useful
# Fast speech is about 4 words (6 tokens) a second; a cap stops hallucinated repetition early.
_PARTIAL_TOKENS_PER_S = 8
_PARTIAL_TOKENS_SLACK = 8
_ROUND = 3


@dataclass(frozen=True)
class StreamOptions:
    """One stream's settings; the models' own settings come from the shared Analyzer.

    Attributes:
        encoding: ``pcm_s16le`` (headerless 16-bit little-endian), ``ogg-opus`` or ``webm-opus``.
        sample_rate: sample rate of ``pcm_s16le`` input in Hz (containers carry their own).
        channels: interleaved channels of ``pcm_s16le`` input (1 or 2; averaged to mono).
        language: force a language (ISO code); ``None`` uses the Analyzer's setting.
        partials: send provisional text while someone speaks.
        partial_interval_s: new audio between two partial hypotheses.
        endpoint_silence_ms: pause that ends an utterance. Shorter means faster final segments
            but more, shorter segments (Whisper transcribes isolated fragments a little worse).
        max_duration_s: longest stream accepted; the recording is kept up to this length.
        keep_recording: keep the whole stream (16-bit) for :meth:`StreamingAnalyzer.recording_wav`.
        final_window: ``fit`` (default): final segments' encoder window is just longer than
            the segment (:func:`~emotivoice.transcription.fitted_window`) and the previous
            segment's text is not used as prompt (in a short window it pulls the decoder off
            short speech), text and emotions within a little of batch analysis; ``full``:
            exactly as batch analysis (its encoder window, which is fitted too unless the
            Analyzer's ``encoder_window`` is ``full``, and the previous text as prompt).
        speculative: start a final segment's models as soon as the pause's trailing pad is
            heard, while the pause is still too short to end the utterance; the result is sent
            the moment the pause does end it and discarded if speech resumes. It is the same
            segment, only sooner; the discarded passes cost CPU time.
        final_pad_ms: with ``fit``, the pad of audio kept after speech in a final segment
            (batch analysis keeps the VAD's 200 ms): a shorter one is heard sooner, so the
            final's models (and a speculative pass) start sooner. Whisper's fitted window adds
            2 s of silence after it in any case. ``None``: the VAD's pad.
        final_beam_size: with ``fit``, the beam width of final segments' decoding (``None``:
            the Analyzer's). A narrower beam decodes a live final sooner.
        early_endpoint: with ``speculative``, end an utterance as soon as its speculative final
            ends a sentence (its text ends in ``.``, ``?`` or ``!``) instead of waiting for the
            rest of ``endpoint_silence_ms``: the pause is then only the trailing pad long
            (``final_pad_ms``) plus the models' time. A turn-taking cue, as voice agents use the
            transcript to decide that a turn is over; a speaker who pauses that briefly after a
            complete sentence and goes on gets two segments. Off by default: on the 2-core CPU
            the speculative pass of a short question ends about when the 300 ms pause does, so
            it gained nothing there (docs/benchmarks.md, "Voice assistant"); it pays where the
            models are faster than the pause.
        speakers: label each final segment with a speaker (``SPEAKER_1``, ...) as it is sent:
            it joins the nearest voice heard so far or starts a new one
            (:class:`~emotivoice.diarization.online.OnlineSpeakers`; off when the Analyzer's
            diarization is off). Labels never change once sent.
        wake_word: a wake-word model (a shipped name such as ``hey_jarvis``, or an ONNX file
            made by the wake-word studio): ``wake`` events as its phrase is heard, from the
            same audio (:class:`~emotivoice.wakeword.WakeWordDetector`, a fraction of a
            percent of one core).
        wake_threshold: the wake word's detection threshold (default: the model's own).
    """

    encoding: str = "pcm_s16le"
    sample_rate: int = SAMPLE_RATE
    channels: int = 1
    language: str | None = None
    partials: bool = True
    partial_interval_s: float = 0.5
    endpoint_silence_ms: int = 300
    max_duration_s: float = 3600.0
    keep_recording: bool = True
    final_window: str = "fit"
    speculative: bool = True
    final_pad_ms: int | None = 100
    final_beam_size: int | None = 2
    early_endpoint: bool = False
    speakers: bool = False
    wake_word: str | None = None
    wake_threshold: float | None = None

    def __post_init__(self) -> None:
        if self.final_window not in _FINAL_WINDOWS:
            raise InvalidConfigError(
                f"final_window must be one of {_FINAL_WINDOWS}, got {self.final_window!r}."
            )
        if self.partial_interval_s <= 0:
            raise InvalidConfigError("partial_interval_s must be a positive number of seconds.")
        if not 0 <= self.endpoint_silence_ms <= 10_000:
            raise InvalidConfigError("endpoint_silence_ms must be between 0 and 10000.")
        if self.max_duration_s <= 0:
            raise InvalidConfigError("max_duration_s must be a positive number of seconds.")
        if self.final_pad_ms is not None and not 0 <= self.final_pad_ms <= 2000:
            raise InvalidConfigError("final_pad_ms must be between 0 and 2000.")
        if self.final_beam_size is not None and not 1 <= self.final_beam_size <= 16:
            raise InvalidConfigError("final_beam_size must be between 1 and 16.")


_WORD_NORMALISER = re.compile(r"[^\w']+")
# a sentence's end: ., ? or ! (closing quotes or brackets after it), not an ellipsis
_SENTENCE_END = re.compile(r"(?<!\.\.)[.?!。？！][\"')\]」』]*\s*$")


def _norm(word: str) -> str:
    return _WORD_NORMALISER.sub("", word.lower())


def local_agreement(previous: list[str], current: list[str]) -> int:
    """Length of the common word prefix of two hypotheses (case and punctuation ignored)."""
    n = 0
    for a, b in zip(previous, current, strict=False):
        if _norm(a) != _norm(b):
            break
        n += 1
    return n


@dataclass
class _Utterance:
    """The open utterance's partial-text state."""

    last_partial_at: int = 0
    previous: list[str] = field(default_factory=list)
    stable: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Final:
    """A final segment's model results, made early or when its utterance ended."""

    span: SpeechSpan
    result: SegmentResult
    context: SegmentContext
    compute_s: float


class StreamingAnalyzer:
    """Analyses one live stream with the models of a shared, loaded Analyzer.

    Feed bytes with :meth:`feed` as they arrive and call :meth:`finish` at the end; both return
    the events that became due. Final segments do not depend on how the audio was cut into
    frames; partial text depends on timing (it is skipped when the caller is behind).

    Args:
        analyzer: the loaded models, shared read-only with other streams.
        options: this stream's settings.

    Raises:
        UnsupportedFormatError: an unknown encoding.
        InvalidConfigError: an invalid option or language.
    """

    def __init__(self, analyzer: Analyzer, options: StreamOptions | None = None) -> None:
        self.analyzer = analyzer
        self.options = options or StreamOptions()
        opts = self.options
        base = analyzer.transcriber.options
        if opts.language is not None and opts.language != base.language:
            # validates the language against the model; the Whisper model itself is shared
            Transcriber(dataclasses.replace(base, language=opts.language))
        self._partial_transcriber = Transcriber(
            dataclasses.replace(
                base, beam_size=1, word_timestamps=False, condition_on_previous_text=False
            )
        )
        fit = opts.final_window == "fit"
        self._final_decoder = (
            Transcriber(dataclasses.replace(base, beam_size=opts.final_beam_size))
            if fit and opts.final_beam_size not in (None, base.beam_size)
            else None
        )
        self._decoder = StreamDecoder(opts.encoding, opts.sample_rate, opts.channels)
        self._endpointer = SpeechEndpointer(
            analyzer.options.vad, opts.endpoint_silence_ms, opts.final_pad_ms if fit else None
        )
        self._context = SegmentContext(language=opts.language or base.language)
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0  # stream sample index of self._buffer[0]
        self._received = 0  # samples decoded so far
        self._recording: list[np.ndarray] = []
        self._pending: list[tuple[SpeechSpan, float, np.ndarray]] = []
        self._speculation: _Final | None = None
        self._discarded = 0
        self._utterance: _Utterance | None = None
        self._segments = 0
        self._partials = 0
        self._speech_s = 0.0
        self._compute_s = 0.0
        self._finished = False
        diarization = analyzer.options.diarization
        self._speakers = (
            OnlineSpeakers(diarization) if opts.speakers and diarization is not None else None
        )
        self._wake: WakeWordDetector | None = None
        if opts.wake_word is not None:
            from emotivoice.wakeword.detector import load_model

            self._wake = load_model(opts.wake_word).detector(opts.wake_threshold)

    @property
    def duration(self) -> float:
        """Seconds of audio received so far."""
        return self._received / SAMPLE_RATE

    def feed(
        self, data: bytes, partials: bool = True, *, ending: bool = False
    ) -> list[StreamEvent]:
        """Decode ``data``; returns VAD events, final segments due, and maybe a partial.

        Args:
            data: the next bytes of the stream, any length.
            partials: allow a partial hypothesis now (a server passes ``False`` while more
                audio is already waiting, so that it catches up first).
            ending: the client has asked to stop and this is audio it sent before: no partial
                and no speculative pass (the end of the open utterance is known now; a pass
                made ahead of it would only delay :meth:`finish`). Final segments are the same.

        Raises:
            AudioDecodeError: the bytes are not audio of the announced encoding.
            StreamTooLongError: the stream passed ``max_duration_s``.
        """
        events = self._push(self._decoder.feed(data))
        events += self._finalise_pending()
        if self.options.speculative and not ending:
            self._speculate()
            if self.options.early_endpoint:
                events += self._end_early()
        if partials and self.options.partials and not ending:
            events += self._maybe_partial()
        return events

    def finish(self) -> list[StreamEvent]:
        """End of stream: flush the decoder and finalise the open utterance."""
        if self._finished:
            return []
        self._finished = True
        events = self._push(self._decoder.finish())
        for turn in self._endpointer.flush(self._received):
            events += self._turn_events(turn)
        events += self._finalise_pending()
        return events

    def close(self) -> None:
        """Release the decoder (an abandoned stream); idempotent."""
        self._finished = True
        self._decoder.close()

    def stats(self, backlog_s: float = 0.0, throttled: bool = False) -> StatsEvent:
        """The stream's figures so far."""
        audio_s = self.duration
        return StatsEvent(
            audio_s=round(audio_s, _ROUND),
            speech_s=round(self._speech_s, _ROUND),
            segments=self._segments,
            partials=self._partials,
            compute_s=round(self._compute_s, _ROUND),
            rtf=round(self._compute_s / audio_s, _ROUND) if audio_s else 0.0,
            speculations_discarded=self._discarded,
            backlog_s=round(backlog_s, _ROUND),
            throttled=throttled,
        )

    def recording(self) -> np.ndarray:
        """The whole stream so far, 16 kHz mono 16-bit."""
        if not self._recording:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._recording)

    def recording_wav(self) -> bytes:
        """The whole stream so far as a 16 kHz mono 16-bit WAV file."""
        out = io.BytesIO()
        with wave.open(out, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(SAMPLE_RATE)
            wav.writeframes(self.recording().tobytes())
        return out.getvalue()

    def _push(self, samples: np.ndarray) -> list[StreamEvent]:
        if samples.size == 0:
            return []
        limit = int(self.options.max_duration_s * SAMPLE_RATE)
        if self._received + samples.size > limit:
            raise StreamTooLongError(
                f"The stream is longer than the maximum of {self.options.max_duration_s:g} s."
            )
        self._received += samples.size
        if self.options.keep_recording:
            self._recording.append(to_pcm16(samples).astype(np.int16))
        self._buffer = np.concatenate([self._buffer, samples])
        events: list[StreamEvent] = []
        if self._wake is not None:
            events += [
                WakeEvent(time=round(d.time_s, _ROUND), score=round(d.score, 4), phrase=d.phrase)
                for d in self._wake.feed(samples)
            ]
        for turn in self._endpointer.push(samples):
            events += self._turn_events(turn)
        self._trim()
        return events

    def _turn_events(self, turn: Any) -> list[StreamEvent]:
        if turn.kind == "start":
            self._utterance = _Utterance(last_partial_at=self._endpointer.segment_start)
            return [VadEvent(state="start", time=round(turn.time, _ROUND))]
        self._utterance = None
        if turn.kind == "end" and turn.span is not None:
            samples = self._slice(turn.span.start_sample, turn.span.end_sample)
            self._pending.append((turn.span, turn.time, samples))
            if self._endpointer.in_speech:  # cut at the maximum length: speech goes on
                self._utterance = _Utterance(last_partial_at=self._endpointer.segment_start)
                return []
        return [VadEvent(state="end", time=round(turn.time, _ROUND))]

    def _slice(self, start: int, end: int) -> np.ndarray:
        a, b = start - self._buffer_start, end - self._buffer_start
        return self._buffer[max(a, 0) : max(b, 0)].copy()

    def _trim(self) -> None:
        """Keep only what an utterance may still need: the buffer stays bounded."""
        ep = self._endpointer
        keep_from = ep.segment_start if ep.in_speech else self._received - ep.pad - ep.endpoint
        drop = keep_from - self._buffer_start
        if drop > 0:
            self._buffer = self._buffer[drop:]
            self._buffer_start += drop

    def _finalise_pending(self) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        while self._pending:
            span, speech_end, samples = self._pending.pop(0)
            early, self._speculation = self._speculation, None
            # a speculation is made with nothing pending and dropped by the next final, so the
            # span alone says whether it is this segment
            if early is not None and early.span == span:
                final = early
            else:
                self._discarded += early is not None
                final = self._final(span, samples)
            self._context = final.context
            self._segments += 1
            self._speech_s += span.end - span.start
            segment, compute_s = final.result.segment, final.compute_s
            if self._speakers is not None:
                # only sent segments update the voices heard (a discarded speculation never does)
                started = time.perf_counter()
                segment = segment.with_speaker(self._speakers.assign(samples))
                labelling = time.perf_counter() - started
                compute_s += labelling
                self._compute_s += labelling
            events.append(
                SegmentEvent(
                    segment=segment,
                    speech_end=round(speech_end, _ROUND),
                    compute_s=round(compute_s, _ROUND),
                    speculative=final is early,
                )
            )
        return events

    def _speculate(self) -> None:
        """In a pause whose trailing pad is in: make the segment it would end, ahead of time."""
        span = self._endpointer.span_if_ended()
        if span is None:
            return
        if self._speculation is not None:
            if self._speculation.span == span:
                return
            self._discarded += 1  # speech resumed after an earlier pause of this utterance
        samples = self._slice(span.start_sample, span.end_sample)
        self._speculation = self._final(span, samples)

    def _end_early(self) -> list[StreamEvent]:
        """End the open utterance at its pause when its speculative final ends a sentence."""
        early = self._speculation
        if early is None or not _SENTENCE_END.search(early.result.segment.text):
            return []
        events: list[StreamEvent] = []
        for turn in self._endpointer.end_pause():
            events += self._turn_events(turn)
        return events + self._finalise_pending()

    def _final(self, span: SpeechSpan, samples: np.ndarray) -> _Final:
        """The models' pass over one final segment (in the stream's current context)."""
        started = time.perf_counter()
        window, context = None, self._context
        if self.options.final_window == "fit":
            # In a short window the previous text as prompt pulls the decoder off short speech
            # (JFK's "ask not" becomes "is not"; without the prompt it is right, and faster).
            window = fitted_window(samples.size)
            context = dataclasses.replace(context, previous_tokens=())
        result, context = self.analyzer.analyze_span(
            samples, span, self._segments, context, window, self._final_decoder
        )
        elapsed = time.perf_counter() - started
        self._compute_s += elapsed
        return _Final(span, result, context, elapsed)

    def _maybe_partial(self) -> list[StreamEvent]:
        ep, utterance = self._endpointer, self._utterance
        if utterance is None or not ep.in_speech or ep.pausing:
            return []  # in a pause the text will not change; keep the CPU for the final
        heard = ep.position
        interval = int(self.options.partial_interval_s * SAMPLE_RATE)
        if heard - utterance.last_partial_at < interval:
            return []
        if heard - ep.segment_start < _MIN_PARTIAL_S * SAMPLE_RATE:
            return []
        utterance.last_partial_at = heard
        samples = self._slice(ep.segment_start, heard)
        started = time.perf_counter()
        words = self._hypothesis(samples)
        self._compute_s += time.perf_counter() - started
        n_stable = len(utterance.stable)
        extends = local_agreement(utterance.stable, words) == n_stable
        agreed = local_agreement(utterance.previous, words)
        if extends and agreed > n_stable:
            # committed words never change; the new hypothesis only adds to them
            utterance.stable = utterance.stable + words[n_stable:agreed]
        utterance.previous = words
        unstable = words[len(utterance.stable) :] if extends else []
        self._partials += 1
        return [
            PartialEvent(
                segment_id=self._segments,
                start=round(ep.segment_start / SAMPLE_RATE, _ROUND),
                end=round(heard / SAMPLE_RATE, _ROUND),
                stable=" ".join(utterance.stable),
                unstable=" ".join(unstable),
            )
        ]

    def _hypothesis(self, samples: np.ndarray) -> list[str]:
        """Greedy text of ``samples`` from an encoder window just longer than the audio."""
        transcriber = self._partial_transcriber
        window = fitted_window(samples.size, _PARTIAL_WINDOW_MARGIN_FRAMES)
        encoded = transcriber.encode(samples, window_frames=window)
        language = self._context.language or self._context.running_language
        probability = 1.0
        if language is None:
            language, probability = transcriber.detect_language(encoded)[0]
        max_tokens = int(samples.size / SAMPLE_RATE * _PARTIAL_TOKENS_PER_S) + _PARTIAL_TOKENS_SLACK
        transcript = transcriber.transcribe(
            encoded, language, probability, 0.0, max_new_tokens=max_tokens, fallback=False
        )
        return transcript.text.split()
