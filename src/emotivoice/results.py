"""Result model: frozen dataclasses from an analysis down to its words, and their JSON form.

A leaf module: every dataclass an analysis is made of lives here (the audio description, the
acoustic features, the emotion scores and their granular/complex emotions), so the stages
import their result types from here and nothing here imports a stage.

The JSON form (``Analysis.to_dict()``) is versioned by :data:`SCHEMA_VERSION` and described by
the JSON Schema in ``emotivoice/schema/analysis.schema.json`` (:func:`analysis_json_schema`).
Later stages add optional keys (``emotion``, ``explanations``) without breaking readers.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from emotivoice.errors import InvalidResultError

__all__ = [
    "N_MFCC",
    "SCHEMA_VERSION",
    "AcousticFeatures",
    "Analysis",
    "AudioInfo",
    "ComplexEmotion",
    "EmotionScores",
    "EmotionUnit",
    "FileEmotion",
    "GranularEmotion",
    "LanguageShare",
    "ModelSettings",
    "Segment",
    "SpeakerSummary",
    "TimelinePoint",
    "Word",
    "analysis_json_schema",
    "load_analysis",
]

#: 1.1 added speakers (``speaker``/``channel`` on segments and words, ``speakers`` per analysis,
#: ``model.diarization``); 1.0 files still load, with no speakers. 1.2 added ``low_confidence`` on
#: segments; older files load with it false. 1.3 added sentence-level ``units`` and the sliding
#: window ``timeline`` on segments, arousal/valence/intensity on emotions, a ``level`` on granular
#: emotions and ``confidence``/``uncertain`` on the file's emotion; older files load without them.
SCHEMA_VERSION = "1.3"
N_MFCC = 13  # MFCC means per segment (features.py computes them)


@dataclass(frozen=True)
class AudioInfo:
    """What the input was before EmotiVoice converted it.

    Attributes:
        format: container format (``wav``, ``flac``, ``mp3``, ``ogg``, ``m4a``, ``webm``, ...;
            ``array`` for numpy input).
        codec: audio codec name (``pcm_s16le``, ``opus``, ``aac``, ...).
        sample_rate: original sample rate in Hz.
        channels: original number of channels.
        duration: decoded duration in seconds.
        name: file name, or ``<bytes>`` / ``<array>``.
    """

    format: str
    codec: str
    sample_rate: int
    channels: int
    duration: float
    name: str


@dataclass(frozen=True)
class AcousticFeatures:
    """Prosody and voice quality of one segment (units in the field names; see module doc)."""

    f0_mean_hz: float | None
    f0_std_hz: float | None
    f0_min_hz: float | None
    f0_max_hz: float | None
    f0_range_semitones: float | None
    voiced_fraction: float
    rms_mean: float
    energy_db_mean: float
    energy_db_std: float
    speaking_rate_wps: float | None
    syllable_rate_sps: float | None
    spectral_centroid_hz: float
    zero_crossing_rate: float
    mfcc_means: tuple[float, ...]
    jitter_local: float | None
    shimmer_local: float | None
    hnr_db: float | None
    f1_hz: float | None
    f2_hz: float | None
    f2_f1_ratio: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (``mfcc_means`` as a list)."""
        data = dataclasses.asdict(self)
        data["mfcc_means"] = list(self.mfcc_means)
        return data

    def to_row(self) -> dict[str, float | None]:
        """Flat mapping for tables: ``mfcc_means`` becomes ``mfcc_means_1`` … ``mfcc_means_13``."""
        row: dict[str, float | None] = {}
        for name, value in self.to_dict().items():
            if name == "mfcc_means":
                row.update({f"mfcc_means_{i + 1}": v for i, v in enumerate(value)})
            else:
                row[name] = value
        return row

    @staticmethod
    def column_names() -> list[str]:
        """The keys of :meth:`to_row`, in order (for a table header with no rows)."""
        names: list[str] = []
        for field in dataclasses.fields(AcousticFeatures):
            if field.name == "mfcc_means":
                names += [f"mfcc_means_{i + 1}" for i in range(N_MFCC)]
            else:
                names.append(field.name)
        return names


#: How each feature of :class:`AcousticFeatures` is named for a reader (reports, plots, the UI)
FEATURE_LABELS: dict[str, str] = {
    "f0_mean_hz": "pitch mean (Hz)",
    "f0_std_hz": "pitch spread (Hz)",
    "f0_min_hz": "pitch min (Hz)",
    "f0_max_hz": "pitch max (Hz)",
    "f0_range_semitones": "pitch range (st)",
    "voiced_fraction": "voiced share",
    "rms_mean": "RMS level",
    "energy_db_mean": "energy (dB)",
    "energy_db_std": "energy spread (dB)",
    "speaking_rate_wps": "words/s",
    "syllable_rate_sps": "syllables/s",
    "spectral_centroid_hz": "spectral centroid (Hz)",
    "zero_crossing_rate": "zero-crossing rate",
    "jitter_local": "jitter",
    "shimmer_local": "shimmer",
    "hnr_db": "HNR (dB)",
    "f1_hz": "formant F1 (Hz)",
    "f2_hz": "formant F2 (Hz)",
    "f2_f1_ratio": "F2/F1 ratio",
}


@dataclass(frozen=True)
class GranularEmotion:
    """A fine-grained emotion: the base emotion it refines, at one intensity ``level``
    (``low``, ``medium``, ``high``; ``None`` in files before schema 1.3), and its own score in
    [0, 1] (the base probability × how clearly the level fits)."""

    name: str
    base: str
    confidence: float
    level: str | None = None


@dataclass(frozen=True)
class ComplexEmotion:
    """A blend of two base emotions (e.g. happiness + surprise → elation)."""

    name: str
    components: tuple[str, str]
    confidence: float


@dataclass(frozen=True)
class EmotionScores:
    """The emotion of one segment.

    Attributes:
        probabilities: calibrated probability per base emotion (sums to 1).
        dominant: the most probable base emotion; ``confidence`` its probability.
        uncertain: top probability below the threshold, or a stretch under ``short_segment_s``.
        short: the stretch is shorter than ``short_segment_s``.
        primary, secondary: the granular emotion of the most probable and of the second most
            probable base emotion (each when probable enough; at most one each); complex: the
            blend of those two when both are probable.
        arousal, valence, intensity: the dimensions in [0, 1] (calibrated probabilities of high
            arousal, positive valence and a strong expression); ``None`` when the backend has
            no dimension head.
    """

    probabilities: dict[str, float]
    dominant: str
    confidence: float
    uncertain: bool
    short: bool
    primary: tuple[GranularEmotion, ...]
    secondary: tuple[GranularEmotion, ...]
    complex: tuple[ComplexEmotion, ...]
    arousal: float | None = None
    valence: float | None = None
    intensity: float | None = None


@dataclass(frozen=True)
class EmotionUnit:
    """A sentence-level stretch of a segment (cut at sentence ends and pauses in the words) and
    its emotion, scored on the unit's own audio.

    Attributes:
        start, end: times in seconds; a segment's units cover it end to end.
        text: the words of the unit.
        emotion: its emotion.
    """

    start: float
    end: float
    text: str
    emotion: EmotionScores

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start


@dataclass(frozen=True)
class TimelinePoint:
    """Base-emotion probabilities (and arousal and valence, when the backend has them) of one
    sliding window of speech (or, in files before schema 1.3, of one smoothed segment)."""

    start: float
    end: float
    probabilities: dict[str, float]
    dominant: str
    arousal: float | None = None
    valence: float | None = None


@dataclass(frozen=True)
class FileEmotion:
    """File-level emotion.

    Attributes:
        backend: the emotion model.
        distribution: base-emotion probabilities weighted by the duration of each sentence-level
            unit (of each segment in files before schema 1.3).
        dominant: the most probable base emotion of the distribution; ``confidence`` its share.
        uncertain: the distribution's top share is below the uncertainty threshold: no emotion
            stands out.
        timeline: sliding windows over the speech, in time order.
        arousal, valence, intensity: duration-weighted means of the units' dimensions.
    """

    backend: str
    distribution: dict[str, float]
    dominant: str
    timeline: tuple[TimelinePoint, ...]
    confidence: float = 0.0
    uncertain: bool = False
    arousal: float | None = None
    valence: float | None = None
    intensity: float | None = None

    @property
    def summary(self) -> str:
        """``anger 63 %``, or ``uncertain (anger 38 %)`` when no emotion stands out."""
        text = f"{self.dominant} {self.confidence:.0%}".replace("%", " %")
        return f"uncertain ({text})" if self.uncertain else text


@dataclass(frozen=True)
class Word:
    """A word with absolute start/end times (s), Whisper's probability for it and its speaker
    (``None`` without diarization)."""

    start: float
    end: float
    text: str
    probability: float
    speaker: str | None = None


@dataclass(frozen=True)
class Segment:
    """One stretch of speech found by voice activity detection.

    Attributes:
        id: position in the file, from 0.
        start: start time in seconds.
        end: end time in seconds.
        text: the transcript of the segment.
        language: ISO code of the segment's language.
        language_probability: Whisper's probability for that language (1.0 when forced).
        avg_logprob: mean token log-probability of the transcript.
        no_speech_prob: Whisper's probability that the segment holds no speech.
        words: the words with their times.
        features: acoustic and voice-quality features of the segment's audio.
        emotion: base-emotion probabilities, dimensions, granular and complex emotions and
            uncertainty of the whole segment.
        units: the segment's sentence-level units, each with its own emotion (the whole segment
            is one unit when it holds one sentence); empty without emotion.
        timeline: the segment's sliding emotion windows (see ``EmotionOptions.window_s``).
        speaker: who speaks (``SPEAKER_1``, ...); ``None`` without diarization.
        channel: the recording's channel the segment was heard on, when channels were analysed
            apart (stereo calls); ``None`` otherwise.
        low_confidence: Whisper's transcript failed its own checks (repetitive text or a low
            mean token log-probability at every temperature tried within the segment's time
            budget, or it ran into the token cap): treat the text as a guess. Typical of noisy
            speech or a language the model handles poorly.
    """

    id: int
    start: float
    end: float
    text: str
    language: str
    language_probability: float
    avg_logprob: float
    no_speech_prob: float
    words: tuple[Word, ...]
    features: AcousticFeatures | None
    emotion: EmotionScores | None = None
    speaker: str | None = None
    channel: int | None = None
    low_confidence: bool = False
    units: tuple[EmotionUnit, ...] = ()
    timeline: tuple[TimelinePoint, ...] = ()

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start

    @property
    def emotion_units(self) -> tuple[EmotionUnit, ...]:
        """The units whose emotion was scored: :attr:`units`, or the whole segment as one unit
        (a file before schema 1.3); empty without emotion."""
        if self.units or self.emotion is None:
            return self.units
        return (EmotionUnit(self.start, self.end, self.text, self.emotion),)

    def with_speaker(self, speaker: str | None, channel: int | None = None) -> Segment:
        """This segment, and each of its words, labelled as said by ``speaker``."""
        words = tuple(dataclasses.replace(w, speaker=speaker) for w in self.words)
        return dataclasses.replace(self, speaker=speaker, channel=channel, words=words)


@dataclass(frozen=True)
class LanguageShare:
    """How much of the file's speech is in one language."""

    language: str
    speech_seconds: float
    share: float


@dataclass(frozen=True)
class SpeakerSummary:
    """One speaker of a recording: how much, how and in what mood they spoke.

    Attributes:
        id: the label on segments and words (``SPEAKER_1`` is the first to speak, or the first
            channel of a split stereo recording).
        channel: the channel this speaker was recorded on (split channels), else ``None``.
        talk_time_s: seconds of this speaker's segments.
        share: ``talk_time_s`` as a share of all speakers' talk time.
        turns: runs of consecutive segments by this speaker (in time order).
        interruptions: turns this speaker started while another speaker was still talking.
        overlap_s: seconds this speaker talked at the same time as another one.
        words: number of transcribed words.
        speaking_rate_wps: words per second of this speaker's speech.
        f0_mean_hz, f0_std_hz: pitch mean and spread over the speaker's voiced speech.
        emotion: the speaker's duration-weighted emotion distribution and timeline.
    """

    id: str
    channel: int | None
    talk_time_s: float
    share: float
    turns: int
    interruptions: int
    overlap_s: float
    words: int
    speaking_rate_wps: float | None
    f0_mean_hz: float | None
    f0_std_hz: float | None
    emotion: FileEmotion | None = None


@dataclass(frozen=True)
class ModelSettings:
    """Which model and settings produced an analysis."""

    whisper_model: str
    device: str
    compute_type: str
    beam_size: int
    language_forced: bool
    emotion_model: str | None = None
    diarization: str | None = None


@dataclass(frozen=True)
class Analysis:
    """The analysis of one recording.

    Attributes:
        schema_version: version of the JSON form.
        emotivoice_version: version of the software that produced it.
        created_at: ISO 8601 time (UTC) the analysis finished.
        source: the input's original format, sample rate, channels and duration.
        duration: length of the decoded recording in seconds.
        language: the language spoken longest, ``None`` without speech.
        languages: speech time per language, longest first.
        segments: the speech segments in time order; empty for silence.
        model: model and settings used.
        processing_time_s: wall time of the analysis.
        emotion: the file's emotion distribution (weighted by unit duration) and timeline.
        speakers: per-speaker talk time, turns, prosody and emotion; empty without diarization.
    """

    schema_version: str
    emotivoice_version: str
    created_at: str
    source: AudioInfo
    duration: float
    language: str | None
    languages: tuple[LanguageShare, ...]
    segments: tuple[Segment, ...]
    model: ModelSettings
    processing_time_s: float
    emotion: FileEmotion | None = None
    speakers: tuple[SpeakerSummary, ...] = ()

    @property
    def text(self) -> str:
        """The whole transcript, segments joined by spaces."""
        return " ".join(s.text for s in self.segments if s.text)

    @property
    def speech_duration(self) -> float:
        """Seconds of speech found by voice activity detection."""
        return sum(s.duration for s in self.segments)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form, valid against :func:`analysis_json_schema`."""
        data = asdict(self)
        data["text"] = self.text
        return data

    def to_json(self, indent: int | None = 2) -> str:
        """The JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Any) -> Analysis:
        """The analysis of a :meth:`to_dict` mapping (keys it does not know, such as ``text``
        or ``explanations``, are ignored; optional ones may be missing).

        Raises:
            InvalidResultError: ``data`` is not such a mapping, or has missing or mistyped fields.
        """
        return _build(cls, data, "analysis")


def load_analysis(path: str | Path) -> Analysis:
    """An analysis saved as JSON (``analysis.json``, ``emotivoice analyze --format json``).

    Raises:
        InvalidResultError: the file is missing, not JSON or not an EmotiVoice analysis.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InvalidResultError(f"Cannot read an analysis from {path}: {error}") from None
    return Analysis.from_dict(data)


def _build(tp: Any, value: Any, where: str) -> Any:
    """``value`` (JSON data) as type ``tp``: result dataclasses, tuples, optionals, dicts and
    scalars; anything else is an :class:`InvalidResultError` naming the field."""

    def wrong(expected: str) -> InvalidResultError:
        return InvalidResultError(
            f"Not an EmotiVoice analysis: {where} should be {expected}, not {value!r:.60}"
        )

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _build(inner, value, where)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise wrong("an object")
        hints = typing.get_type_hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = _build(hints[f.name], value[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING:
                raise InvalidResultError(f"Not an EmotiVoice analysis: {where}.{f.name} is missing")
        return tp(**kwargs)
    if origin is tuple:
        if not isinstance(value, list):
            raise wrong("a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise wrong(f"a list of {len(args)}")
        return tuple(
            _build(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise wrong("an object")
        return {str(k): _build(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp in (str, int, bool) and type(value) is tp:
        return value
    raise wrong(getattr(tp, "__name__", str(tp)))


@cache
def analysis_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of :meth:`Analysis.to_dict`."""
    text = resources.files("emotivoice").joinpath("schema/analysis.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema
