"""Time attribution by querying the model: Shapley values of windows, a LIME view, faithfulness.

A segment is split into ``n_windows`` equal windows. A *coalition* keeps some windows and
replaces the others by the baseline (silence or low-level noise); the model scores each
coalition's audio. With ``n ≤ exact_max`` windows all ``2**n`` coalitions are evaluated once,
in batches, and everything derives from that table:

- exact Shapley values of the predicted class probability (efficiency holds exactly:
  the values sum to f(all windows) − f(no window));
- a LIME-style surrogate: a weighted linear fit (exponential kernel on the share of removed
  windows) over the same coalitions;
- deletion curves (remove windows in attribution order) for every method and for random orders,
  with no further model call. Faithfulness = mean area under random deletion curves minus the
  area under the method's curve (positive: the method finds what the model relies on).

Beyond ``exact_max`` windows (or when ``2**n`` exceeds the budget), Shapley values are estimated
by permutation sampling, and the budget is a hard cap on model evaluations: ``2 (n − 1)`` are
set aside for the Shapley and LIME deletion curves, the rest go to permutations. Each sampled
permutation builds the coalition chain ∅ ⊂ {π₁} ⊂ … ⊂ all; read backwards it is the deletion
curve of the random order (πₙ, …, π₁), so the random-order baseline of the faithfulness score
comes from those same real evaluations at no extra cost (up to ``random_orders`` of them).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from emotivoice.audio import SAMPLE_RATE
from emotivoice.errors import InvalidConfigError

#: scores a batch of waveforms: returns (batch, n_classes) probabilities
BatchScorer = Callable[[Sequence[np.ndarray]], np.ndarray]

#: model evaluations an explanation may make by default (issue target: ≤ 100 in all)
DEFAULT_BUDGET = 100


@dataclass(frozen=True)
class AttributionOptions:
    """Settings of the time attribution.

    Attributes:
        n_windows: number of equal windows the segment is split into.
        baseline: ``"noise"`` (white noise 50 dB below the segment's RMS) or ``"silence"``.
        exact_max: evaluate all coalitions up to this many windows, sample beyond.
        budget: cap on model evaluations of the time attribution, deletion curves included
            (``None``: :data:`DEFAULT_BUDGET` on its own; inside :func:`emotivoice.explain` the
            explanation's budget, less what its other methods need, sets it).
        random_orders: random deletion orders the faithfulness score compares against (in
            sampled mode at most one per sampled permutation).
        seed: for the noise baseline, sampling and random orders.
    """

    n_windows: int = 6
    baseline: str = "noise"
    exact_max: int = 8
    budget: int | None = None
    random_orders: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        if not 2 <= self.n_windows <= 32:
            raise InvalidConfigError("n_windows must be between 2 and 32")
        if self.baseline not in ("noise", "silence"):
            raise InvalidConfigError("baseline must be 'noise' or 'silence'")
        if self.budget is not None and self.budget < 2:
            raise InvalidConfigError("budget must allow at least 2 model evaluations")
        if self.random_orders < 1:
            raise InvalidConfigError("random_orders must be at least 1")
        if not self.exact and self.evaluation_cap < sampled_minimum(self.n_windows):
            raise InvalidConfigError(
                f"A budget of {self.evaluation_cap} model evaluations is too small to sample "
                f"Shapley values of {self.n_windows} windows: one permutation and the deletion "
                f"curves need {sampled_minimum(self.n_windows)}. Raise the budget or use fewer "
                "windows."
            )

    @property
    def evaluation_cap(self) -> int:
        """The most model evaluations the time attribution may make."""
        return DEFAULT_BUDGET if self.budget is None else self.budget

    @property
    def exact(self) -> bool:
        """Whether every coalition is evaluated (exact Shapley values)."""
        return self.n_windows <= self.exact_max and 2**self.n_windows <= self.evaluation_cap


def sampled_minimum(n_windows: int) -> int:
    """Fewest evaluations of sampled mode: all/no window, one permutation, two deletion curves."""
    return 2 + 3 * (n_windows - 1)


def minimum_evaluations(n_windows: int, exact_max: int = 8) -> int:
    """Fewest evaluations any time attribution of ``n_windows`` can make (exact or sampled)."""
    sampled = sampled_minimum(n_windows)
    return min(2**n_windows, sampled) if n_windows <= exact_max else sampled


@dataclass(frozen=True)
class Window:
    """One window of the segment with its attributions (probability units)."""

    start: float
    end: float
    shapley: float
    lime: float


@dataclass(frozen=True)
class DeletionCurve:
    """Predicted-class probability after removing 0, 1, … windows in a method's order."""

    method: str
    probabilities: tuple[float, ...]
    area: float
    faithfulness: float


@dataclass(frozen=True)
class TimeAttribution:
    """Window attributions for one segment's predicted class.

    ``random_area`` is the mean area under ``random_curves`` random-order deletion curves;
    ``evaluations`` counts model evaluations (never more than the budget).
    """

    target: int
    full_scores: tuple[float, ...]
    full_probability: float
    baseline_probability: float
    windows: tuple[Window, ...]
    deletion: tuple[DeletionCurve, ...]
    random_area: float
    evaluations: int
    exact: bool
    random_curves: int = 0

    @property
    def supporting(self) -> tuple[int, ...]:
        """Windows whose Shapley value raises the predicted probability, strongest first."""
        order = np.argsort([-w.shapley for w in self.windows])
        return tuple(int(i) for i in order if self.windows[i].shapley > 0)

    @property
    def opposing(self) -> tuple[int, ...]:
        """Windows whose Shapley value lowers it, strongest first."""
        order = np.argsort([w.shapley for w in self.windows])
        return tuple(int(i) for i in order if self.windows[i].shapley < 0)


def window_bounds(n_samples: int, n_windows: int) -> list[tuple[int, int]]:
    """Sample ranges of ``n_windows`` (nearly) equal windows."""
    edges = np.linspace(0, n_samples, n_windows + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def make_baseline(samples: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    """The replacement audio for removed windows."""
    if kind == "silence":
        return np.zeros_like(samples)
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) or 1e-4
    noise = np.random.default_rng(seed).standard_normal(len(samples))
    return (noise * rms * 10 ** (-50 / 20)).astype(np.float32)


class CoalitionTable:
    """Model scores of coalitions (bit masks of kept windows), evaluated once, in batches."""

    def __init__(
        self,
        samples: np.ndarray,
        scorer: BatchScorer,
        bounds: list[tuple[int, int]],
        baseline: np.ndarray,
        batch_size: int = 16,
    ) -> None:
        self.samples, self.scorer, self.bounds, self.baseline = samples, scorer, bounds, baseline
        self.batch_size = batch_size
        self.scores: dict[int, np.ndarray] = {}

    @property
    def evaluations(self) -> int:
        return len(self.scores)

    def audio(self, mask: int) -> np.ndarray:
        out = self.baseline.copy()
        for i, (a, b) in enumerate(self.bounds):
            if mask >> i & 1:
                out[a:b] = self.samples[a:b]
        return out

    def evaluate(self, masks: Sequence[int]) -> None:
        todo = [m for m in dict.fromkeys(masks) if m not in self.scores]
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            probabilities = self.scorer([self.audio(m) for m in chunk])
            for mask, p in zip(chunk, probabilities, strict=True):
                self.scores[mask] = np.asarray(p, dtype=np.float64)

    def value(self, mask: int, target: int) -> float:
        return float(self.scores[mask][target])


def exact_shapley(values: dict[int, float], n: int) -> np.ndarray:
    """Shapley values from the value of every coalition (bit mask → value)."""
    phi = np.zeros(n)
    weights = [math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)]
    for mask, v in values.items():
        size = bin(mask).count("1")
        for i in range(n):
            if mask >> i & 1:
                phi[i] += weights[size - 1] * v  # i in S: + w(|S|-1) v(S)
            else:
                phi[i] -= weights[size] * v  # i not in S: − w(|S|) v(S)
    return phi


def lime_surrogate(values: dict[int, float], n: int, kernel_width: float = 0.25) -> np.ndarray:
    """Coefficients of a weighted linear fit of value on kept-window indicators."""
    masks = list(values)
    x = np.array([[m >> i & 1 for i in range(n)] for m in masks], dtype=np.float64)
    y = np.array([values[m] for m in masks])
    removed = 1 - x.mean(axis=1)
    weights = np.exp(-(removed**2) / kernel_width**2)
    design = np.hstack([np.ones((len(masks), 1)), x]) * np.sqrt(weights)[:, None]
    coefficients, *_ = np.linalg.lstsq(design, y * np.sqrt(weights), rcond=None)
    return np.asarray(coefficients[1:])


def _deletion(order: Sequence[int] | np.ndarray, n: int) -> list[int]:
    full = (1 << n) - 1
    masks, mask = [full], full
    for i in order:
        mask &= ~(1 << int(i))
        masks.append(mask)
    return masks


def _area(curve: Sequence[float]) -> float:
    return float(np.trapezoid(curve, dx=1.0 / (len(curve) - 1)))


def attribute_time(
    samples: np.ndarray,
    scorer: BatchScorer,
    options: AttributionOptions | None = None,
    sample_rate: int = SAMPLE_RATE,
    target: int | None = None,
) -> TimeAttribution:
    """Shapley and LIME attributions of the windows, with deletion curves and faithfulness."""
    options = options or AttributionOptions()
    n = options.n_windows
    bounds = window_bounds(len(samples), n)
    baseline = make_baseline(samples, options.baseline, options.seed)
    table = CoalitionTable(samples, scorer, bounds, baseline)
    full, empty = (1 << n) - 1, 0
    exact = options.exact
    rng = np.random.default_rng(options.seed)
    table.evaluate(range(2**n) if exact else [full, empty])
    if target is None:
        target = int(np.argmax(table.scores[full]))
    if exact:
        shapley = exact_shapley({m: table.value(m, target) for m in table.scores}, n)
        random_orders = [rng.permutation(n) for _ in range(options.random_orders)]
    else:
        # keep room for the two method deletion curves (n - 1 new coalitions each at most)
        budget = options.evaluation_cap - 2 * (n - 1)
        shapley, permutations = _sampled_shapley(table, n, target, budget, rng)
        random_orders = [order[::-1] for order in permutations[: options.random_orders]]
    lime = lime_surrogate({m: table.value(m, target) for m in table.scores}, n)
    orders = {"shapley": np.argsort(-shapley), "lime": np.argsort(-lime)}
    curves = []
    for order in orders.values():
        masks = _deletion(order, n)
        table.evaluate(masks)  # free when exact; within the set-aside budget otherwise
        curves.append([table.value(m, target) for m in masks])
    random_curves = [[table.value(m, target) for m in _deletion(o, n)] for o in random_orders]
    random_area = float(np.mean([_area(c) for c in random_curves]))
    windows = tuple(
        Window(
            start=round(a / sample_rate, 3),
            end=round(b / sample_rate, 3),
            shapley=round(float(s), 5),
            lime=round(float(c), 5),
        )
        for (a, b), s, c in zip(bounds, shapley, lime, strict=True)
    )
    return TimeAttribution(
        target=target,
        full_scores=tuple(round(float(v), 5) for v in table.scores[full]),
        full_probability=round(table.value(full, target), 5),
        baseline_probability=round(table.value(empty, target), 5),
        windows=windows,
        deletion=tuple(
            DeletionCurve(
                method=method,
                probabilities=tuple(round(p, 5) for p in curve),
                area=round(_area(curve), 5),
                faithfulness=round(random_area - _area(curve), 5),
            )
            for method, curve in zip(orders, curves, strict=True)
        ),
        random_area=round(random_area, 5),
        evaluations=table.evaluations,
        exact=exact,
        random_curves=len(random_curves),
    )


def _sampled_shapley(
    table: CoalitionTable, n: int, target: int, budget: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Permutation-sampling estimate of Shapley values within ``budget`` evaluations.

    Returns the estimate and the sampled permutations (each one's coalition chain is evaluated).
    """
    totals, counts = np.zeros(n), np.zeros(n)
    permutations = []
    # a chain adds at most n - 1 coalitions: the empty and the full one are already scored
    while table.evaluations + n - 1 <= budget:
        order = rng.permutation(n)
        masks, mask = [0], 0
        for i in order:
            mask |= 1 << int(i)
            masks.append(mask)
        table.evaluate(masks)
        permutations.append(order)
        for k, i in enumerate(order):
            totals[i] += table.value(masks[k + 1], target) - table.value(masks[k], target)
            counts[i] += 1
    return np.divide(totals, counts, out=np.zeros(n), where=counts > 0), permutations
