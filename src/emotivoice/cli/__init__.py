"""The ``emotivoice`` command: thin subcommands, each calling one library function.

One module per command group: :mod:`~emotivoice.cli.analyze` (analyze, export, models,
languages, schema), :mod:`~emotivoice.cli.emotion` (train-emotion, benchmark-emotion),
:mod:`~emotivoice.cli.service` (serve, worker, keys), :mod:`~emotivoice.cli.stream`,
:mod:`~emotivoice.cli.attack`, :mod:`~emotivoice.cli.bench`, :mod:`~emotivoice.cli.wakeword` and
:mod:`~emotivoice.cli.assistant`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from emotivoice._version import __version__
from emotivoice.cli import (
    analyze,
    assistant,
    attack,
    bench,
    emotion,
    service,
    stream,
    wakeword,
)
from emotivoice.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from emotivoice.errors import EmotiVoiceError

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

_GROUPS = (
    analyze,
    bench,
    emotion,
    service,
    stream,
    attack,
    wakeword,
    assistant,
)  # in the order --help lists them


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``emotivoice`` command."""
    parser = argparse.ArgumentParser(
        prog="emotivoice",
        description="EmotiVoice: what was said, how it was said, and why the model decided so.",
    )
    parser.add_argument("--version", action="version", version=f"emotivoice {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in _GROUPS:
        group.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``emotivoice`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.func(args, parser)
    except EmotiVoiceError as e:
        print(f"emotivoice: error: {e.message} [{e.code}]", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("emotivoice: interrupted", file=sys.stderr)
        return 130
    return code
