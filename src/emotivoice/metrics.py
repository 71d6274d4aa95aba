"""Transcript quality metrics (word and character error rate) with Whisper's text normaliser."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

__all__ = ["character_error_rate", "normalize_text", "word_error_rate"]


@cache
def _normalizer() -> object:
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize_text(text: str) -> str:
    """Whisper's English normaliser: case, punctuation, spelling, numbers (``Mr.`` → ``mister``)."""
    result: str = _normalizer()(text)  # type: ignore[operator]
    return result


def _normalized_pairs(
    references: Sequence[str], hypotheses: Sequence[str]
) -> tuple[list[str], list[str]]:
    pairs = [
        (normalize_text(r), normalize_text(h)) for r, h in zip(references, hypotheses, strict=True)
    ]
    kept = [(r, h) for r, h in pairs if r]  # an empty reference has no defined error rate
    return [r for r, _ in kept], [h for _, h in kept]


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER (0-1) after normalisation; empty references are ignored."""
    import jiwer

    refs, hyps = _normalized_pairs(references, hypotheses)
    return float(jiwer.wer(refs, hyps)) if refs else 0.0


def character_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus CER (0-1) after normalisation; empty references are ignored."""
    import jiwer

    refs, hyps = _normalized_pairs(references, hypotheses)
    return float(jiwer.cer(refs, hyps)) if refs else 0.0
