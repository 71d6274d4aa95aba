"""``analyze()``: decode → VAD segments → Whisper encoder (once) → transcript + features.

The :class:`Analyzer` holds the loaded models and can be reused for many files; the module-level
:func:`analyze` is the one-call convenience.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from emotivoice._version import __version__
from emotivoice.audio import DEFAULT_MAX_DURATION_S, SAMPLE_RATE, Audio, AudioSource, load_audio
from emotivoice.diarization import (
    Diarization,
    DiarizationOptions,
    SpeakerTurn,
    find_speakers,
    merge_turns,
)
from emotivoice.diarization.summary import summarise_speakers
from emotivoice.emotion.backends import (
    EmotionAnalyzer,
    EmotionOptions,
    EmotionScores,
    FileEmotion,
)
from emotivoice.errors import InvalidConfigError
from emotivoice.features import AcousticFeatures, extract_features, with_speaking_rate
from emotivoice.results import (
    SCHEMA_VERSION,
    Analysis,
    LanguageShare,
    ModelSettings,
    Segment,
    TimelinePoint,
)
from emotivoice.segmentation import SpeechSpan, VadOptions, detect_speech
from emotivoice.transcription import (
    LANGUAGE_CONFIDENCE,
    EncodedSegment,
    SegmentTranscript,
    Transcriber,
    TranscriptionOptions,
)

__all__ = [
    "AnalyzeOptions",
    "Analyzer",
    "ProgressCallback",
    "SegmentContext",
    "SegmentResult",
    "analyze",
]

logger = logging.getLogger(__name__)

#: ``progress(done_seconds, total_seconds, message)``: called as segments finish.
ProgressCallback = Callable[[float, float, str], None]
_SECONDS_DECIMALS = 3


@dataclass(frozen=True)
class AnalyzeOptions:
    """Everything ``analyze`` can be told; change it with ``dataclasses.replace``.

    Attributes:
        transcription: Whisper model, language, beam, device.
        vad: voice activity detection and segment length.
        max_duration: longest accepted recording in seconds.
        features: compute acoustic features per segment.
        emotion: emotion recognition settings; ``None`` turns it off.
        diarization: who speaks when (speaker count, stereo channels); ``None`` turns it off
            and the recording is treated as one voice.
    """

    transcription: TranscriptionOptions = field(default_factory=TranscriptionOptions)
    vad: VadOptions = field(default_factory=VadOptions)
    max_duration: float = DEFAULT_MAX_DURATION_S
    features: bool = True
    emotion: EmotionOptions | None = field(default_factory=EmotionOptions)
    diarization: DiarizationOptions | None = field(default_factory=DiarizationOptions)

    @classmethod
    def from_kwargs(cls, **options: Any) -> AnalyzeOptions:
        """Build options from flat keywords (``language="de", beam_size=1, max_segment_s=10``).

        Raises:
            InvalidConfigError: an unknown keyword, naming the valid ones.
        """
        groups = {
            "transcription": {f.name for f in dataclasses.fields(TranscriptionOptions)},
            "vad": {f.name for f in dataclasses.fields(VadOptions)},
        }
        switches = {"emotion", "diarization"}
        own = {f.name for f in dataclasses.fields(cls)} - set(groups) - switches
        nested: dict[str, dict[str, Any]] = {name: {} for name in groups}
        top: dict[str, Any] = {}
        emotion: dict[str, Any] = {}
        diarization: dict[str, Any] = {}
        on = dict.fromkeys(switches, True)
        for key, value in options.items():
            group = next((g for g, names in groups.items() if key in names), None)
            if group is not None:
                nested[group][key] = value
            elif key in _EMOTION_KEYS:
                emotion[_EMOTION_KEYS[key]] = value
            elif key in _DIARIZATION_KEYS:
                diarization[_DIARIZATION_KEYS[key]] = value
            elif key in switches:
                on[key] = bool(value)
            elif key in own:
                top[key] = value
            else:
                valid = sorted(
                    own
                    | set(_EMOTION_KEYS)
                    | set(_DIARIZATION_KEYS)
                    | switches
                    | set().union(*groups.values())
                )
                raise InvalidConfigError(f"Unknown option {key!r}; valid options = {valid}")
        return cls(
            transcription=TranscriptionOptions(**nested["transcription"]),
            vad=VadOptions(**nested["vad"]),
            emotion=EmotionOptions(**emotion) if on["emotion"] else None,
            diarization=DiarizationOptions(**diarization) if on["diarization"] else None,
            **top,
        )


#: flat keyword → :class:`EmotionOptions` field
_EMOTION_KEYS = {
    "emotion_model": "model",
    "taxonomy": "taxonomy",
    "uncertain_below": "uncertain_below",
    "short_segment_s": "short_segment_s",
    "label_map": "label_map",
    "unit_min_s": "unit_min_s",
    "unit_max_s": "unit_max_s",
    "unit_pause_s": "unit_pause_s",
    "window_s": "window_s",
    "window_hop_s": "window_hop_s",
    "emotion_device": "device",
}

#: flat keyword → :class:`DiarizationOptions` field
_DIARIZATION_KEYS = {
    "speakers": "speakers",
    "min_speakers": "min_speakers",
    "max_speakers": "max_speakers",
    "channels": "channels",
    "diarization_backend": "backend",
    "diarization_threshold": "threshold",
}


@dataclass(frozen=True)
class SegmentContext:
    """What one segment's analysis hands to the next one.

    Attributes:
        language: the forced language (``None``: detect it per segment).
        running_language: the language of the preceding speech (carried over when a segment's
            own guess is unsure).
        previous_tokens: the preceding segment's tokens, Whisper's prompt for the next.
    """

    language: str | None = None
    running_language: str | None = None
    previous_tokens: tuple[int, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if self.running_language is None and self.language is not None:
            object.__setattr__(self, "running_language", self.language)


@dataclass(frozen=True, eq=False)
class SegmentResult:
    """A finished segment plus the intermediate data later stages reuse."""

    segment: Segment
    encoded: EncodedSegment
    span: SpeechSpan


class Analyzer:
    """Loads the models once and analyses any number of recordings."""

    def __init__(self, options: AnalyzeOptions | None = None) -> None:
        self.options = options or AnalyzeOptions()
        emotion = self.options.emotion
        self.emotion = EmotionAnalyzer(emotion) if emotion is not None else None
        transcription = self.options.transcription
        if (
            self.emotion is not None
            and self.emotion.backend.reads_encoder_states
            and transcription.encoder_window != "full"
        ):
            logger.info("The emotion head reads Whisper's final states: full encoder windows")
            transcription = dataclasses.replace(transcription, encoder_window="full")
            self.options = dataclasses.replace(self.options, transcription=transcription)
        self.transcriber = Transcriber(transcription)

    def load(self, source: AudioSource, sample_rate: int | None = None) -> Audio:
        """Decode ``source`` with this analyzer's duration limit (keeping the channels apart
        when diarization may analyse them one by one)."""
        diarization = self.options.diarization
        return load_audio(
            source,
            sample_rate=sample_rate,
            max_duration=self.options.max_duration,
            keep_channels=diarization is not None and diarization.channels != "mix",
        )

    def plan(self, audio: Audio) -> tuple[list[SpeakerTurn], Diarization | None]:
        """The segments to analyse: speech found by VAD, cut where the speaker changes.

        Returns:
            The segments (with their speaker and channel when diarization is on) in time order,
            and the diarization they came from.
        """
        vad, options = self.options.vad, self.options.diarization
        if options is None:
            return [SpeakerTurn(span, "") for span in detect_speech(audio.samples, vad)], None
        diarization = find_speakers(audio, vad, options)
        return merge_turns(diarization.turns, vad.max_segment_s, vad.merge_gap_s), diarization

    def iter_segments(
        self, audio: Audio, progress: ProgressCallback | None = None
    ) -> Iterator[SegmentResult]:
        """Analyse ``audio`` segment by segment, yielding each as soon as it is finished."""
        planned, diarization = self.plan(audio)
        if progress is not None:
            progress(
                0.0, audio.duration, f"{len(planned)} {_plural(len(planned), 'segment')} found"
            )
        context = SegmentContext(language=self.options.transcription.language)
        for index, turn in enumerate(planned):
            span = turn.span
            source = audio.samples if turn.channel is None else audio.channels[turn.channel]  # type: ignore[index]
            samples = source[span.start_sample : span.end_sample]
            result, context = self.analyze_span(samples, span, index, context)
            if diarization is not None:
                result = with_speaker(result, turn, diarization)
            if progress is not None:
                progress(span.end, audio.duration, f"segment {index + 1}/{len(planned)}")
            yield result

    def analyze_span(
        self,
        samples: np.ndarray,
        span: SpeechSpan,
        index: int,
        context: SegmentContext,
        window_frames: int | None = None,
    ) -> tuple[SegmentResult, SegmentContext]:
        """Analyse one speech span (its 16 kHz ``samples``) given what preceded it.

        This is the one place a segment is made, for batch analysis and for streaming alike.
        ``window_frames`` shortens the encoder window (see :meth:`Transcriber.encode`); the
        default, Whisper's full window, is what batch analysis uses.

        Returns:
            The finished segment and the context for the next span.
        """
        encoded = self.transcriber.encode(samples, window_frames)
        # The acoustic features and the emotion need only the audio and the encoder's input, not
        # the text: they run in a second thread while Whisper decodes (CTranslate2 leaves a core
        # free on a small CPU: decoding, features and emotion of a 4 s segment took 0.49 s instead
        # of 0.95 s one after the other on two cores).
        with ThreadPoolExecutor(1, thread_name_prefix="emotivoice-acoustics") as beside:
            acoustics = beside.submit(
                self._acoustics, samples, encoded, round(span.start, _SECONDS_DECIMALS)
            )
            running_language, previous_tokens = context.running_language, context.previous_tokens
            if context.language is None:
                language, probability = self._segment_language(encoded, running_language)
            else:
                language, probability = context.language, 1.0
            if language != running_language:
                previous_tokens = ()  # a prompt in another language pushes decoding into it
            transcript = self.transcriber.transcribe(
                encoded, language, probability, span.start, previous_tokens
            )
            features, emotion = acoustics.result()
        segment = self.make_segment(index, span, transcript, features, emotion)
        if self.emotion is not None and segment.emotion is not None:
            # units need the words: scored once the transcript is there
            units = self.emotion.score_units(
                samples, encoded, transcript.words, segment.start, segment.emotion
            )
            segment = dataclasses.replace(segment, units=units)
        following = dataclasses.replace(
            context, running_language=language, previous_tokens=transcript.tokens
        )
        return SegmentResult(segment=segment, encoded=encoded, span=span), following

    def _acoustics(
        self, samples: np.ndarray, encoded: EncodedSegment, start: float
    ) -> tuple[AcousticFeatures | None, tuple[EmotionScores, tuple[TimelinePoint, ...]] | None]:
        """What a segment's audio says without its text: features (no rates yet), the
        segment's emotion and its sliding windows."""
        features = extract_features(samples, SAMPLE_RATE) if self.options.features else None
        emotion = self.emotion.score_segment(samples, encoded, start) if self.emotion else None
        return features, emotion

    def _segment_language(
        self, encoded: EncodedSegment, running_language: str | None
    ) -> tuple[str, float]:
        ranked = self.transcriber.detect_language(encoded)
        language, probability = ranked[0]
        if probability < LANGUAGE_CONFIDENCE and running_language is not None:
            carried = dict(ranked).get(running_language, 0.0)
            logger.debug(
                "Unsure language %s (%.2f); keeping %s", language, probability, running_language
            )
            return running_language, carried
        return language, probability

    def make_segment(
        self,
        index: int,
        span: SpeechSpan,
        transcript: SegmentTranscript,
        features: AcousticFeatures | None,
        emotion: tuple[EmotionScores, tuple[TimelinePoint, ...]] | None,
    ) -> Segment:
        """The :class:`Segment` of a span from its stage results (features without rates yet:
        the words give them here; the emotion and its windows; units are added later)."""
        words = transcript.words
        if features is not None:
            features = with_speaking_rate(
                features,
                [w.text for w in words],
                words[-1].end - words[0].start if words else None,
                span.end - span.start,
            )
        return Segment(
            id=index,
            start=round(span.start, _SECONDS_DECIMALS),
            end=round(span.end, _SECONDS_DECIMALS),
            text=transcript.text,
            language=transcript.language,
            language_probability=round(transcript.language_probability, 4),
            avg_logprob=round(transcript.avg_logprob, 4),
            no_speech_prob=round(transcript.no_speech_prob, 4),
            words=transcript.words,
            features=features,
            emotion=emotion[0] if emotion is not None else None,
            timeline=emotion[1] if emotion is not None else (),
            low_confidence=transcript.low_confidence,
        )

    def analyze(
        self,
        source: AudioSource | Audio,
        *,
        sample_rate: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> Analysis:
        """Analyse one recording (a path, bytes, file object, array or decoded :class:`Audio`)."""
        started = time.perf_counter()
        audio = source if isinstance(source, Audio) else self.load(source, sample_rate)
        segments = tuple(r.segment for r in self.iter_segments(audio, progress))
        return self.assemble(audio, segments, time.perf_counter() - started)

    def assemble(self, audio: Audio, segments: tuple[Segment, ...], elapsed: float) -> Analysis:
        """Build the :class:`Analysis` of finished segments."""
        languages = _language_shares(segments)
        t = self.transcriber
        return Analysis(
            schema_version=SCHEMA_VERSION,
            emotivoice_version=__version__,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            source=audio.info,
            duration=round(audio.duration, _SECONDS_DECIMALS),
            language=languages[0].language if languages else None,
            languages=languages,
            segments=segments,
            model=ModelSettings(
                whisper_model=t.options.model,
                device=t.device,
                compute_type=t.compute_type,
                beam_size=t.options.beam_size,
                language_forced=t.options.language is not None,
                emotion_model=self.emotion.backend.name if self.emotion else None,
                diarization=self._diarization_method(segments),
            ),
            processing_time_s=round(elapsed, _SECONDS_DECIMALS),
            emotion=self._file_emotion(segments),
            speakers=summarise_speakers(segments, self._file_emotion),
        )

    def _diarization_method(self, segments: Sequence[Segment]) -> str | None:
        if self.options.diarization is None:
            return None
        if any(s.channel is not None for s in segments):
            return "channels"
        return self.options.diarization.backend

    def _file_emotion(self, segments: Sequence[Segment]) -> FileEmotion | None:
        if self.emotion is None:
            return None
        return self.emotion.summarise(segments)


def with_speaker(
    result: SegmentResult, turn: SpeakerTurn, diarization: Diarization
) -> SegmentResult:
    """``result`` with the turn's speaker and channel on the segment and each word (a word's
    speaker is whoever the diarization heard at the word's middle)."""
    segment = result.segment
    words = tuple(
        dataclasses.replace(
            w, speaker=diarization.speaker_at((w.start + w.end) / 2, turn.channel) or turn.speaker
        )
        for w in segment.words
    )
    labelled = dataclasses.replace(segment, speaker=turn.speaker, channel=turn.channel, words=words)
    return dataclasses.replace(result, segment=labelled)


def _language_shares(segments: tuple[Segment, ...]) -> tuple[LanguageShare, ...]:
    seconds: dict[str, float] = {}
    for s in segments:
        if s.text:
            seconds[s.language] = seconds.get(s.language, 0.0) + s.duration
    total = sum(seconds.values()) or 1.0
    return tuple(
        LanguageShare(language=lang, speech_seconds=round(sec, 3), share=round(sec / total, 4))
        for lang, sec in sorted(seconds.items(), key=lambda item: -item[1])
    )


def analyze(
    source: AudioSource,
    *,
    sample_rate: int | None = None,
    progress: ProgressCallback | None = None,
    **options: Any,
) -> Analysis:
    """Analyse one recording: transcript, language, segments, words and acoustic features.

    Args:
        source: a path, encoded bytes, a binary file object or a numpy array of samples.
        sample_rate: the sample rate of a numpy array.
        progress: optional ``progress(done_seconds, total_seconds, message)`` callback.
        **options: flat options, see :meth:`AnalyzeOptions.from_kwargs` (``language``, ``model``,
            ``beam_size``, ``device``, ``max_segment_s``, ``max_duration``, ``features``, ...).

    Returns:
        The :class:`~emotivoice.results.Analysis`.

    Raises:
        AudioError: the input is empty, not audio, corrupt, truncated or too long.
        InvalidConfigError: an unknown or invalid option.
        ModelNotFoundError: the model cannot be found.
    """
    analyzer = Analyzer(AnalyzeOptions.from_kwargs(**options))
    return analyzer.analyze(source, sample_rate=sample_rate, progress=progress)


def _plural(n: int, noun: str) -> str:
    return noun if n == 1 else f"{noun}s"
