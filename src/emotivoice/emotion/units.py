"""Sentence-level units and sliding windows: the stretches of a segment whose emotion is scored.

A transcription segment can hold several sentences said in different ways (an excited sentence,
then a disappointed one), so emotion is also scored per *unit*: a sentence or a stretch between
pauses, cut from the words' times. Units cover their segment end to end (a boundary sits in the
middle of the gap between two words), are at least ``min_s`` long (shorter ones join the
neighbour across the shorter gap) and at most ``max_s`` (longer ones are split at their longest
inner pause, or between the words nearest their middle).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from emotivoice.results import Word

# Characters that end a sentence (Latin, CJK, Arabic, Devanagari), after closing quotes/brackets.
_SENTENCE_ENDS = frozenset(".!?…。！？؟।")
_CLOSERS = "\"'”’»)]}"


@dataclass(frozen=True)
class UnitSpan:
    """One unit: its times (seconds, absolute) and its words' text."""

    start: float
    end: float
    text: str


def ends_sentence(word: str) -> bool:
    """Whether a word (as Whisper writes it, with its punctuation) ends a sentence."""
    stripped = word.strip().rstrip(_CLOSERS)
    return bool(stripped) and stripped[-1] in _SENTENCE_ENDS


def cut_units(
    words: Sequence[Word],
    start: float,
    end: float,
    min_s: float = 1.0,
    max_s: float = 8.0,
    pause_s: float = 0.5,
) -> list[UnitSpan]:
    """The units of a segment from ``start`` to ``end`` with ``words`` (absolute times).

    A unit ends after a word that ends a sentence, or where the next word starts ``pause_s`` or
    more later. A segment without words is one unit.
    """
    if not words:
        return [UnitSpan(start, end, "")]
    groups: list[list[Word]] = [[words[0]]]
    for previous, word in itertools.pairwise(words):
        if ends_sentence(previous.text) or word.start - previous.end >= pause_s:
            groups.append([word])
        else:
            groups[-1].append(word)
    groups = _split_long(groups, max_s, min_s)
    groups = _merge_short(groups, start, end, min_s)
    bounds = _boundaries(groups, start, end)
    return [
        UnitSpan(a, b, "".join(w.text for w in group).strip())
        for (a, b), group in zip(bounds, groups, strict=True)
    ]


def _boundaries(
    groups: Sequence[Sequence[Word]], start: float, end: float
) -> list[tuple[float, float]]:
    """Unit times: the segment's ends outside, the middle of each gap between units inside."""
    cuts = [start]
    for left, right in itertools.pairwise(groups):
        cuts.append(min(max((left[-1].end + right[0].start) / 2, cuts[-1]), end))
    cuts.append(end)
    return [(round(a, 3), round(b, 3)) for a, b in itertools.pairwise(cuts)]


def _merge_short(
    groups: list[list[Word]], start: float, end: float, min_s: float
) -> list[list[Word]]:
    """Join each unit shorter than ``min_s`` to the neighbour across the shorter gap."""
    groups = [list(g) for g in groups]
    while len(groups) > 1:
        bounds = _boundaries(groups, start, end)
        lengths = [b - a for a, b in bounds]
        shortest = min(range(len(groups)), key=lambda i: lengths[i])
        if lengths[shortest] >= min_s:
            break
        gap_before = (
            groups[shortest][0].start - groups[shortest - 1][-1].end if shortest > 0 else None
        )
        gap_after = (
            groups[shortest + 1][0].start - groups[shortest][-1].end
            if shortest + 1 < len(groups)
            else None
        )
        if gap_after is None or (gap_before is not None and gap_before <= gap_after):
            groups[shortest - 1] += groups.pop(shortest)
        else:
            groups[shortest] += groups.pop(shortest + 1)
    return groups


def _split_long(groups: list[list[Word]], max_s: float, min_s: float) -> list[list[Word]]:
    """Split units of words spanning more than ``max_s`` at their longest inner pause (among
    cuts leaving at least ``min_s`` each side when there is one), recursively."""
    out: list[list[Word]] = []
    for group in groups:
        if len(group) < 2 or group[-1].end - group[0].start <= max_s:
            out.append(group)
            continue
        cuts = range(1, len(group))

        def fits(i: int, group: list[Word] = group) -> bool:
            return (
                group[i - 1].end - group[0].start >= min_s
                and group[-1].end - group[i].start >= min_s
            )

        candidates = [i for i in cuts if fits(i)] or list(cuts)
        middle = (group[0].start + group[-1].end) / 2
        best = max(
            candidates,
            key=lambda i: (
                round(group[i].start - group[i - 1].end, 2),
                -abs(group[i].start - middle),
            ),
        )
        out += _split_long([group[:best], group[best:]], max_s, min_s)
    return out


def window_bounds(length: int, window: int, hop: int) -> list[tuple[int, int]]:
    """Sliding windows ``[a, b)`` over ``length`` positions: ``window`` long every ``hop``, the
    last one ending at ``length`` (one window of everything when it is shorter)."""
    if length <= window:
        return [(0, length)]
    starts = list(range(0, length - window + 1, hop))
    if starts[-1] + window < length:
        starts.append(length - window)
    return [(a, a + window) for a in starts]
