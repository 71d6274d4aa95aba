"""The natural-speech prior correction: calm speech moves to neutral, acted recall stays."""

from __future__ import annotations

import numpy as np

from emotivoice.emotion.labels import BASE_EMOTIONS
from emotivoice.training.prior import NEUTRAL, correction_loss, fit_prior_correction


def _acted(rng: np.random.Generator, n: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = np.tile(np.arange(len(BASE_EMOTIONS)), n)
    logits = rng.normal(0, 1, (len(labels), len(BASE_EMOTIONS)))
    logits[np.arange(len(labels)), labels] += 3.0  # a head that gets acted speech right
    corpora = np.where(np.arange(len(labels)) % 2 == 0, "a", "b")
    return logits, labels, corpora


def test_biases_move_calm_speech_towards_neutral_and_keep_acted_recall() -> None:
    rng = np.random.default_rng(0)
    acted, labels, corpora = _acted(rng)
    natural = rng.normal(0, 1, (80, len(BASE_EMOTIONS)))
    natural[:, BASE_EMOTIONS.index("anger")] += 1.5  # calm speech read as anger
    fit = fit_prior_correction(acted, labels, corpora, natural)
    assert abs(fit.bias.sum()) < 1e-9 and fit.bias[NEUTRAL] == fit.bias.max()
    assert fit.natural_loss[1] < fit.natural_loss[0]
    recall = ((acted + fit.bias).argmax(1) == labels).mean()
    assert recall > 0.9 * (acted.argmax(1) == labels).mean()


def test_no_natural_evidence_no_correction() -> None:
    rng = np.random.default_rng(1)
    acted, labels, corpora = _acted(rng)
    natural = np.zeros((20, len(BASE_EMOTIONS)))
    natural[:, NEUTRAL] = 8.0  # calm speech already neutral: nothing to correct
    fit = fit_prior_correction(acted, labels, corpora, natural)
    assert np.abs(fit.bias).max() < 0.3
    before, after = (
        correction_loss(np.zeros(6), acted, labels, corpora, natural),
        (
            fit.acted_loss[1],
            fit.natural_loss[1],
        ),
    )
    assert after[0] <= before[0] + 0.05
