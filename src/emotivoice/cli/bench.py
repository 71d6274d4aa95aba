"""``emotivoice bench``: the real-time factor of analyze against plain faster-whisper
(``bench rtf``, the default) and live-analysis latency (``bench stream``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from emotivoice.cli.common import EXIT_OK


def cmd_bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Benchmark analyze() against plain faster-whisper on the reference utterances."""
    from emotivoice.evaluation.rtf import format_report, run_benchmark

    report = run_benchmark(
        data_dir=Path(args.data) if args.data else None,
        model=args.model,
        beam_size=args.beam_size,
        cpu_threads=args.threads,
        repeats=args.repeats,
    )
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2))
    return EXIT_OK


def cmd_bench_stream(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Live-analysis latency and agreement with batch over a real in-process server."""
    from emotivoice.evaluation.stream import format_stream_report, run_stream_benchmark

    reports = run_stream_benchmark(
        data_dir=Path(args.data) if args.data else None,
        max_files=args.max_files,
        endpoint_silence_ms=args.endpoint_ms,
        modes=[m.strip() for m in args.modes.split(",") if m.strip()],
    )
    print(format_stream_report(reports))
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in reports], indent=2))
    return EXIT_OK


def _common_arguments(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """``--data`` and ``--json``, on ``bench`` and on each mode (``bench stream --data X`` and
    ``bench --data X stream`` both work: a mode's copy has no default to overwrite it with)."""
    default = None if defaults else argparse.SUPPRESS
    parser.add_argument(
        "--data", default=default, help="shared data dir (default: $EMOTIVOICE_DATA_DIR)"
    )
    parser.add_argument("--json", default=default, help="also write the figures to this file")


def _rtf_arguments(parser: argparse.ArgumentParser, defaults: bool) -> None:
    def given(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--model", default=given("base"))
    parser.add_argument("--beam-size", type=int, default=given(5))
    parser.add_argument("--threads", type=int, default=given(2), help="CPU threads for both runs")
    parser.add_argument("--repeats", type=int, default=given(1), help="timed passes over the set")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser(
        "bench", help="real-time factor of analyze vs plain faster-whisper; 'bench stream': live"
    )
    _common_arguments(bench, defaults=True)
    _rtf_arguments(bench, defaults=True)  # plain 'bench' measures the real-time factor
    bench.set_defaults(func=cmd_bench)
    modes = bench.add_subparsers(dest="mode", metavar="{rtf,stream}")
    rtf = modes.add_parser("rtf", help="real-time factor against plain faster-whisper (default)")
    _common_arguments(rtf, defaults=False)
    _rtf_arguments(rtf, defaults=False)
    rtf.set_defaults(func=cmd_bench)
    stream = modes.add_parser("stream", help="live-analysis latency over an in-process server")
    _common_arguments(stream, defaults=False)
    stream.add_argument("--max-files", type=int, default=None, help="first N clips only")
    stream.add_argument("--endpoint-ms", type=int, default=300, help="silence ending speech")
    stream.add_argument(
        "--modes",
        default="fit+speculative,fit,full",
        help="comma-separated modes measured side by side (fit+speculative: the default; "
        "fit: no speculation; full: final segments exactly as batch analysis)",
    )
    stream.set_defaults(func=cmd_bench_stream)
