"""Benchmark: who spoke when, on conversations built from speakers the threshold never saw.

Prints, per conversation set (the ``test`` speakers: RAVDESS actors 11-20, nEMO MK0, MP0, SM0,
TP0, WR0; 2-4 speakers; half with overlapping turns), the diarization error rate with a 0.25 s
collar and overlaps not scored (pyannote.metrics), its missed / false-alarm / confusion parts,
how often the number of speakers is right, and the real-time factor of diarization; then the
stereo sample, and what diarization adds to a whole ``analyze`` (features and emotion on).

Usage: ``python benchmarks/diarization.py [--conversations 12] [--cost 3] [--split test]
[--json]``.
"""

from __future__ import annotations

import argparse
import json
import time

from emotivoice.audio import load_audio
from emotivoice.diarization import DiarizationOptions
from emotivoice.evaluation.datasets import reference_utterances
from emotivoice.evaluation.diarization import (
    STYLE_SETS,
    analysis_cost,
    build_conversations,
    der_report,
    online_report,
    stereo_check,
    summarise_scores,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=12, help="per set (default 12)")
    parser.add_argument("--split", choices=["dev", "test"], default="test")
    parser.add_argument(
        "--cost", type=int, default=3, help="conversations analysed with/without (default 3)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    options = DiarizationOptions()
    figures: dict[str, object] = {"threshold": options.threshold, "split": args.split}
    sets: dict[str, dict[str, float]] = {}
    steady = []
    for name, emotions in STYLE_SETS.items():
        conversations = build_conversations(
            args.split, args.conversations, emotions_per_speaker=emotions
        )
        if emotions == 1:
            steady = conversations
        started = time.perf_counter()
        sets[name] = summarise_scores(der_report(conversations, options))
        sets[name]["audio_s"] = sum(c.duration for c in conversations)
        sets[name]["wall_s"] = time.perf_counter() - started
    figures["sets"] = sets
    figures["live_steady"] = summarise_scores(online_report(steady))
    figures["stereo"] = stereo_check()
    if args.cost:
        figures["analyze_cost"] = analysis_cost([c.samples for c in steady[: args.cost]])
        # one voice per file: the 15 reference utterances (LibriSpeech, LibriVox; 108 s)
        single = [load_audio(u.path).samples for u in reference_utterances()]
        figures["analyze_cost_one_voice"] = analysis_cost(single)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"speakers: {args.split} half; threshold {options.threshold}; collar 0.25 s")
    print(
        f"{'set':<12} {'convs':>5} {'DER':>6} {'missed':>7} {'f.alarm':>7} {'confus.':>7}"
        f" {'count ok':>8} {'RTF':>6}"
    )
    for name, s in sets.items():
        print(
            f"{name:<12} {s['conversations']:>5.0f} {s['der']:>6.1%} {s['missed']:>7.1%}"
            f" {s['false_alarm']:>7.1%} {s['confusion']:>7.1%} {s['count_accuracy']:>8.0%}"
            f" {s['rtf']:>6.3f}"
        )
    live = figures["live_steady"]
    assert isinstance(live, dict)
    print(
        f"live labels (steady set): DER {live['der']:.1%}, missed {live['missed']:.1%}, false"
        f" alarm {live['false_alarm']:.1%}, confusion {live['confusion']:.1%}, count right"
        f" {live['count_accuracy']:.0%}, RTF {live['rtf']:.3f}"
    )
    print(f"stereo sample: {figures['stereo']}")
    if args.cost:
        for key, what in (
            ("analyze_cost", f"{min(args.cost, len(steady))} conversations"),
            ("analyze_cost_one_voice", "the 15 reference utterances (one voice each)"),
        ):
            cost = figures[key]
            assert isinstance(cost, dict)
            print(
                f"analyze of {what}: {cost['seconds_without']:.1f} s without diarization, "
                f"{cost['seconds_with']:.1f} s with ({cost['added']:+.1%})"
            )


if __name__ == "__main__":
    main()
