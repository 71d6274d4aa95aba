"""Subtitle cues that read well: lines of at most ``max_line_width`` characters, at most
``max_line_count`` lines and ``max_cue_duration`` seconds a cue, cut between words at their
timestamps (as WhisperX's ``--max_line_width``/``--max_line_count`` and subtitle editors do).

A segment is one stretch of speech between pauses and may run 15 s and 250 characters: far
more than a viewer reads at once. Each cue here holds consecutive words of one segment (so
of one speaker), starts at its first word and ends at its last one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from emotivoice.errors import InvalidConfigError
from emotivoice.results import Segment, Word

__all__ = ["Cue", "SubtitleOptions", "subtitle_cues"]

DEFAULT_MAX_LINE_WIDTH = 42  # characters: the BBC's and Netflix's line length for Latin scripts
DEFAULT_MAX_LINE_COUNT = 2
DEFAULT_MAX_CUE_DURATION_S = 7.0  # Netflix's longest subtitle event


@dataclass(frozen=True)
class SubtitleOptions:
    """How SRT and WebVTT cues are cut.

    Attributes:
        max_line_width: most characters on a line (a word longer than that gets a line alone).
        max_line_count: most lines in a cue.
        max_cue_duration: most seconds a cue stays on screen (a single word may last longer).
    """

    max_line_width: int = DEFAULT_MAX_LINE_WIDTH
    max_line_count: int = DEFAULT_MAX_LINE_COUNT
    max_cue_duration: float = DEFAULT_MAX_CUE_DURATION_S

    def __post_init__(self) -> None:
        if self.max_line_width < 1:
            raise InvalidConfigError(
                f"max_line_width must be at least 1, not {self.max_line_width}"
            )
        if self.max_line_count < 1:
            raise InvalidConfigError(
                f"max_line_count must be at least 1, not {self.max_line_count}"
            )
        if not self.max_cue_duration > 0:
            raise InvalidConfigError(
                f"max_cue_duration must be positive seconds, not {self.max_cue_duration}"
            )


@dataclass(frozen=True)
class Cue:
    """One subtitle on screen: its time, its lines and who speaks (``None``: not known)."""

    start: float
    end: float
    lines: tuple[str, ...]
    speaker: str | None


def subtitle_cues(segments: Iterable[Segment], options: SubtitleOptions | None = None) -> list[Cue]:
    """The cues of ``segments`` in time order, cut by ``options`` (default: 42 × 2, 7 s).

    Segments without word timestamps are cut as if their words were spread evenly over the
    segment (by characters).
    """
    options = options or SubtitleOptions()
    cues: list[Cue] = []
    for segment in segments:
        if segment.text.strip():
            cues.extend(_segment_cues(segment, options))
    return cues


def _timed_words(segment: Segment) -> list[Word]:
    words = [w for w in segment.words if w.text.strip()]
    if words:
        return words
    # No word times (e.g. an analysis saved without them): spread the words by characters.
    tokens = segment.text.split()
    total = sum(len(t) + 1 for t in tokens)
    spread, position = [], 0
    for token in tokens:
        start = segment.start + segment.duration * position / total
        position += len(token) + 1
        end = segment.start + segment.duration * position / total
        spread.append(Word(start=start, end=end, text=token, probability=1.0))
    return spread


def _segment_cues(segment: Segment, options: SubtitleOptions) -> list[Cue]:
    cues: list[list[list[Word]]] = []  # cues of lines of words
    lines: list[list[Word]] = [[]]
    for word in _timed_words(segment):
        line = lines[-1]
        fits = len(_text([*line, word])) <= options.max_line_width
        first = lines[0][0] if lines[0] else word
        too_long = word.end - first.start > options.max_cue_duration
        if line and (too_long or not fits):
            if too_long or len(lines) >= options.max_line_count:
                cues.append(lines)
                lines = [[word]]
            else:
                lines.append([word])
        else:
            line.append(word)
    if lines[0]:
        cues.append(lines)
    _rebalance_tail(cues, options)
    return [
        Cue(c[0][0].start, c[-1][-1].end, tuple(_text(line) for line in c), segment.speaker)
        for c in cues
    ]


def _text(words: list[Word]) -> str:
    return " ".join(w.text.strip() for w in words)


def _rebalance_tail(cues: list[list[list[Word]]], options: SubtitleOptions) -> None:
    """A segment's last cue of a word or two ("publish.") takes the previous cue's last line
    when that fits: subtitle editors avoid such orphans."""
    if len(cues) < 2:
        return
    before, last = cues[-2], cues[-1]
    orphan = len(last) == 1 and len(_text(last[0])) < options.max_line_width // 3
    if not orphan or len(before) < 2 or len(last) + 1 > options.max_line_count:
        return
    moved, kept = before[-1], before[:-1]
    if last[-1][-1].end - moved[0].start > options.max_cue_duration:
        return
    if len(kept) == 1 and len(_text(kept[0])) < options.max_line_width // 3:
        return  # that would only move the orphan
    cues[-2], cues[-1] = kept, [moved, *last]
