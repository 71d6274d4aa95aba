"""The reply style, chosen from how the user spoke, and what it changes: the instruction the
language model gets and the TTS speaking rate and pitch.

The choice is a small rule table (:data:`STYLE_RULES`), read top to bottom, first match wins.
It reads the structured emotion of the user's utterance (the dominant label counts only when
the head is confident of it; the arousal/valence dimensions count on their own) and its
speaking rate. The rule that fired is kept as the turn's ``style_reason``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from emotivoice.assistant.turns import Utterance

__all__ = ["STYLES", "STYLE_RULES", "ReplyStyle", "StyleRule", "choose_style"]


@dataclass(frozen=True)
class ReplyStyle:
    """How the assistant answers.

    Attributes:
        name: ``calm``, ``warm`` or ``brisk``.
        rate: TTS speaking rate (1.0 the voice's own; larger is faster).
        pitch: TTS pitch factor (1.0 the voice's own; Piper voices ignore it).
        instruction: what the system prompt asks of the model.
    """

    name: str
    rate: float
    pitch: float
    instruction: str


STYLES: dict[str, ReplyStyle] = {
    "calm": ReplyStyle(
        "calm",
        rate=0.9,
        pitch=0.9,
        instruction="The user sounds tense. Answer calmly and reassuringly, slowly, in short "
        "sentences.",
    ),
    "warm": ReplyStyle(
        "warm",
        rate=0.95,
        pitch=1.05,
        instruction="The user sounds low. Answer warmly and kindly, with encouragement.",
    ),
    "brisk": ReplyStyle(
        "brisk",
        rate=1.1,
        pitch=1.0,
        instruction="Answer briskly and to the point.",
    ),
}

CONFIDENT = 0.5  # a dominant label below this probability is not trusted on its own
_HIGH_AROUSAL = 0.65
_LOW_VALENCE = 0.35
_FAST_SPEECH_WPS = 3.5


@dataclass(frozen=True)
class StyleRule:
    """One row of the style table: when ``applies`` holds, the reply is ``style``."""

    style: str
    reason: str
    applies: Callable[[Utterance], bool]


def _label(utterance: Utterance, *labels: str) -> bool:
    e = utterance.emotion
    return e is not None and not e.uncertain and e.confidence >= CONFIDENT and e.dominant in labels


def _tense(utterance: Utterance) -> bool:
    e = utterance.emotion
    return (
        e is not None
        and e.arousal is not None
        and e.valence is not None
        and e.arousal >= _HIGH_AROUSAL
        and e.valence <= _LOW_VALENCE
    )


def _low(utterance: Utterance) -> bool:
    e = utterance.emotion
    return (
        e is not None
        and e.arousal is not None
        and e.valence is not None
        and e.arousal < _HIGH_AROUSAL
        and e.valence <= _LOW_VALENCE
    )


def _fast(utterance: Utterance) -> bool:
    p = utterance.prosody
    return p is not None and (p.speaking_rate_wps or 0.0) >= _FAST_SPEECH_WPS


#: the table, first match wins (docs/assistant.md shows it)
STYLE_RULES: tuple[StyleRule, ...] = (
    StyleRule("calm", "confident anger or fear", lambda u: _label(u, "anger", "fear")),
    StyleRule("warm", "confident sadness", lambda u: _label(u, "sadness")),
    StyleRule("calm", "high arousal, negative valence", _tense),
    StyleRule("warm", "low arousal, negative valence", _low),
    StyleRule("brisk", "fast speech", _fast),
    StyleRule("brisk", "default (neutral, happy, surprised or no emotion)", lambda u: True),
)


def choose_style(utterance: Utterance) -> tuple[ReplyStyle, str]:
    """The reply style for ``utterance`` and the reason (the rule of :data:`STYLE_RULES`)."""
    rule = next(r for r in STYLE_RULES if r.applies(utterance))
    return STYLES[rule.style], rule.reason
