"""The reply style follows how the user spoke: real emotional speech, the real engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from emotivoice.assistant.memory import turn_context, voice_line
from emotivoice.assistant.style import STYLE_RULES, STYLES, choose_style
from emotivoice.assistant.turns import Prosody, UserEmotion, Utterance


def heard(analyzer, path: Path) -> Utterance:  # type: ignore[no-untyped-def]
    analysis = analyzer.analyze(path)
    assert len(analysis.segments) == 1
    return Utterance.from_segment(analysis.segments[0])


@pytest.mark.slow
def test_emotion_reaches_the_prompt_and_changes_the_style(analyzer, clips) -> None:  # type: ignore[no-untyped-def]
    angry, sad, neutral = (heard(analyzer, clips[n]) for n in ("angry", "sad", "neutral"))
    assert "door" in angry.text.lower() and "door" in neutral.text.lower()
    styles = {
        name: choose_style(u) for name, u in [("angry", angry), ("sad", sad), ("neutral", neutral)]
    }
    assert styles["angry"][0].name == "calm"
    assert styles["sad"][0].name == "warm"
    assert styles["neutral"][0].name == "brisk"
    for utterance, (style, _) in [(angry, styles["angry"]), (neutral, styles["neutral"])]:
        prompt = turn_context(style, utterance)
        voice = utterance.voice_fields()
        assert voice_line(voice) in prompt.splitlines()
        assert utterance.emotion is not None and utterance.prosody is not None
        assert voice["emotion"] == utterance.emotion.dominant
        assert voice["confidence"] == round(utterance.emotion.confidence, 1)
        assert voice["arousal"] == round(utterance.emotion.arousal or 0, 1)
        assert voice["pitch_hz"] == round(utterance.prosody.pitch_mean_hz or 0)
        assert style.instruction in prompt
    # the angry and the neutral reading of the same sentence are told apart in the fields
    assert angry.emotion and neutral.emotion
    assert angry.emotion.arousal is not None and neutral.emotion.arousal is not None
    assert angry.emotion.arousal > neutral.emotion.arousal + 0.5


def utterance(dominant: str, confidence: float, arousal: float, valence: float) -> Utterance:
    emotion = UserEmotion(dominant, confidence, False, arousal, valence, 0.5)
    return Utterance("hello", emotion=emotion, prosody=Prosody(150.0, 4.0, 2.0, -30.0))


@pytest.mark.parametrize(
    ("emotion", "expected"),
    [
        (utterance("anger", 0.9, 0.9, 0.1), "calm"),
        (utterance("anger", 0.3, 0.9, 0.1), "calm"),  # unsure label, but tense dimensions
        (utterance("sadness", 0.8, 0.2, 0.1), "warm"),
        (utterance("neutral", 0.4, 0.3, 0.2), "warm"),  # low and negative
        (utterance("happiness", 0.9, 0.9, 0.9), "brisk"),
        (Utterance("no emotion analysis"), "brisk"),
    ],
)
def test_the_rule_table(emotion: Utterance, expected: str) -> None:
    style, reason = choose_style(emotion)
    assert style.name == expected
    assert reason in {rule.reason for rule in STYLE_RULES}


def test_calm_is_slower_and_lower_than_brisk() -> None:
    assert STYLES["calm"].rate < STYLES["brisk"].rate
    assert STYLES["calm"].pitch < STYLES["brisk"].pitch
