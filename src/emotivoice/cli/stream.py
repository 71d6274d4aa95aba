"""``emotivoice stream``: live analysis of a file or the microphone through a running server."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from emotivoice.cli.common import EXIT_FAILED, EXIT_OK


def _print_stream_event(event: dict[str, object], live_line: bool) -> None:
    kind = event.get("type")
    if kind == "partial":
        text = f"… {event.get('stable', '')} [{event.get('unstable', '')}]"
        print(f"\r\033[K{text[-150:]}" if live_line else text, end="" if live_line else "\n")
        sys.stdout.flush()
        return
    prefix = "\r\033[K" if live_line else ""
    if kind == "segment":
        emotion = event.get("emotion")
        mood = ""
        if isinstance(emotion, dict):
            mood = f"  ({emotion['dominant']} {float(emotion['confidence']) * 100:.0f}%)"
        who = f"{event['speaker']}: " if event.get("speaker") else ""
        print(f"{prefix}[{event['start']:7.2f}-{event['end']:7.2f}] {who}{event['text']}{mood}")
    elif kind == "saved":
        print(f"{prefix}saved the recording as upload {event['upload_id']}")
    elif kind == "error":
        print(f"{prefix}error {event['code']}: {event['message']}", file=sys.stderr)


def cmd_stream(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Stream a file or the microphone to a server; print partials and segments live."""
    import asyncio

    from emotivoice.client.stream import DEFAULT_URL, StreamClient

    if bool(args.file) == bool(args.mic):
        parser.error("give exactly one of --file FILE and --mic")
    if args.realtime and args.mic:
        parser.error("--realtime applies to --file (a microphone is real time already)")
    url = args.url or DEFAULT_URL
    client = StreamClient(url, api_key=args.api_key)
    live_line = sys.stdout.isatty()
    start: dict[str, Any] = {"partials": not args.no_partials, "speakers": args.speakers}
    if args.language:
        start["language"] = args.language

    def show(event: dict[str, object]) -> None:
        _print_stream_event(event, live_line)

    try:
        if args.file:
            run = client.stream_file(args.file, realtime=args.realtime, on_event=show, **start)
        else:
            run = client.stream_microphone(seconds=args.seconds, on_event=show, **start)
        session = asyncio.run(run)
    except ImportError as e:
        print(f"emotivoice: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as e:
        print(f"emotivoice: error: cannot reach {url}: {e}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if session.close_code == 1000 and not session.errors else EXIT_FAILED


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("stream", help="live analysis: stream a file or the microphone to a server")
    p.add_argument("--file", default=None, help="audio file to stream (any format)")
    p.add_argument("--mic", action="store_true", help="stream the microphone (needs sounddevice)")
    p.add_argument("--realtime", action="store_true", help="pace the file at the speed of speech")
    p.add_argument("--seconds", type=float, default=None, help="stop the microphone after this")
    p.add_argument(
        "--url", default=None, help="stream endpoint (default ws://127.0.0.1:8000/api/v1/stream)"
    )
    p.add_argument("--api-key", default=None, help="API key, when the server requires one")
    p.add_argument("--language", default=None, help="force a language (ISO code)")
    p.add_argument("--no-partials", action="store_true", help="final segments only")
    p.add_argument(
        "--speakers",
        action="store_true",
        help="label each final segment with a speaker (about 0.1-0.3 s more per segment on 2 "
        "CPU cores)",
    )
    p.set_defaults(func=cmd_stream)
