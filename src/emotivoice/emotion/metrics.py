"""Classification metrics for emotion evaluation: accuracy, UA, macro-F1, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


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
