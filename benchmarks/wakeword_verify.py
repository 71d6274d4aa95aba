"""Benchmark: the wake-word detector with and without a second stage (Whisper verifier, or
score smoothing), on a generated data set's validation and test splits.

For each split the three test streams are built once and the shipped model (or ``--model``)
scores them once; then, for each Whisper model and gate, the hops where a live detector would
ask the verifier (``WakeWordDetector`` with ``verifier=``: the first ``max_checks`` hops of each
run at or over the gate) are verified, each window once (a cache shared by the gates), and the
two stages are scored as one by the evaluation. Settings are chosen on the validation split
(the lowest verifier threshold with no false accept there); the test split's figures are read
at those settings and also, as for the peers, at the test's own 0.5 and 1 false accept per hour.

Usage: ``python benchmarks/wakeword_verify.py --data FOLDER [--whisper tiny.en,base]
[--gates 0.1,0.3,0.5] [--max-checks 4] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emotivoice.audio import SAMPLE_RATE
from emotivoice.wakeword import EvaluationOptions, load_dataset, load_model
from emotivoice.wakeword.evaluate import (
    EvaluationReport,
    TestStreams,
    build_test_streams,
    evaluate_streams,
)
from emotivoice.wakeword.features import HOP_SAMPLES
from emotivoice.wakeword.verify import (
    DEFAULT_VERIFIER,
    VerifierOptions,
    WhisperVerifier,
    load_verifier,
    log_score,
)

log = logging.getLogger("wakeword_verify")


@dataclass
class _Fixed:
    """A StreamScorer of scores computed beforehand."""

    phrase: str
    threshold: float
    path: str
    scored: list[tuple[np.ndarray, np.ndarray]]
    cpu_s: float

    def score_streams(
        self, streams: Sequence[np.ndarray]
    ) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
        return self.scored, self.cpu_s


def _checked(scores: np.ndarray, gate: float, max_checks: int) -> np.ndarray:
    """The hops a live detector verifies: the first ``max_checks`` of each run over ``gate``."""
    out = np.zeros(len(scores), bool)
    run = 0
    for i, score in enumerate(scores):
        run = run + 1 if score >= gate else 0
        out[i] = 0 < run <= max_checks
    return out


def _hop_end(times: np.ndarray) -> np.ndarray:
    """The stream index just after each hop's last sample."""
    return np.round(times * SAMPLE_RATE).astype(np.int64)


def _line(name: str, report: EvaluationReport, extra: str = "") -> str:
    a, b = report.at_target["0.5"], report.at_target["1.0"]
    own = report.at_model_threshold
    return (
        f"{name:44s} FR@0.5 {a.false_reject_rate:6.1%} (t {a.threshold:.3f})  FR@1 "
        f"{b.false_reject_rate:6.1%}  EER {report.eer:6.1%}  own t {own.threshold:.3f}: FR "
        f"{own.false_reject_rate:6.1%} FA {own.false_accepts} conf {own.confusable_accept_rate:.1%}"
        f"  lat {report.latency_ms['median']:.0f} ms {extra}"
    )


def _verify_all(
    verifier: WhisperVerifier,
    first: list[tuple[np.ndarray, np.ndarray]],
    samples: list[np.ndarray],
    gates: list[float],
    max_checks: int,
    path: Path,
) -> tuple[list[np.ndarray], float]:
    """The verifier's phrase probability at every hop any gate checks (NaN elsewhere), each
    stream's, cached in ``path``; and the CPU seconds per verification."""
    if path.exists():
        saved = np.load(path)
        return [saved[f"p{k}"] for k in range(len(first))], float(saved["per_check"])
    size = verifier.options.window_samples
    out, spent, count = [], 0.0, 0
    for (times, scores), audio in zip(first, samples, strict=True):
        mask = np.zeros(len(scores), bool)
        for gate in gates:
            mask |= _checked(scores, gate, max_checks)
        probs = np.full(len(scores), np.nan)
        for i, end in zip(np.flatnonzero(mask), _hop_end(times[mask]), strict=True):
            window = audio[max(int(end) - size, 0) : int(end)]
            window = np.concatenate([np.zeros(size - len(window), np.float32), window])
            started = time.process_time()
            probs[i] = verifier.phrase_probability(window)
            spent += time.process_time() - started
            count += 1
        out.append(probs)
        log.info("verified %d hops", int(mask.sum()))
    per_check = spent / max(count, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {f"p{k}": p for k, p in enumerate(out)}
    np.savez(path, per_check=np.array(per_check), **arrays)
    return out, per_check


def live_latency(
    model: Any, verifier: WhisperVerifier | None, streams: TestStreams, positives: int
) -> dict[str, float]:
    """Detection latency as a live stream sees it: the first ``positives`` of the positive
    stream arrive in 80 ms chunks at the pace of speech; each chunk is processed when it has
    arrived and the previous one is done (a slow verification delays what follows), and a
    detection is reported when the call that found it returns. Latency: that moment after the
    phrase's end (wall clock, this machine), for positives found up to 1 s after their end."""
    spans = streams.positive.spans[:positives]
    samples = streams.positive.samples[: int((spans[-1][1] + 2.0) * SAMPLE_RATE)]
    detector = model.detector(verifier=verifier)
    clock, reported = 0.0, []
    for start in range(0, len(samples), HOP_SAMPLES):
        arrival = min(start + HOP_SAMPLES, len(samples)) / SAMPLE_RATE
        begin = max(arrival, clock)
        started = time.perf_counter()
        found = detector.feed(samples[start : start + HOP_SAMPLES])
        clock = begin + time.perf_counter() - started
        reported += [(d.time_s, clock) for d in found]
    delays = []
    for begin_s, end_s in spans:
        hits = [at for t, at in reported if begin_s <= t <= end_s + 1.0]
        if hits:
            delays.append(hits[0] - end_s)
    ms = np.array(delays) * 1000
    return {
        "found": len(delays) / len(spans),
        "median_ms": float(np.median(ms)) if ms.size else float("nan"),
        "p90_ms": float(np.percentile(ms, 90)) if ms.size else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="hey_jarvis")
    parser.add_argument("--whisper", default="tiny.en,base")
    parser.add_argument("--gates", default="0.1,0.3,0.5")
    parser.add_argument("--max-checks", type=int, default=8)
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--splits", default="val,test")
    parser.add_argument("--json", default=None)
    parser.add_argument("--cache", default="wakeword-verify-cache", help="verifier scores")
    parser.add_argument(
        "--latency",
        type=int,
        default=0,
        help="only measure live latency on this many test positives, with the default verifier",
    )
    args = parser.parse_args()
    cache = Path(args.cache)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = load_model(args.model)
    dataset = load_dataset(Path(args.data))
    gates = [float(g) for g in args.gates.split(",")]
    if args.latency:
        test = build_test_streams(dataset, EvaluationOptions(split="test"))
        for verifier in (None, load_verifier(model.phrase)):
            figures = live_latency(model, verifier, test, args.latency)
            name = "first stage alone" if verifier is None else f"with {DEFAULT_VERIFIER}"
            print(f"{name}: {figures}", flush=True)
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        return
    results: dict[str, dict[str, object]] = {}
    chosen: dict[tuple[str, float, int, str], float] = {}  # thresholds chosen on val
    for split in args.splits.split(","):
        streams: TestStreams = build_test_streams(dataset, EvaluationOptions(split=split))
        samples = [streams.positive.samples, streams.negative.samples, streams.confusable.samples]
        first, cpu_first = model.score_streams(samples)
        seconds = sum(len(s) for s in samples) / SAMPLE_RATE
        base = evaluate_streams(model, streams)
        print(
            f"== {split}: {streams.negative_hours:.2f} h of speech, {len(streams.positive.spans)}"
            f" positives, first stage {cpu_first / seconds:.3%} of a core"
        )
        print(_line("first stage alone", base))
        results[f"{split}/first"] = base.to_dict()
        for size in (2, 3):  # smoothing: the mean of the last hops
            smooth = []
            for times, scores in first:
                kernel = np.ones(size) / size
                smooth.append(
                    (times, np.convolve(scores, kernel)[: len(scores)].astype(np.float32))
                )
            report = evaluate_streams(
                _Fixed(model.phrase, model.threshold, f"mean of {size} hops", smooth, cpu_first),
                streams,
            )
            print(_line(f"mean of the last {size} hops", report))
            results[f"{split}/smooth{size}"] = report.to_dict()
        for name in args.whisper.split(","):
            verifier = WhisperVerifier(
                model.phrase, VerifierOptions(whisper_model=name, window_s=args.window)
            )
            probs, per_check = _verify_all(
                verifier, first, samples, gates, args.max_checks, cache / f"{split}-{name}.npz"
            )
            for gate in gates:
                for checks_cap in sorted({min(4, args.max_checks), args.max_checks}):
                    masks = [_checked(sc, gate, checks_cap) for _, sc in first]
                    checks = [int(m.sum()) for m in masks]
                    per_hour = checks[1] / streams.negative_hours
                    cost_speech = cpu_first / seconds + per_hour * per_check / 3600
                    extra = (
                        f"checks/h of speech {per_hour:.0f}, per positive "
                        f"{checks[0] / max(len(streams.positive.spans), 1):.1f}, "
                        f"{per_check * 1000:.0f} ms CPU each, cost on speech {cost_speech:.3%}"
                    )
                    label = f"{name} g{gate} k{checks_cap}"
                    # AND: only verified hops detect; the threshold is the verifier's
                    fused = [
                        (t, np.where(m, [log_score(x) for x in p], 0.0).astype(np.float32))
                        for (t, _), m, p in zip(first, masks, probs, strict=True)
                    ]
                    key = (name, gate, checks_cap, "and")
                    scorer = _Fixed(model.phrase, chosen.get(key, 0.5), label, fused, cpu_first)
                    report = evaluate_streams(scorer, streams)
                    if split == "val":
                        chosen[key] = report.at_target["0.5"].threshold
                        report = evaluate_streams(
                            _Fixed(model.phrase, chosen[key], label, fused, cpu_first), streams
                        )
                    print(_line(f"AND {label}", report, extra), flush=True)
                    results[f"{split}/and/{label}"] = {**report.to_dict(), "extra": extra}
                    # OR: the first stage alone at its threshold, or the verifier at the gate
                    key = (name, gate, checks_cap, "or")
                    if split == "val":  # the lowest verifier threshold without a false accept
                        neg = [log_score(x) for x in probs[1][masks[1]]]
                        chosen[key] = min(max(neg, default=0.0) + 0.01, 1.0)
                    t2 = chosen[key]
                    fused = [
                        (
                            t,
                            np.where(
                                m & (np.array([log_score(x) for x in p]) >= t2), 1.0, sc
                            ).astype(np.float32),
                        )
                        for (t, sc), m, p in zip(first, masks, probs, strict=True)
                    ]
                    report = evaluate_streams(
                        _Fixed(model.phrase, model.threshold, label, fused, cpu_first), streams
                    )
                    print(_line(f"OR {label} v>={t2:.2f}", report, extra), flush=True)
                    results[f"{split}/or/{label}"] = {**report.to_dict(), "extra": extra}
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
