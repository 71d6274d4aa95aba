"""One plain sentence that says what an explanation found, for a reader who is no expert.

Built only from figures the explanation already holds: the window with the largest Shapley
value (and the words said in it) and the prosody change that lowered the predicted emotion's
probability most. For example: *The model heard anger (71 %) mostly in "ask what you can do"
(7.2–8.6 s); lowering the pitch by 2 semitones would make it less sure (71 % → 52 %).*
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from emotivoice.results import Word

if TYPE_CHECKING:
    from emotivoice.explain.attribution import TimeAttribution
    from emotivoice.explain.counterfactual import CounterfactualReport

__all__ = ["plain_summary"]

# What each counterfactual transform does, as a reader would say it.
_CHANGES = {
    "pitch +2 st": "raising the pitch by 2 semitones",
    "pitch -2 st": "lowering the pitch by 2 semitones",
    "energy +6 dB": "speaking 6 dB louder",
    "energy -6 dB": "speaking 6 dB softer",
    "tempo +15%": "speaking 15 % faster",
    "tempo -15%": "speaking 15 % slower",
    "tilt brighter": "a brighter voice (more high frequencies)",
    "tilt darker": "a darker voice (fewer high frequencies)",
}
_NOTABLE_DROP = 0.02  # a change that lowers the probability by less is "no change"
_QUOTE_WORDS = 8


def plain_summary(
    predicted: str,
    probability: float,
    attribution: TimeAttribution | None,
    counterfactual: CounterfactualReport | None,
    words: Sequence[Word] = (),
) -> str:
    """The sentence for one segment: where the emotion was heard, what would weaken it.

    Args:
        predicted: the explained emotion; ``probability`` its probability.
        attribution: window attributions in the recording's time (``None``: not computed).
        counterfactual: the prosody counterfactuals (``None``: not computed).
        words: the segment's words, in the recording's time.
    """
    sentence = f"The model heard {predicted} ({probability:.0%})"
    where = _where(attribution, words)
    sentence += f" mostly in {where}" if where else ""
    change = _weakest(counterfactual, probability)
    if change:
        sentence += f"; {change}"
    return sentence + "."


def _where(attribution: TimeAttribution | None, words: Sequence[Word]) -> str:
    if attribution is None or not attribution.windows:
        return ""
    best = max(attribution.windows, key=lambda w: w.shapley)
    if best.shapley <= 0:
        return ""
    said = [w.text.strip() for w in words if w.end > best.start and w.start < best.end]
    said = [w for w in said if w]
    span = f"({best.start:.1f}–{best.end:.1f} s)"
    if not said:
        return span
    quote = " ".join(said[:_QUOTE_WORDS]) + (" …" if len(said) > _QUOTE_WORDS else "")
    return f"“{quote}” {span}"


def _weakest(counterfactual: CounterfactualReport | None, probability: float) -> str:
    if counterfactual is None or not counterfactual.counterfactuals:
        return ""
    target = counterfactual.target
    change = min(counterfactual.counterfactuals, key=lambda c: c.deltas[target])
    drop = change.deltas[target]
    if drop > -_NOTABLE_DROP:
        return "no change of pitch, loudness, tempo or timbre made it much less sure"
    what = _CHANGES.get(change.name, change.name)
    after = change.probabilities[target]
    return f"{what} would make it less sure ({probability:.0%} → {after:.0%})"
