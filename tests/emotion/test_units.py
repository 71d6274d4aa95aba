"""Sentence-level units and sliding windows: cut from word times, scored on their own audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emotivoice.emotion.units import cut_units, ends_sentence, window_bounds
from emotivoice.results import Word


def _words(*items: tuple[float, float, str]) -> list[Word]:
    return [Word(a, b, text, 0.9) for a, b, text in items]


def test_sentence_ends_and_pauses_cut_units() -> None:
    words = _words(
        (0.0, 0.5, " I"), (0.5, 1.0, " won!"),  # a sentence end
        (1.1, 1.6, " Then"), (1.6, 2.2, " nothing"),  # a long pause after
        (3.2, 3.6, " at"), (3.6, 4.4, " all."),
    )  # fmt: skip
    units = cut_units(words, 0.0, 4.6, min_s=1.0, max_s=8.0, pause_s=0.5)
    assert [u.text for u in units] == ["I won!", "Then nothing", "at all."]
    # they cover the segment end to end, with boundaries in the middle of the gaps
    assert [(u.start, u.end) for u in units] == [(0.0, 1.05), (1.05, 2.7), (2.7, 4.6)]


def test_short_units_join_the_nearer_neighbour() -> None:
    words = _words((0.0, 1.5, " Hello."), (1.6, 1.9, " Yes."), (2.6, 4.0, " Goodbye now."))
    units = cut_units(words, 0.0, 4.0, min_s=1.0)
    assert [u.text for u in units] == ["Hello. Yes.", "Goodbye now."]
    assert cut_units(words, 0.0, 4.0, min_s=10.0)[0].text == "Hello. Yes. Goodbye now."


def test_long_units_split_at_their_longest_pause() -> None:
    words = [Word(i * 0.5, i * 0.5 + 0.4, f" w{i}", 0.9) for i in range(24)]  # 12 s, no periods
    words[14] = Word(7.0, 7.1, " w14", 0.9)  # the longest gap is after w14 (7.1 → 7.5)
    units = cut_units(words, 0.0, 12.0, min_s=1.0, max_s=8.0, pause_s=0.5)
    assert len(units) == 2 and all(u.end - u.start <= 8.0 for u in units)
    assert units[0].text.endswith("w14")
    assert units[0].start == 0.0 and units[-1].end == 12.0


def test_no_words_is_one_unit_and_punctuation_rules() -> None:
    (unit,) = cut_units([], 3.0, 5.0)
    assert (unit.start, unit.end, unit.text) == (3.0, 5.0, "")
    assert ends_sentence(" done.") and ends_sentence(' "Really?"') and ends_sentence("了。")
    assert not ends_sentence(" Mr") and not ends_sentence(" 3,5")


@pytest.mark.parametrize(
    ("length", "expected"),
    [(50, [(0, 50)]), (100, [(0, 100)]), (140, [(0, 100), (25, 125), (40, 140)])],
)
def test_window_bounds(length: int, expected: list[tuple[int, int]]) -> None:
    assert window_bounds(length, 100, 25) == expected


@pytest.mark.slow
def test_sentences_said_differently_get_their_own_units(jfk_path: Path) -> None:
    """The demo sample's shape on real speech: JFK's sentence parts are units scored on their own
    frames; the segment's windows span it at the configured hop."""
    import emotivoice

    analysis = emotivoice.analyze(jfk_path, features=False)
    (segment,) = analysis.segments
    assert len(segment.units) >= 2
    assert segment.units[0].start == segment.start and segment.units[-1].end == segment.end
    texts = " ".join(u.text for u in segment.units)
    assert "fellow Americans" in texts and "your country" in texts
    per_unit = [u.emotion.probabilities for u in segment.units]
    assert any(p != per_unit[0] for p in per_unit[1:])  # each scored on its own audio
    assert all(1.0 <= u.duration <= 8.0 for u in segment.units)
    windows = segment.timeline
    assert len(windows) == pytest.approx((segment.duration - 2.0) / 0.5 + 1, abs=1.5)
    assert np.allclose([sum(w.probabilities.values()) for w in windows], 1.0, atol=1e-3)
    assert analysis.emotion is not None and analysis.emotion.timeline == windows
