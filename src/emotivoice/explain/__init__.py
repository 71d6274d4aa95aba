"""Explanations computed by querying the models (time attribution, counterfactuals).

Work in progress towards issue 4: attention maps, Integrated Gradients, plots and the
``analyze --explain`` front door are not built yet.
"""

from emotivoice.explain.attribution import (
    AttributionOptions,
    DeletionCurve,
    TimeAttribution,
    Window,
    attribute_time,
    exact_shapley,
    lime_surrogate,
)
from emotivoice.explain.counterfactual import CounterfactualReport, counterfactuals
from emotivoice.explain.scoring import emotion_scorer

__all__ = [
    "AttributionOptions",
    "CounterfactualReport",
    "DeletionCurve",
    "TimeAttribution",
    "Window",
    "attribute_time",
    "counterfactuals",
    "emotion_scorer",
    "exact_shapley",
    "lime_surrogate",
]
