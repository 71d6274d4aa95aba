"""Benchmark: model evaluations and wall time of each explanation method on a 10 s segment.

Targets (issue 4, default settings): ≤ 100 evaluations for Shapley + LIME + counterfactuals +
faithfulness together and ≤ 30 s wall on the 2-core CPU; attention and Integrated Gradients are
timed separately. Usage: ``python benchmarks/explain_cost.py [--threads 2] [--no-gradients]``.
"""

from __future__ import annotations

import argparse
import time

from emotivoice.audio import SAMPLE_RATE, load_audio
from emotivoice.datasets import reference_utterances
from emotivoice.explain import explain_segment
from emotivoice.explain.scoring import emotion_scorer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-gradients", action="store_true")
    args = parser.parse_args()
    # the first reference utterance of at least 10 s, cut to exactly 10 s
    for item in reference_utterances():
        samples = load_audio(item.path).samples
        if len(samples) >= 10 * SAMPLE_RATE:
            break
    segment = samples[: 10 * SAMPLE_RATE]
    scorer = emotion_scorer(cpu_threads=args.threads)
    scorer([segment])  # warm-up: model load
    methods = ["shapley", "counterfactual", "attention"]
    if not args.no_gradients:
        methods.append("gradients")
    started = time.perf_counter()
    explanation = explain_segment(segment, scorer, methods)
    total = time.perf_counter() - started
    print(f"{item.path.name}, first 10.0 s; predicted {explanation.predicted}")
    print(f"{'method':<24} {'evaluations':>11} {'seconds':>8}")
    for method, cost in explanation.cost.items():
        print(f"{method:<24} {int(cost['evaluations']):>11} {cost['seconds']:>8.2f}")
    query = [
        c for m, c in explanation.cost.items() if m in ("shapley+lime+deletion", "counterfactual")
    ]
    print(
        f"{'time attribution + CF':<24} {int(sum(c['evaluations'] for c in query)):>11} "
        f"{sum(c['seconds'] for c in query):>8.2f}   (targets: ≤ 100 evaluations, ≤ 30 s)"
    )
    print(f"{'all methods':<24} {'':>11} {total:>8.2f}")


if __name__ == "__main__":
    main()
