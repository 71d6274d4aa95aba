"""Benchmark: model evaluations and wall time of each explanation method on a 10 s segment.

Targets (issue 4, default settings): ≤ 100 evaluations for Shapley + LIME + counterfactuals +
faithfulness together and ≤ 30 s wall on the 2-core CPU; attention and Integrated Gradients are
timed separately. The CPU is shared, so every configuration runs ``--repeats`` times, interleaved
with the reference (alternating which goes first), and the best and the median are printed.

The reference is the former default head (a linear head on the final encoder states, so every
evaluation is a CTranslate2 encoder pass over a padded 30 s window, with the parallel-replica
scorer), taken from the repository's history (``--reference-head`` names another ``.npz``);
the current default head runs three encoder layers on the segment's own frames instead. One-time
costs (model load, the librosa/SciPy imports of the first counterfactual transforms, which
``analyze --explain`` has already paid in its acoustic-feature stage) are printed on their own
line and not counted per segment.

The current scorer runs its encoder layers in bfloat16 where the CPU computes it natively
(``precision="auto"``); ``float32`` runs the same head in float32 beside it, and both print
their predicted probability and the faithfulness of their Shapley and LIME orders (deletion
curves against random orders), so a change of number format shows what it costs in accuracy.

Usage: ``python benchmarks/explain_cost.py [--threads 2] [--repeats 3] [--no-reference]
[--no-float32] [--reference-head FILE] [--no-gradients]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from emotivoice.audio import SAMPLE_RATE, load_audio
from emotivoice.emotion import EmotionOptions
from emotivoice.evaluation.datasets import reference_utterances
from emotivoice.explain import ExplainOptions, SegmentExplanation, explain_segment
from emotivoice.explain.counterfactual import TRANSFORMS
from emotivoice.explain.scoring import emotion_scorer

QUERY_METHODS = ("shapley+lime+deletion", "counterfactual")
# the last commit whose default head read the final encoder states
FORMER_HEAD = "0f6cb1e:src/emotivoice/emotion/weights/whisper-base-emotion.npz"


def former_head() -> Path:
    """The former default head, written from git history to a temporary file."""
    data = subprocess.run(
        ["git", "show", FORMER_HEAD], capture_output=True, check=True, cwd=Path(__file__).parent
    ).stdout
    path = Path(tempfile.mkdtemp()) / "former-head.npz"
    path.write_bytes(data)
    return path


def ten_second_segment() -> tuple[str, np.ndarray]:
    """The first reference utterance of at least 10 s, cut to exactly 10 s."""
    for item in reference_utterances():
        samples = load_audio(item.path).samples
        if len(samples) >= 10 * SAMPLE_RATE:
            return item.path.name, samples[: 10 * SAMPLE_RATE]
    raise SystemExit("no reference utterance of 10 s or more in the data folder")


def timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def summary(values: list[float]) -> str:
    return f"{min(values):6.2f} {statistics.median(values):6.2f}"


def _predicted(explanation: SegmentExplanation) -> str:
    return f"{explanation.predicted} ({explanation.probabilities[explanation.predicted]:.4f})"


def _faithfulness(explanation: SegmentExplanation, method: str) -> str:
    attribution = explanation.attribution
    curves = {c.method: c for c in attribution.deletion} if attribution else {}
    return f"{curves[method].faithfulness:.4f}" if method in curves else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--no-float32", action="store_true", help="no float32 run beside")
    parser.add_argument("--reference-head", type=Path, help="a head .npz (default: the former)")
    parser.add_argument("--no-gradients", action="store_true")
    args = parser.parse_args()
    name, segment = ten_second_segment()
    configs = {"current": emotion_scorer(cpu_threads=args.threads)}
    if not args.no_float32:
        configs["float32"] = emotion_scorer(cpu_threads=args.threads, precision="float32")
    if not args.no_reference:
        head = args.reference_head or former_head()
        options = EmotionOptions(model=str(head))
        configs["reference"] = emotion_scorer(options, cpu_threads=args.threads)
    started = time.perf_counter()
    for scorer in configs.values():
        scorer([segment])  # model load and first encodes
    load = time.perf_counter() - started
    imports = timed(lambda: [transform(segment) for _, transform in TRANSFORMS.values()])
    print(f"{name}, first 10.0 s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"one-time: model load + first encodes {load:.2f} s, transform imports {imports:.2f} s")
    seconds: dict[str, dict[str, list[float]]] = {c: {} for c in configs}
    results: dict[str, SegmentExplanation] = {}
    for run in range(args.repeats):
        # alternate which configuration goes first, so a change of load hits both alike
        for config, scorer in list(configs.items())[:: -1 if run % 2 else 1]:
            started = time.perf_counter()
            explanation = explain_segment(segment, scorer, ExplainOptions())
            total = time.perf_counter() - started
            results[config] = explanation
            for method, cost in explanation.cost.items():
                seconds[config].setdefault(method, []).append(cost["seconds"])
            seconds[config].setdefault("total", []).append(total)
    current = results["current"]
    evaluations = {m: int(c["evaluations"]) for m, c in current.cost.items()}
    evaluations["total"] = sum(evaluations[m] for m in QUERY_METHODS)
    print(f"{args.repeats} runs each, seconds (best median)")
    print(f"{'':<24} {'evaluations':>11}" + "".join(f" {c:>18}" for c in configs))
    for method in (*QUERY_METHODS, "total"):
        cells = "".join(f" {summary(seconds[c][method]):>18}" for c in configs)
        print(f"{method:<24} {evaluations[method]:>11}{cells}")
    for label, cell in (
        ("predicted (probability)", _predicted),
        ("faithfulness shapley", lambda e: _faithfulness(e, "shapley")),
        ("faithfulness lime", lambda e: _faithfulness(e, "lime")),
    ):
        print(f"{label:<36}" + "".join(f" {cell(results[c]):>18}" for c in configs))
    print("targets: total ≤ 100 evaluations and ≤ 30 s")
    methods = ["attention"] + ([] if args.no_gradients else ["gradients"])
    separate = explain_segment(segment, configs["current"], ExplainOptions(methods=tuple(methods)))
    for method, cost in separate.cost.items():
        print(f"{method:<24} {int(cost['evaluations']):>11}   {cost['seconds']:>6.2f} (one run)")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
