"""The ``emotivoice`` command: thin subcommands, each calling one library function."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emotivoice._version import __version__
from emotivoice.errors import EmotiVoiceError

if TYPE_CHECKING:
    from emotivoice.pipeline import Analyzer

logger = logging.getLogger("emotivoice.cli")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_PROGRESS_MIN_SECONDS = 60.0  # show a per-file progress bar for recordings longer than this


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one input of ``emotivoice analyze``."""

    path: Path
    ok: bool
    duration: float = 0.0
    language: str = ""
    segments: int = 0
    words: int = 0
    emotion: str = "-"
    error: str = ""


def _collect_inputs(paths: Sequence[str]) -> list[Path]:
    """Expand directories (audio extensions, recursively); keep named files as given."""
    from emotivoice.audio import find_audio_files

    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        files.extend(find_audio_files(path) if path.is_dir() else [path])
    return files


def _unique_stem(path: Path, used: set[str]) -> str:
    stem, n = path.stem, 2
    while stem in used:
        stem, n = f"{path.stem}-{n}", n + 1
    used.add(stem)
    return stem


def _analyze_one(
    analyzer: Analyzer,
    path: Path,
    out: Path,
    stem: str,
    formats: list[str],
    explain_methods: list[str] | None = None,
    n_windows: int = 6,
    explain_budget: int = 100,
) -> FileOutcome:
    from tqdm import tqdm

    from emotivoice.export import write_outputs

    audio = analyzer.load(path)
    bar = None
    if audio.duration >= _PROGRESS_MIN_SECONDS and sys.stderr.isatty():
        bar = tqdm(total=round(audio.duration, 1), unit="s", desc=path.name, leave=False)

    def progress(done: float, total: float, message: str) -> None:
        if bar is not None:
            bar.update(round(done, 1) - bar.n)

    try:
        analysis = analyzer.analyze(audio, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    # the PDF report comes last, to show the explanation figures
    write_outputs(analysis, out, stem, [f for f in formats if f != "pdf"])
    explain_dir = None
    if explain_methods and analysis.segments and analyzer.options.emotion is not None:
        from emotivoice.audio import SAMPLE_RATE
        from emotivoice.explain.attribution import AttributionOptions
        from emotivoice.explain.core import explain, write_report

        explanations = explain(
            audio.samples,
            sample_rate=SAMPLE_RATE,
            analysis=analysis,
            methods=explain_methods,
            emotion_model=analyzer.options.emotion.model,
            attribution=AttributionOptions(n_windows=n_windows),
            budget=explain_budget,
        )
        explain_dir = _explain_dir(out, stem)
        write_report(analysis, audio.samples, explanations, explain_dir)
    if "pdf" in formats:
        write_outputs(analysis, out, stem, ["pdf"], explain_dir)
    return FileOutcome(
        path=path,
        ok=True,
        duration=analysis.duration,
        language=analysis.language or "-",
        segments=len(analysis.segments),
        words=sum(len(s.words) for s in analysis.segments),
        emotion=analysis.emotion.dominant if analysis.emotion else "-",
    )


def _explain_dir(out: Path, stem: str) -> Path:
    """The folder of ``analyze --explain``'s report for the input named ``stem``."""
    return out / f"{stem}-explain"


def _print_summary(outcomes: list[FileOutcome]) -> None:
    width = max([len(o.path.name) for o in outcomes] + [4])
    print(
        f"{'file':<{width}}  {'status':<6}  {'duration':>8}  {'lang':<4}  {'segs':>4}  {'words':>5}"
        f"  emotion"
    )
    for o in outcomes:
        if o.ok:
            print(
                f"{o.path.name:<{width}}  {'ok':<6}  {o.duration:>7.1f}s  {o.language:<4}  "
                f"{o.segments:>4}  {o.words:>5}  {o.emotion}"
            )
        else:
            print(f"{o.path.name:<{width}}  {'FAILED':<6}  {o.error}")


def _explain_methods(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str] | None:
    """The explanation methods asked for (``None`` without ``--explain``), checked up front."""
    from emotivoice.explain.attribution import AttributionOptions
    from emotivoice.explain.core import METHODS, check_methods, plan_budget

    if not args.explain:
        return None
    methods = [m.strip() for m in args.explain_methods.split(",") if m.strip()]
    if not methods or set(methods) - set(METHODS):
        parser.error(f"--explain-methods: choose from {','.join(METHODS)}")
    if args.no_emotion:
        parser.error("--explain explains emotions; it cannot be used with --no-emotion")
    try:
        check_methods(methods, args.emotion_model)
        plan_budget(
            methods, AttributionOptions(n_windows=args.explain_windows), args.explain_budget
        )
    except EmotiVoiceError as e:
        parser.error(f"--explain: {e.message}")
    return methods


def _formats(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    """The ``--format`` list, checked up front."""
    from emotivoice.export import EXPORT_FORMATS

    formats = [f.strip().lower() for f in args.format.split(",") if f.strip()]
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown or not formats:
        parser.error(f"--format: unknown {unknown}; choose from {','.join(EXPORT_FORMATS)}")
    return formats


def cmd_analyze(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Analyse files and directories; one bad file is reported and skipped."""
    from tqdm import tqdm

    from emotivoice.pipeline import AnalyzeOptions, Analyzer

    formats = _formats(args, parser)
    if args.fast and args.beam_size is not None:
        parser.error("--fast and --beam-size are mutually exclusive (--fast means beam size 1)")
    explain_methods = _explain_methods(args, parser)
    files = _collect_inputs(args.inputs)
    if not files:
        parser.error("no audio files found in the given inputs")
    options: dict[str, object] = {
        "model": args.model,
        "language": args.language,
        "device": args.device,
        "beam_size": 1 if args.fast else (args.beam_size or 5),
        "max_segment_s": args.max_segment,
        "max_duration": args.max_duration,
        "features": not args.no_features,
        "emotion": not args.no_emotion,
        "emotion_model": args.emotion_model,
        "taxonomy": args.taxonomy,
    }
    if args.compute_type:
        options["compute_type"] = args.compute_type
    try:
        analyzer = Analyzer(AnalyzeOptions.from_kwargs(**options))
    except EmotiVoiceError as e:
        print(f"emotivoice: error: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.output)
    used: set[str] = set()
    outcomes: list[FileOutcome] = []
    show_bar = len(files) > 1 and not args.quiet
    for path in tqdm(files, desc="files", unit="file", disable=not show_bar):
        try:
            outcomes.append(
                _analyze_one(
                    analyzer,
                    path,
                    out,
                    _unique_stem(path, used),
                    formats,
                    explain_methods,
                    args.explain_windows,
                    args.explain_budget,
                )
            )
        except EmotiVoiceError as e:
            logger.debug("%s failed", path, exc_info=True)
            print(f"emotivoice: {path}: {e.message} [{e.code}]", file=sys.stderr)
            outcomes.append(FileOutcome(path=path, ok=False, error=f"{e.code}: {e.message}"))
    if not args.quiet:
        _print_summary(outcomes)
    failed = sum(not o.ok for o in outcomes)
    if failed:
        print(f"emotivoice: {failed} of {len(outcomes)} file(s) failed", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Write saved analyses (their JSON) in other formats, without analysing again."""
    from emotivoice.export import write_outputs
    from emotivoice.results import load_analysis

    formats = _formats(args, parser)
    failed = 0
    for path in map(Path, args.inputs):
        explain_dir = _explain_dir(path.parent, path.stem)  # where analyze --explain wrote
        try:
            written = write_outputs(
                load_analysis(path),
                Path(args.output),
                path.stem,
                formats,
                explain_dir if explain_dir.is_dir() else None,
            )
        except EmotiVoiceError as e:
            print(f"emotivoice: {path}: {e.message} [{e.code}]", file=sys.stderr)
            failed += 1
            continue
        for file in written:
            print(file)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_models(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """List Whisper models and whether they are available offline."""
    from emotivoice.models import model_info

    for info in model_info():
        state = "installed" if info.installed else "download"
        print(f"{info.name:<20} {info.source:<8} {state:<9} {info.description}")
    return EXIT_OK


def cmd_languages(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """List the language codes Whisper transcribes."""
    from emotivoice.transcription import supported_languages

    print(" ".join(supported_languages()))
    return EXIT_OK


def cmd_schema(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Print the JSON Schema of the analysis JSON."""
    from emotivoice.results import analysis_json_schema

    print(json.dumps(analysis_json_schema(), indent=2))
    return EXIT_OK


def cmd_bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Benchmark analyze() against plain faster-whisper on the reference utterances."""
    if args.mode == "stream":
        return cmd_bench_stream(args, parser)
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
        print(f"{prefix}[{event['start']:7.2f}-{event['end']:7.2f}] {event['text']}{mood}")
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
    start: dict[str, Any] = {"partials": not args.no_partials}
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


def _add_stream_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    p.set_defaults(func=cmd_stream)


def cmd_train_emotion(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Train the emotion head with the recipe on corpora in the shared data layout."""
    import numpy as np

    from emotivoice.evaluation.datasets import data_dir
    from emotivoice.models.torch_head import encoder_variables
    from emotivoice.models.torch_whisper import load_torch_whisper, mel_filters
    from emotivoice.training.config import TrainConfig
    from emotivoice.training.corpora import read_corpus
    from emotivoice.training.recipe import run_recipe
    from emotivoice.training.states import build_state_set, prepare_clips

    config = TrainConfig(  # checked before any audio is read
        epochs=args.epochs,
        min_steps=args.min_steps,
        augment_copies=args.augment_copies,
        seed=args.seed,
        adapter_rank=args.adapter_rank,
        soup=args.soup,
    )
    root = data_dir(Path(args.data) if args.data else None)
    labeled = []
    for corpus in [c.strip() for c in args.corpora.split(",") if c.strip()]:
        found = read_corpus(root / corpus, corpus)
        if args.max_clips_per_corpus:
            step = max(1, len(found) // args.max_clips_per_corpus)
            found = found[::step][: args.max_clips_per_corpus]
        labeled += found
    clips = prepare_clips(labeled)
    if config.adapter_rank:  # the prefix is fine-tuned from the log-mel frames
        encoder, variables = None, encoder_variables("base")
    else:
        encoder, variables = load_torch_whisper("base", args.device).model.model.encoder, None
    states = build_state_set(encoder, mel_filters(), clips, config, args.device, variables)
    result = run_recipe(
        states, config, args.device, args.ravdess_folds, args.nemo_folds, not args.no_eval
    )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **result.arrays)  # type: ignore[arg-type]
    report = out.with_suffix(".json")
    report.write_text(json.dumps(result.summary(), indent=1))
    for name, figures in result.evaluations.items():
        print(f"{name:<28} UA {figures['ua']:.3f}  accuracy {figures['accuracy']:.3f}")
    print(f"head written to {out}, report to {report}")
    return EXIT_OK


def cmd_benchmark_emotion(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Score an emotion backend on a labelled corpus."""
    from emotivoice.emotion.backends import EmotionOptions
    from emotivoice.evaluation.emotion import (
        format_benchmark,
        run_emotion_benchmark,
        write_confusion,
    )

    try:
        result = run_emotion_benchmark(
            Path(args.dataset),
            args.layout,
            EmotionOptions(model=args.emotion_model),
            args.max_clips,
            args.cross_validate,
        )
    except EmotiVoiceError as e:
        print(f"emotivoice: error: {e.message} [{e.code}]", file=sys.stderr)
        return EXIT_USAGE
    print(format_benchmark(result))
    for path in write_confusion(result, Path(args.output)):
        print(f"wrote {path}")
    return EXIT_OK


def _add_emotion_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from emotivoice.training.config import TrainConfig
    from emotivoice.training.corpora import LAYOUTS

    t = sub.add_parser("train-emotion", help="train the emotion head (needs emotivoice[torch])")
    t.add_argument("--data", default=None, help="folder holding the corpora (default: shared)")
    t.add_argument("--corpora", default="ravdess,nemo", help="corpus folders/layouts to use")
    t.add_argument("-o", "--output", default="emotion-head.npz", help="where to write the head")
    t.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    t.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    t.add_argument(
        "--min-steps",
        type=int,
        default=TrainConfig.min_steps,
        help="train more epochs when a small corpus would get fewer optimiser steps (0: off)",
    )
    t.add_argument(
        "--augment-copies",
        type=int,
        default=TrainConfig.augment_copies,
        help="augmented copies per clip",
    )
    t.add_argument(
        "--adapter-rank",
        type=int,
        default=TrainConfig.adapter_rank,
        help="LoRA rank for fine-tuning the encoder layers the head reads (0: frozen encoder)",
    )
    t.add_argument(
        "--soup",
        type=int,
        default=TrainConfig.soup,
        help="fits per model whose weights are averaged (the cost of training grows with it)",
    )
    t.add_argument("--ravdess-folds", type=int, default=4)
    t.add_argument("--nemo-folds", type=int, default=3)
    t.add_argument("--max-clips-per-corpus", type=int, default=None, help="subsample (tests)")
    t.add_argument("--no-eval", action="store_true", help="skip the evaluation folds")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=cmd_train_emotion)
    b = sub.add_parser("benchmark-emotion", help="score an emotion backend on a corpus")
    b.add_argument("dataset", help="corpus folder")
    b.add_argument("--layout", required=True, choices=LAYOUTS)
    b.add_argument("--emotion-model", default="default", help="default, a .npz or hf:<id>")
    b.add_argument("--max-clips", type=int, default=None, help="random subset of this size")
    b.add_argument("--cross-validate", type=int, default=0, metavar="K", help="recipe K folds")
    b.add_argument("-o", "--output", default="emotion-benchmark", help="folder for JSON/PNG")
    b.set_defaults(func=cmd_benchmark_emotion)


def _service_settings(args: argparse.Namespace) -> object:
    from emotivoice.service import require_service_extra

    require_service_extra()
    from emotivoice.service.settings import load_settings

    overrides = {"home": args.home} if getattr(args, "home", None) else {}
    return load_settings(**overrides)


def cmd_serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run the REST API (and, in embedded mode, its worker processes)."""
    from emotivoice.service.server import serve

    settings = _service_settings(args)
    serve(settings, host=args.host, port=args.port, workers=args.workers)  # type: ignore[arg-type]
    return EXIT_OK


def cmd_worker(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run a job worker for the broker and database in the settings."""
    from emotivoice.service.server import run_worker

    run_worker(_service_settings(args), args.concurrency, args.pool)  # type: ignore[arg-type]
    return EXIT_OK


def cmd_keys(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Create, list and revoke API keys (stored hashed; a secret is shown once)."""
    from emotivoice.service.storage import Store

    store = Store(_service_settings(args))  # type: ignore[arg-type]
    if args.action == "create":
        key = store.create_key(args.name or "unnamed")
        print(f"id     {key.id}\nname   {key.name}\nsecret {key.secret}")
        print("Keep the secret now: it is stored only as a hash and cannot be shown again.")
    elif args.action == "list":
        for row in store.list_keys():
            state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
            print(f"{row.id}  {row.prefix}…  {state:<18} {row.name}")
    else:
        if not args.name:
            parser.error("keys revoke needs the key id")
        store.revoke_key(args.name)
        print(f"revoked {args.name}")
    return EXIT_OK


def _add_service_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("serve", help="run the REST API with an embedded job queue and worker")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1, help="embedded worker processes")
    s.add_argument("--home", default=None, help="data directory (default: $EMOTIVOICE_HOME)")
    s.set_defaults(func=cmd_serve)
    w = sub.add_parser("worker", help="run a job worker (scale-out: Redis broker)")
    w.add_argument("--concurrency", type=int, default=None, help="jobs at once")
    w.add_argument("--pool", default="prefork", choices=["prefork", "solo", "threads"])
    w.add_argument("--home", default=None, help="data directory (default: $EMOTIVOICE_HOME)")
    w.set_defaults(func=cmd_worker)
    k = sub.add_parser("keys", help="manage API keys: create NAME | list | revoke ID")
    k.add_argument("action", choices=["create", "list", "revoke"])
    k.add_argument("name", nargs="?", default=None, help="key name (create) or id (revoke)")
    k.add_argument("--home", default=None, help="data directory (default: $EMOTIVOICE_HOME)")
    k.set_defaults(func=cmd_keys)


def _add_analyze(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("analyze", help="analyse audio files or directories")
    p.add_argument("inputs", nargs="+", metavar="FILE|DIR", help="audio files or directories")
    p.add_argument("-o", "--output", default=".", help="output directory (default: .)")
    p.add_argument("--format", default="json", help="comma-separated: json,csv,srt,vtt,pdf")
    p.add_argument("--language", default=None, help="force a language (ISO code); default: detect")
    p.add_argument(
        "--model", default="base", help="Whisper model name or directory (default: base)"
    )
    p.add_argument("--beam-size", type=int, default=None, help="beam width (default 5)")
    p.add_argument("--fast", action="store_true", help="greedy decoding (beam size 1)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--compute-type", default=None, help="CTranslate2 compute type (int8, float16, ...)"
    )
    p.add_argument(
        "--max-segment", type=float, default=15.0, help="max segment length, s (default 15)"
    )
    p.add_argument(
        "--max-duration", type=float, default=4 * 3600.0, help="longest accepted input, s"
    )
    p.add_argument("--no-features", action="store_true", help="skip acoustic features")
    p.add_argument(
        "--emotion-model",
        default="default",
        help="emotion backend: default (shipped head), a head .npz, or hf:<hub id or folder>",
    )
    p.add_argument("--taxonomy", default=None, help="your own emotion taxonomy YAML file")
    p.add_argument("--no-emotion", action="store_true", help="skip emotion recognition")
    p.add_argument(
        "--explain",
        action="store_true",
        help="explain each segment's emotion: JSON and plots in OUT/NAME-explain/",
    )
    p.add_argument(
        "--explain-methods",
        default="shapley,counterfactual",
        help="comma-separated: shapley,counterfactual,attention,gradients",
    )
    p.add_argument(
        "--explain-windows", type=int, default=6, help="windows per segment (2^N evaluations)"
    )
    p.add_argument(
        "--explain-budget",
        type=int,
        default=100,
        metavar="N",
        help="most model evaluations per explained segment: time attribution, LIME, deletion "
        "curves and counterfactuals together (default 100; the defaults use 72)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary table")
    p.set_defaults(func=cmd_analyze)


def cmd_attack(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Adversarial examples against Whisper (robustness lab) with their reports."""
    from emotivoice.robustness import (
        AttackOptions,
        LabOptions,
        UntargetedOptions,
        load_attack_csv,
        load_attack_dir,
        load_items,
        run_lab,
        summary_table,
        write_outputs,
    )
    from emotivoice.robustness.attack import INT16_SCALE

    source = Path(args.input)
    targeted = args.mode == "targeted"
    is_csv = source.suffix.lower() == ".csv" and not source.is_dir()
    if args.audio_dir and not is_csv:
        parser.error("--audio-dir is the folder of a CSV's files; pass a CSV with it")
    if is_csv:
        if args.target:
            parser.error("--target is for audio files and directories; a CSV names its own targets")
        audio_dir = Path(args.audio_dir) if args.audio_dir else None
        items = load_attack_csv(source, audio_dir, targeted=targeted)
    else:
        kind = "a directory" if source.is_dir() else "one audio file"
        if targeted and not args.target:
            parser.error(f"a targeted attack of {kind} needs --target")
        if source.is_dir():
            items = load_attack_dir(source, args.target or "", targeted=targeted)
        else:
            items = load_items([(source, args.target or "", None)], targeted=targeted)
    options = LabOptions(
        mode=args.mode,
        model=args.model,
        targeted=AttackOptions(
            stage1_steps=args.stage1_steps,
            stage1_lr=args.lr / INT16_SCALE,
            initial_bound=args.bound / INT16_SCALE,
            stage2_steps=args.stage2_steps,
            rooms=args.rooms,
            margin=args.margin,
            batch_size=args.batch_size,
            device=args.device,
            seed=args.seed,
        ),
        untargeted=UntargetedOptions(
            snr_db=args.snr_db,
            steps=args.stage1_steps,
            batch_size=args.batch_size,
            device=args.device,
            seed=args.seed,
        ),
        transfer=tuple(args.transfer),
    )
    results, reports = run_lab(items, options)
    write_outputs(Path(args.out), items, results, reports)
    print(summary_table(reports))
    return EXIT_OK if all(r.success for r in reports) else EXIT_FAILED


def _add_attack(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    a = sub.add_parser(
        "attack", help="adversarial examples against Whisper (needs emotivoice[robustness])"
    )
    a.add_argument(
        "input",
        help="a CSV with columns file,target[,text], a directory of audio files, or one file",
    )
    a.add_argument(
        "--target", default=None, help="the phrase to inject (every file of a directory or one)"
    )
    a.add_argument("--audio-dir", default=None, help="folder of the CSV's files (default: its)")
    a.add_argument("-o", "--out", default="adversarial", help="output folder")
    a.add_argument("--mode", choices=("targeted", "untargeted"), default="targeted")
    a.add_argument("--model", default="base", help="the attacked Whisper (PyTorch copy)")
    a.add_argument("--stage1-steps", type=int, default=1000, help="stage-1 (or PGD) steps")
    a.add_argument("--stage2-steps", type=int, default=1000, help="masking stage; 0 skips it")
    a.add_argument("--lr", type=float, default=100.0, help="stage-1 rate, int16 units")
    a.add_argument("--bound", type=float, default=2000.0, help="initial L∞ bound, int16 units")
    a.add_argument("--rooms", type=int, default=0, help="simulated rooms per step (robust)")
    a.add_argument("--margin", type=float, default=0.0, help="success margin in logits")
    a.add_argument("--snr-db", type=float, default=30.0, help="untargeted: minimum SNR")
    a.add_argument("--batch-size", type=int, default=10)
    a.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument(
        "--transfer",
        nargs="*",
        choices=("base-int8", "tiny.en"),
        default=["base-int8", "tiny.en"],
        help="models that also transcribe the adversarial audio (none: --transfer)",
    )
    a.set_defaults(func=cmd_attack)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``emotivoice`` command."""
    parser = argparse.ArgumentParser(prog="emotivoice", description=__doc__)
    parser.add_argument("--version", action="version", version=f"emotivoice {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_analyze(sub)
    sub.add_parser("models", help="list Whisper models").set_defaults(func=cmd_models)
    sub.add_parser("languages", help="list language codes").set_defaults(func=cmd_languages)
    sub.add_parser("schema", help="print the analysis JSON Schema").set_defaults(func=cmd_schema)
    e = sub.add_parser("export", help="write saved analyses (JSON) as csv, srt, vtt or pdf")
    e.add_argument("inputs", nargs="+", metavar="ANALYSIS.json", help="analyze's JSON output")
    e.add_argument("-o", "--output", default=".", help="output directory (default: .)")
    e.add_argument("--format", default="pdf", help="comma-separated: json,csv,srt,vtt,pdf")
    e.set_defaults(func=cmd_export)
    b = sub.add_parser(
        "bench", help="real-time factor of analyze vs plain faster-whisper; 'bench stream': live"
    )
    b.add_argument(
        "mode", nargs="?", default="rtf", choices=["rtf", "stream"], help="what to measure"
    )
    b.add_argument("--max-files", type=int, default=None, help="stream: first N clips only")
    b.add_argument("--endpoint-ms", type=int, default=300, help="stream: silence ending speech")
    b.add_argument(
        "--modes",
        default="fit+speculative,fit,full",
        help="stream: comma-separated modes measured side by side (fit+speculative: the "
        "default; fit: no speculation; full: final segments exactly as batch analysis)",
    )
    b.add_argument("--data", default=None, help="shared data dir (default: $EMOTIVOICE_DATA_DIR)")
    b.add_argument("--model", default="base")
    b.add_argument("--beam-size", type=int, default=5)
    b.add_argument("--threads", type=int, default=2, help="CPU threads for both runs")
    b.add_argument("--repeats", type=int, default=1, help="timed passes over the set")
    b.add_argument("--json", default=None, help="also write the figures to this JSON file")
    b.set_defaults(func=cmd_bench)
    _add_emotion_commands(sub)
    _add_service_commands(sub)
    _add_stream_command(sub)
    _add_attack(sub)
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


if __name__ == "__main__":
    sys.exit(main())
