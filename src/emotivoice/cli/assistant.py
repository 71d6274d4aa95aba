"""``emotivoice assistant``: talk to the local voice assistant (microphone and speaker, or a
file / standard input and a folder of replies for scripted use)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from emotivoice.cli.common import EXIT_OK

VOICES = ("auto", "piper", "espeak-ng")
_OUTCOME_CHARS = 100  # of a browser action's outcome, on the terminal


def _show(turn: Any) -> None:
    user, trace = turn.user, turn.trace
    mood = ""
    if user.emotion is not None:
        mood = f" ({user.emotion.dominant} {user.emotion.confidence * 100:.0f}%)"
    print(f"you{mood}: {user.text}")
    flag = " [cut]" if turn.cut else ""
    print(f"assistant [{turn.style}]{flag}: {turn.reply or ' '.join(turn.sentences)}")
    if turn.error:
        print(f"  error {turn.error['code']}: {turn.error['message']}", file=sys.stderr)
    for action in turn.actions:
        status = "ok" if action.ok else action.code
        outcome = action.outcome[:_OUTCOME_CHARS] + (
            "…" if len(action.outcome) > _OUTCOME_CHARS else ""
        )
        print(
            f"  browser {action.tool}({action.argument!r}): {status} "
            f"in {action.duration_s:.2f} s: {outcome}"
        )
    stages = (
        ("transcript", trace.final_transcript_s),
        ("first token", trace.first_token_s),
        ("first sentence", trace.first_sentence_s),
        ("first audio", trace.first_audio_s),
        ("voice-to-voice", trace.voice_to_voice_s),
    )
    figures = ", ".join(f"{name} {value:.2f} s" for name, value in stages if value is not None)
    print(f"  latency after end of speech: {figures}", flush=True)


def cmd_assistant(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Converse with the assistant until the input ends (or Ctrl+C on a microphone)."""
    from emotivoice.assistant.listener import StreamListener, WakeWordStage
    from emotivoice.assistant.llm import LocalModel, OpenAIChatModel
    from emotivoice.assistant.pipeline import Assistant, AssistantOptions
    from emotivoice.assistant.record import TurnLog
    from emotivoice.assistant.sources import audio_chunks, microphone_chunks, pcm_stream_chunks
    from emotivoice.assistant.speech import BufferSink, SoundDeviceSink, default_speaker
    from emotivoice.assistant.tools import BrowserPolicy, BrowserTool
    from emotivoice.errors import InvalidConfigError
    from emotivoice.pipeline import AnalyzeOptions, Analyzer

    if args.barge_in and args.input and not args.realtime:
        parser.error(
            "--barge-in with --input needs --realtime (the input must run at the pace "
            "of speech for the reply to be interrupted)"
        )
    if args.model and args.llm_url:
        parser.error("give at most one of --model (a local GGUF file) and --llm-url (a server)")
    browser = None
    if not args.browser and (args.allow_host or args.allow_file or args.chromium):
        parser.error("--allow-host, --allow-file and --chromium need --browser")
    if args.browser:
        try:
            policy = BrowserPolicy(
                allowed_hosts=tuple(args.allow_host),
                allow_file=args.allow_file,
                max_actions=args.browser_actions,
            )
        except InvalidConfigError as error:
            parser.error(error.message)
        browser = BrowserTool(policy, args.chromium)
        if not policy.allowed_hosts and not policy.allow_file:
            print(
                "browser on, but no host is allowed yet: every page will be refused "
                "(--allow-host HOST)",
                file=sys.stderr,
            )
    live = args.input is None
    during = "barge_in" if args.barge_in else ("ignore" if live else "wait")
    options = AssistantOptions(
        max_reply_tokens=args.max_tokens, during_reply=during, first_token_timeout_s=args.timeout
    )
    if live:
        audio = microphone_chunks()
    elif args.input == "-":
        audio = pcm_stream_chunks(sys.stdin.buffer)
    else:
        audio = audio_chunks(Path(args.input), realtime=args.realtime)
    sink = SoundDeviceSink() if live else BufferSink(realtime=args.realtime)
    if args.llm_url:
        model: Any = OpenAIChatModel(
            args.llm_url, args.llm_model, args.llm_api_key, timeout_s=args.timeout
        )
    else:
        model = LocalModel(args.model)
    analyze = AnalyzeOptions.from_kwargs(language=args.language) if args.language else None
    assistant = Assistant(
        StreamListener(Analyzer(analyze)),
        model,
        default_speaker(args.voice),
        sink,
        options,
        wake=WakeWordStage(args.wake_model) if args.wake else None,
        browser=browser,
    )
    log = TurnLog(Path(args.output)) if args.output else None

    def on_turn(turn: Any) -> None:
        _show(turn)
        if log is not None:
            log(turn)

    if live:
        how = f"say '{assistant.wake.phrase}', then speak" if assistant.wake else "speak"
        print(f"listening: {how} (Ctrl+C to stop)", file=sys.stderr, flush=True)

    async def converse() -> list[Any]:
        async with assistant:  # closes the browser's Chromium
            return await assistant.converse(audio, on_turn)

    turns = asyncio.run(converse())
    if log is not None:
        print(f"{len(turns)} turns written to {log.folder}")
    return EXIT_OK


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "assistant",
        help="talk to the local voice assistant (microphone and speaker, or files)",
        description="Wake word → live transcription with emotion → local language model → "
        "speech. Without --input: the microphone and the speaker (the mic extra); barge-in "
        "is off on speakers (the microphone would hear the reply), --barge-in turns it on "
        "for headphones.",
    )
    p.add_argument(
        "--input",
        default=None,
        help="audio file to answer (any format), or - for raw 16 kHz mono s16le on "
        "standard input; default: the microphone",
    )
    p.add_argument(
        "--output",
        default=None,
        help="folder for the replies: turn-NN.wav, turn-NN.json, turns.jsonl",
    )
    p.add_argument(
        "--realtime",
        action="store_true",
        help="feed --input at the pace of speech and play replies in real time",
    )
    p.add_argument(
        "--barge-in",
        action="store_true",
        help="the user's speech interrupts a reply (use headphones)",
    )
    p.add_argument(
        "--wake",
        action="store_true",
        help="answer only after the wake word (default: every utterance)",
    )
    p.add_argument(
        "--wake-model",
        default="hey_jarvis",
        help="wake-word model: a shipped name or a studio ONNX file",
    )
    p.add_argument(
        "--model",
        default=None,
        help="local GGUF model file (default: the shipped SmolLM2-135M-Instruct)",
    )
    p.add_argument(
        "--llm-url",
        default=None,
        help="an OpenAI-compatible server instead, up to /v1 (Ollama: http://127.0.0.1:11434/v1)",
    )
    p.add_argument("--llm-model", default="default", help="the model name the server expects")
    p.add_argument("--llm-api-key", default=None, help="bearer token for the server")
    p.add_argument("--max-tokens", type=int, default=80, help="longest reply in tokens")
    p.add_argument(
        "--timeout",
        type=float,
        default=20.0,
        help="seconds to wait for the model's first token before apologising",
    )
    p.add_argument(
        "--voice",
        choices=VOICES,
        default="auto",
        help="TTS: Piper when installed (auto), else espeak-ng",
    )
    p.add_argument("--language", default=None, help="force the user's language (ISO code)")
    p.add_argument(
        "--browser",
        action="store_true",
        help="let the model open, read, search and click web pages (headless Chromium); "
        "nothing is opened until a host is allowed",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="a host the browser may open (example.org or 127.0.0.1:8000; repeatable)",
    )
    p.add_argument(
        "--allow-file", action="store_true", help="the browser may open file: URLs (local files)"
    )
    p.add_argument(
        "--browser-actions",
        type=int,
        default=3,
        metavar="N",
        help="the most browser actions one turn may take (default 3)",
    )
    p.add_argument(
        "--chromium",
        default=None,
        metavar="PATH",
        help="the Chromium to run (default: chromium on the PATH, else Playwright's own)",
    )
    p.set_defaults(func=cmd_assistant)
