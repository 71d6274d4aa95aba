"""benchmark-emotion reports per-class recall across corpora, not just UA (issue 24, item 5)."""

from __future__ import annotations

from emotivoice.emotion.backends import WhisperHeadBackend
from emotivoice.evaluation.emotion import (
    LOW_RECALL,
    EmotionBenchmark,
    format_benchmark,
    recall_line,
    training_record,
)


def test_stored_cross_corpus_evaluations_carry_per_class_recall() -> None:
    _, evaluations = training_record(WhisperHeadBackend())
    cross = evaluations["cross_ravdess_to_nemo"]
    assert set(cross["recall"]) == {"anger", "fear", "happiness", "neutral", "sadness", "surprise"}
    report = {
        "accuracy": 0.5,
        "ua": 0.5,
        "macro_f1": 0.5,
        "recall": dict.fromkeys(cross["recall"], 0.5),
        "confusion": [[1] * 6] * 6,
    }
    result = EmotionBenchmark("d", "ravdess", "b", 6, 1.0, report, None, 0, evaluations)
    printed = format_benchmark(result)
    happiness = cross["recall"]["happiness"]
    assert f"happiness {happiness:.2f}" in printed
    # each stored evaluation has its recall line under it, weak classes marked
    assert printed.count("recall  ") == 1 + len(evaluations)
    assert ("!" in printed) == any(
        v < LOW_RECALL for e in evaluations.values() for v in e["recall"].values()
    )


def test_recall_line_marks_classes_below_the_floor() -> None:
    line = recall_line({"anger": 0.9, "neutral": 0.08})
    assert line == "recall  anger 0.90  neutral 0.08!"
