"""What a conversation with the assistant is made of: the user's utterance as the engine heard it
(text, emotion, prosody), the reply, and where the time of each turn went.

Every class here is a frozen dataclass; ``to_dict`` gives the JSON of a turn's trace (the CLI's
``turn-NN.json`` and the ``turns.jsonl`` log).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from emotivoice.assistant.tools import ToolAction
from emotivoice.audio import SAMPLE_RATE
from emotivoice.results import Segment

__all__ = ["LatencyTrace", "Prosody", "Turn", "UserEmotion", "Utterance"]

_ROUND = 3


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), _ROUND)


@dataclass(frozen=True)
class UserEmotion:
    """The emotion of the user's utterance, as the engine's emotion head scored it.

    Attributes:
        dominant: one of the six base emotions (``anger``, ``fear``, ``happiness``,
            ``neutral``, ``sadness``, ``surprise``).
        confidence: the dominant emotion's calibrated probability.
        uncertain: the head's own flag: the scores are too flat to trust the dominant label.
        arousal, valence, intensity: the dimension probabilities in [0, 1] (``None`` when the
            backend has no dimension head).
    """

    dominant: str
    confidence: float
    uncertain: bool
    arousal: float | None = None
    valence: float | None = None
    intensity: float | None = None


@dataclass(frozen=True)
class Prosody:
    """A small prosody summary of the utterance (from the engine's acoustic features).

    Attributes:
        pitch_mean_hz: mean F0 of the voiced frames.
        pitch_range_semitones: spread of F0 (5th to 95th percentile).
        speaking_rate_wps: words per second.
        loudness_db: mean frame energy in dB.
    """

    pitch_mean_hz: float | None
    pitch_range_semitones: float | None
    speaking_rate_wps: float | None
    loudness_db: float | None


@dataclass(frozen=True)
class Utterance:
    """One thing the user said: a final segment of the live analysis.

    Attributes:
        text: the transcript.
        language: its language (ISO code).
        start, end: stream seconds of the segment (``end`` includes the VAD's trailing pad).
        emotion: the segment's emotion, ``None`` when emotion analysis is off.
        prosody: the segment's prosody summary, ``None`` when features are off.
    """

    text: str
    language: str = "en"
    start: float = 0.0
    end: float = 0.0
    emotion: UserEmotion | None = None
    prosody: Prosody | None = None

    @classmethod
    def from_segment(cls, segment: Segment) -> Utterance:
        """The utterance of a final segment (its emotion and prosody included)."""
        emotion = None
        if segment.emotion is not None:
            e = segment.emotion
            emotion = UserEmotion(
                dominant=e.dominant,
                confidence=round(e.confidence, _ROUND),
                uncertain=e.uncertain,
                arousal=_round(e.arousal),
                valence=_round(e.valence),
                intensity=_round(e.intensity),
            )
        prosody = None
        if segment.features is not None:
            f = segment.features
            prosody = Prosody(
                pitch_mean_hz=_round(f.f0_mean_hz),
                pitch_range_semitones=_round(f.f0_range_semitones),
                speaking_rate_wps=_round(f.speaking_rate_wps),
                loudness_db=_round(f.energy_db_mean),
            )
        return cls(
            text=segment.text.strip(),
            language=segment.language,
            start=segment.start,
            end=segment.end,
            emotion=emotion,
            prosody=prosody,
        )

    def voice_fields(self) -> dict[str, Any]:
        """How the user spoke, as the structured fields the language model is given: emotion
        label, confidence and dimensions (one decimal), pitch and speaking rate. Short keys and
        few digits, since every prompt token delays the reply's first token (each digit is a
        token to SmolLM2); ``None`` values are left out, ``uncertain`` appears only when true.
        """
        fields: dict[str, Any] = {}
        e, p = self.emotion, self.prosody
        if e is not None:
            fields |= {"emotion": e.dominant, "confidence": _short(e.confidence)}
            fields |= {"arousal": _short(e.arousal), "valence": _short(e.valence)}
            fields |= {"intensity": _short(e.intensity), "uncertain": e.uncertain or None}
        if p is not None:
            fields |= {"pitch_hz": _whole(p.pitch_mean_hz), "rate_wps": _short(p.speaking_rate_wps)}
        return {k: v for k, v in fields.items() if v is not None}


def _short(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _whole(value: float | None) -> int | None:
    return None if value is None else round(value)


@dataclass(frozen=True)
class LatencyTrace:
    """Where the time of one turn went: each figure is seconds after the end of the user's
    speech (the last speech sample, before the VAD's pause), ``None`` when the turn never got
    there (cut, or failed).

    Attributes:
        wake_s: seconds of input audio from the wake word's detection to the end of speech
            (``None`` without a wake stage).
        final_transcript_s: the final segment (text, emotion, prosody) was ready; it includes
            the pause that ends an utterance (``StreamOptions.endpoint_silence_ms``).
        first_token_s: the language model's first token.
        first_sentence_s: the first complete sentence was cut from the tokens.
        first_audio_s: the TTS had the first sentence's audio.
        playback_start_s: that audio was handed to the speaker: the voice-to-voice time.
        reply_done_s: the last sentence finished playing (or was cut).
        tokens: text pieces the model streamed (one per token for the local model; a server
            that does not stream sends one).
        barge_in_stop_s: for a cut reply: playback stopped this long after the user's new
            speech began (its first speech sample), or after the stop request of
            :meth:`~emotivoice.assistant.pipeline.Assistant.interrupt`.
        barge_in_cancel_s: for a cut reply: the generation had stopped (the model's thread
            returned) this long after the user's new speech began (or the stop request).
        tools_s: the time the turn's browser actions took together (``None``: no action);
            the stages after the first tool call include it.
    """

    wake_s: float | None = None
    final_transcript_s: float | None = None
    first_token_s: float | None = None
    first_sentence_s: float | None = None
    first_audio_s: float | None = None
    playback_start_s: float | None = None
    reply_done_s: float | None = None
    tokens: int = 0
    barge_in_stop_s: float | None = None
    barge_in_cancel_s: float | None = None
    tools_s: float | None = None

    @property
    def voice_to_voice_s(self) -> float | None:
        """End of the user's speech → the reply's first audio handed to the speaker."""
        return self.playback_start_s

    def to_dict(self) -> dict[str, Any]:
        """The trace with every figure rounded to the millisecond."""
        out = {k: (_round(v) if isinstance(v, float) else v) for k, v in asdict(self).items()}
        out["voice_to_voice_s"] = _round(self.voice_to_voice_s)
        return out


@dataclass(frozen=True)
class Turn:
    """One exchange: what the user said and what the assistant answered.

    Attributes:
        index: 0 for the first turn of a conversation.
        user: the utterance.
        style: the reply style chosen from the user's voice (``calm``, ``warm``, ``brisk``).
        style_reason: the rule of the style table that chose it.
        reply: the text the model generated (up to the cut, for a cut reply).
        sentences: the sentences spoken (or started) in order.
        cut: the user spoke over the reply or stopped it: playback stopped, generation was
            cancelled.
        cut_by: what cut it: ``"barge_in"`` (the user's speech) or ``"interrupt"`` (a stop
            request: :meth:`~emotivoice.assistant.pipeline.Assistant.interrupt`, the web
            page's stop button); ``None`` for a reply that was not cut.
        error: ``{"code", "message"}`` when the model failed; the reply is then an apology.
        trace: where the time went.
        actions: the browser actions the model asked for, in order, refused and failed ones
            included (empty without the browser tool).
        audio: the reply's audio (16 kHz mono float32), as played (not in ``to_dict``).
    """

    index: int
    user: Utterance
    style: str
    style_reason: str
    reply: str
    sentences: tuple[str, ...]
    cut: bool
    trace: LatencyTrace
    error: dict[str, str] | None = None
    actions: tuple[ToolAction, ...] = ()
    cut_by: str | None = None
    audio: np.ndarray = field(
        default_factory=lambda: np.zeros(0, np.float32), repr=False, compare=False
    )

    def to_dict(self) -> dict[str, Any]:
        """The turn as JSON (its audio left out): user, voice fields, style, reply, browser
        actions, trace."""
        return {
            "index": self.index,
            "user": asdict(self.user),
            "voice_fields": self.user.voice_fields(),
            "style": self.style,
            "style_reason": self.style_reason,
            "reply": self.reply,
            "sentences": list(self.sentences),
            "cut": self.cut,
            "cut_by": self.cut_by,
            "error": self.error,
            "audio_s": round(self.audio.size / SAMPLE_RATE, _ROUND),
            "actions": [action.to_dict() for action in self.actions],
            "trace": self.trace.to_dict(),
        }
