"""What an explanation computes: :class:`ExplainOptions`, checked once when it is made.

The *budget* caps every evaluation of the explained model per segment: the counterfactuals'
fixed 8 (9 without ``shapley``, which otherwise supplies the unperturbed score) are set aside
and the time attribution (coalitions, LIME, deletion curves) gets the rest; a budget too small
for the requested methods is rejected here, before any work. Attention (one forward pass) and
Integrated Gradients (``ig_steps`` forward and backward passes of the PyTorch model) run a
different model path and are costed on their own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from emotivoice.emotion.batched import PRECISIONS, check_torch_device
from emotivoice.errors import InvalidConfigError
from emotivoice.explain.attribution import DEFAULT_BUDGET, AttributionOptions, minimum_evaluations
from emotivoice.explain.counterfactual import TRANSFORMS

__all__ = ["DEFAULT_METHODS", "METHODS", "ExplainOptions", "check_method_names", "plan_budget"]

METHODS = ("shapley", "counterfactual", "attention", "gradients")
DEFAULT_METHODS = ("shapley", "counterfactual")


@dataclass(frozen=True)
class ExplainOptions:
    """Which explanations to compute, with what model and how many model evaluations.

    Attributes:
        methods: any of :data:`METHODS`: ``shapley`` (window Shapley + LIME + deletion
            faithfulness), ``counterfactual`` (prosody transforms), ``attention`` (encoder
            self-attention and rollout) and ``gradients`` (Integrated Gradients on the log-mel,
            Whisper-head models only).
        attribution: window count, baseline and seed of the time attribution.
        budget: the most model evaluations per segment for time attribution, LIME, deletion
            curves and counterfactuals together (the defaults use 72 of 100).
        emotion_model: the emotion backend to explain, as in ``analyze``.
        ig_steps: Integrated Gradients steps.
        device: where the batched scorer runs: ``cpu``, ``cuda`` or ``auto`` (a GPU when
            PyTorch sees one). The default head's encoder prefix runs there as its PyTorch twin;
            ``cuda`` needs PyTorch and a GPU.
        precision: the number format of that encoder prefix: ``auto`` (bfloat16 on a CPU that
            computes it natively, about twice as fast, probabilities within about 0.01 of
            float32), ``float32`` (the analysis's own values) or ``bfloat16``.

    Raises:
        InvalidConfigError: unknown methods, a method the backend cannot be explained with, or a
            budget too small for the methods.
    """

    methods: tuple[str, ...] = DEFAULT_METHODS
    attribution: AttributionOptions = field(default_factory=AttributionOptions)
    budget: int = DEFAULT_BUDGET
    emotion_model: str = "default"
    ig_steps: int = 16
    device: str = "auto"
    precision: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))
        if not self.methods:
            raise InvalidConfigError(f"No explanation method; choose from {list(METHODS)}")
        check_method_names(self.methods)
        if "gradients" in self.methods and self.emotion_model.startswith("hf:"):
            raise InvalidConfigError(
                "Integrated Gradients ('gradients') explain Whisper-head emotion models only (the "
                f"default head or a head .npz), on the log-mel input; {self.emotion_model} is a "
                "Hugging Face backend: explain it with shapley, counterfactual or attention"
            )
        if self.ig_steps < 1:
            raise InvalidConfigError("ig_steps must be at least 1")
        if self.device != "auto":
            check_torch_device(self.device)
        if self.precision not in PRECISIONS:
            raise InvalidConfigError(
                f"precision must be one of {PRECISIONS}, got {self.precision!r}."
            )
        plan_budget(self.methods, self.attribution, self.budget)

    @property
    def planned_attribution(self) -> AttributionOptions | None:
        """The time attribution's options within the budget (``None`` without ``shapley``)."""
        return plan_budget(self.methods, self.attribution, self.budget)


def check_method_names(methods: Sequence[str]) -> None:
    """Reject names that are not in :data:`METHODS` (all of a request's other checks need the
    rest of the options: :class:`ExplainOptions` makes them).

    Raises:
        InvalidConfigError: naming the unknown methods and the valid ones.
    """
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise InvalidConfigError(
            f"Unknown explanation methods {unknown}; choose from {list(METHODS)}"
        )


def unperturbed_evaluations(methods: Sequence[str]) -> int:
    """Evaluations outside the time attribution: counterfactuals or the one unperturbed score."""
    reused = 0 if "shapley" in methods else 1  # the coalition table holds the full segment
    return len(TRANSFORMS) + reused if "counterfactual" in methods else reused


def plan_budget(
    methods: Sequence[str],
    attribution: AttributionOptions | None = None,
    budget: int = DEFAULT_BUDGET,
) -> AttributionOptions | None:
    """The time attribution's options within ``budget`` evaluations of the whole explanation.

    The counterfactuals' evaluations are set aside and the time attribution gets the rest (or
    its own ``AttributionOptions.budget``, if smaller). Returns ``None`` without ``shapley``.

    Raises:
        InvalidConfigError: the budget cannot cover the requested methods.
    """
    fixed = unperturbed_evaluations(methods)
    if "shapley" not in methods:
        if budget < fixed:
            raise InvalidConfigError(
                f"An explanation budget of {budget} model evaluations is too small for "
                f"{list(methods)}: they need {fixed}"
            )
        return None
    options = attribution or AttributionOptions()
    share = budget - fixed
    if options.budget is not None:
        share = min(share, options.budget)
    need = minimum_evaluations(options.n_windows, options.exact_max)
    if share < need:
        raise InvalidConfigError(
            f"An explanation budget of {budget} model evaluations is too small: the time "
            f"attribution of {options.n_windows} windows needs at least {need}"
            + (f" and the counterfactuals {fixed}" if fixed else "")
            + f". Raise the budget to {need + fixed} or more, or use fewer windows."
        )
    return dataclasses.replace(options, budget=share)
