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


# Each option sits on ``bench`` itself (where the old single parser had it, so that
# ``bench --max-files 1 stream`` still works) and again on the mode that uses it, there without
# a default so that it never overwrites a value given before the mode.


def _default(value: object, defaults: bool) -> object:
    return value if defaults else argparse.SUPPRESS


def _common_arguments(parser: argparse.ArgumentParser, defaults: bool) -> None:
    parser.add_argument(
        "--data",
        default=_default(None, defaults),
        help="shared data dir (default: $EMOTIVOICE_DATA_DIR)",
    )
    parser.add_argument(
        "--json", default=_default(None, defaults), help="also write the figures to this file"
    )


def _rtf_arguments(parser: argparse.ArgumentParser, defaults: bool) -> None:
    parser.add_argument("--model", default=_default("base", defaults))
    parser.add_argument("--beam-size", type=int, default=_default(5, defaults))
    parser.add_argument(
        "--threads", type=int, default=_default(2, defaults), help="CPU threads for both runs"
    )
    parser.add_argument(
        "--repeats", type=int, default=_default(1, defaults), help="timed passes over the set"
    )


def _stream_arguments(parser: argparse.ArgumentParser, defaults: bool) -> None:
    parser.add_argument(
        "--max-files", type=int, default=_default(None, defaults), help="stream: first N clips"
    )
    parser.add_argument(
        "--endpoint-ms",
        type=int,
        default=_default(300, defaults),
        help="stream: silence ending speech",
    )
    parser.add_argument(
        "--modes",
        default=_default("fit+speculative,fit,full", defaults),
        help="stream: comma-separated modes measured side by side (fit+speculative: the "
        "default; fit: no speculation; full: final segments exactly as batch analysis)",
    )


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser(
        "bench", help="real-time factor of analyze vs plain faster-whisper; 'bench stream': live"
    )
    for arguments in (_common_arguments, _rtf_arguments, _stream_arguments):
        arguments(bench, defaults=True)
    bench.set_defaults(func=cmd_bench)  # plain 'bench' measures the real-time factor
    modes = bench.add_subparsers(dest="mode", metavar="{rtf,stream}")
    rtf = modes.add_parser("rtf", help="real-time factor against plain faster-whisper (default)")
    _common_arguments(rtf, defaults=False)
    _rtf_arguments(rtf, defaults=False)
    rtf.set_defaults(func=cmd_bench)
    stream = modes.add_parser("stream", help="live-analysis latency over an in-process server")
    _common_arguments(stream, defaults=False)
    _stream_arguments(stream, defaults=False)
    stream.set_defaults(func=cmd_bench_stream)
