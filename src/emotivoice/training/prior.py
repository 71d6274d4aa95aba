"""A natural-speech prior correction of the emotion head: one bias per class on its logits.

Acted corpora hold as many angry as neutral clips, and their neutral is *acted* neutral, flatter
than anyone reads a book; a head trained on them gives calm natural speech confident high-arousal
labels. Calm read speech is not labelled, but it is mostly neutral: the correction treats it as
neutral *with uncertainty* — one more cell of the class-balanced loss, weighted like one class of
one acted corpus — and fits six per-class biases ``b`` of the calibrated logits (``softmax(z / T
+ b)``), which are all that change. The acted corpora's cells keep the biases from buying natural
neutral with acted recall:

``J(b) = mean over the cells (corpus, class) and the natural cell of their mean cross-entropy
+ l2 · |b|²``.

Folding ``T · b`` into the head's output bias makes the corrected head one ordinary head file:
the numpy runtime, its PyTorch twin and the explanations all read the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emotivoice.emotion.labels import BASE_EMOTIONS

NEUTRAL = BASE_EMOTIONS.index("neutral")


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return np.asarray(z - np.log(np.exp(z).sum(axis=1, keepdims=True)))


@dataclass(frozen=True)
class PriorFit:
    """Biases of the calibrated logits and the objective's parts before and after."""

    bias: np.ndarray  # (6,), mean zero
    acted_loss: tuple[float, float]  # before, after
    natural_loss: tuple[float, float]


def correction_loss(
    bias: np.ndarray,
    acted: np.ndarray,
    labels: np.ndarray,
    corpora: np.ndarray,
    natural: np.ndarray,
) -> tuple[float, float]:
    """(mean cross-entropy over the acted (corpus, class) cells, cross-entropy of neutral on
    the natural pieces) for calibrated logits shifted by ``bias``."""
    log_acted = _log_softmax(acted + bias)
    cells = []
    for corpus in np.unique(corpora):
        for label in np.unique(labels[corpora == corpus]):
            members = (corpora == corpus) & (labels == label)
            cells.append(-log_acted[members, label].mean())
    natural_ce = -_log_softmax(natural + bias)[:, NEUTRAL].mean()
    return float(np.mean(cells)), float(natural_ce)


def fit_prior_correction(
    acted: np.ndarray,
    labels: np.ndarray,
    corpora: np.ndarray,
    natural: np.ndarray,
    l2: float = 0.01,
) -> PriorFit:
    """Biases minimising the acted cells' and the natural cell's mean cross-entropy.

    Args:
        acted: calibrated logits ``(clips, 6)`` (the head's logits divided by its temperature) of
            labelled acted clips.
        labels: their classes (indices into :data:`BASE_EMOTIONS`).
        corpora: their corpus names (each corpus's classes are cells of equal weight).
        natural: calibrated logits of pieces of calm natural speech (unlabelled; taken as
            neutral with the weight of one cell).
        l2: a small pull of the biases towards zero.
    """
    from scipy.optimize import minimize

    n_cells = sum(len(np.unique(labels[corpora == c])) for c in np.unique(corpora))

    def objective(b: np.ndarray) -> float:
        acted_ce, natural_ce = correction_loss(b, acted, labels, corpora, natural)
        return (n_cells * acted_ce + natural_ce) / (n_cells + 1) + l2 * float(b @ b)

    zero = np.zeros(len(BASE_EMOTIONS))
    result = minimize(objective, zero, method="L-BFGS-B")
    bias = result.x - result.x.mean()
    before = correction_loss(zero, acted, labels, corpora, natural)
    after = correction_loss(bias, acted, labels, corpora, natural)
    return PriorFit(bias, (before[0], after[0]), (before[1], after[1]))
