"""Explanations computed by querying the models.

``emotivoice.explain(audio, analysis, options)`` is callable (this package forwards calls to
:func:`emotivoice.explain.core.explain`), so the package and the function share one name.
"""

import sys
import types
from typing import Any

from emotivoice.explain.attribution import (
    AttributionOptions,
    DeletionCurve,
    TimeAttribution,
    Window,
    attribute_time,
    exact_shapley,
    lime_surrogate,
)
from emotivoice.explain.core import (
    SegmentExplanation,
    explain,
    explain_segment,
    write_explanation,
)
from emotivoice.explain.counterfactual import CounterfactualReport, counterfactuals
from emotivoice.explain.options import DEFAULT_METHODS, METHODS, ExplainOptions
from emotivoice.explain.scoring import emotion_scorer

__all__ = [
    "DEFAULT_METHODS",
    "METHODS",
    "AttributionOptions",
    "CounterfactualReport",
    "DeletionCurve",
    "ExplainOptions",
    "SegmentExplanation",
    "TimeAttribution",
    "Window",
    "attribute_time",
    "counterfactuals",
    "emotion_scorer",
    "exact_shapley",
    "explain",
    "explain_segment",
    "lime_surrogate",
    "write_explanation",
]


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return explain(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
