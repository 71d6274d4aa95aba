"""Evaluation metrics: transcript quality (word and character error rate, with Whisper's text
normaliser) and emotion classification (accuracy, UA, macro-F1, confusion matrix)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

__all__ = [
    "character_error_rate",
    "classification_report",
    "normalize_text",
    "word_error_rate",
]


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


def classification_report(
    truth: np.ndarray, predicted: np.ndarray, labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, unweighted average recall (UA), macro-F1, per-class recall and confusion.

    ``truth`` and ``predicted`` hold class indices into ``labels``. Classes absent from
    ``truth`` are left out of UA and macro-F1 (their recall is undefined).
    """
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    n = len(labels)
    confusion = np.zeros((n, n), dtype=int)
    np.add.at(confusion, (truth, predicted), 1)
    present = confusion.sum(axis=1) > 0
    recall = np.divide(np.diag(confusion), confusion.sum(axis=1), out=np.zeros(n), where=present)
    column = confusion.sum(axis=0)
    precision = np.divide(np.diag(confusion), column, out=np.zeros(n), where=column > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros(n), where=denominator > 0)
    return {
        "n": len(truth),
        "accuracy": round(float((truth == predicted).mean()) if len(truth) else 0.0, 4),
        "ua": round(float(recall[present].mean()) if present.any() else 0.0, 4),
        "macro_f1": round(float(f1[present].mean()) if present.any() else 0.0, 4),
        "recall": {
            label: round(float(recall[i]), 4) for i, label in enumerate(labels) if present[i]
        },
        "labels": list(labels),
        "confusion": confusion.tolist(),
    }
