"""``emotivoice analyze`` (files and folders; one bad file is reported and skipped),
``export`` (saved analyses in other formats), ``models``, ``languages`` and ``schema``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from emotivoice.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from emotivoice.errors import EmotiVoiceError

if TYPE_CHECKING:
    from emotivoice.explain.options import ExplainOptions
    from emotivoice.export import SubtitleOptions
    from emotivoice.pipeline import Analyzer
    from emotivoice.results import Analysis


logger = logging.getLogger("emotivoice.cli")


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one input of ``emotivoice analyze``."""

    path: Path
    ok: bool
    duration: float = 0.0
    language: str = ""
    segments: int = 0
    words: int = 0
    speakers: int = 0
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
    explain: ExplainOptions | None = None,
    subtitles: SubtitleOptions | None = None,
    quiet: bool = False,
) -> FileOutcome:
    from emotivoice.cli.progress import FileProgress
    from emotivoice.workflow import analyze_and_write

    audio = analyzer.load(path)
    with FileProgress(path.name, audio.duration, enabled=not quiet) as progress:
        analysis = analyze_and_write(
            analyzer,
            audio,
            out,
            stem,
            formats,
            explain=explain,
            progress=progress.update,
            explain_progress=progress.update,
            on_stage=progress.stage,
            subtitles=subtitles,
        ).analysis
    return _outcome(path, analysis)


def _outcome(path: Path, analysis: Analysis) -> FileOutcome:
    return FileOutcome(
        path=path,
        ok=True,
        duration=analysis.duration,
        language=_language_cell(analysis),
        segments=len(analysis.segments),
        words=sum(len(s.words) for s in analysis.segments),
        speakers=len(analysis.speakers),
        emotion=analysis.emotion.summary if analysis.emotion else "-",
    )


def _failed(path: Path, error: EmotiVoiceError) -> FileOutcome:
    logger.debug("%s failed", path, exc_info=True)
    print(_error_line(path, error), file=sys.stderr)
    return FileOutcome(path=path, ok=False, error=error.code)


def _analyze_batched(
    analyzer: Analyzer,
    files: list[Path],
    out: Path,
    formats: list[str],
    explain: ExplainOptions | None,
    subtitles: SubtitleOptions | None,
    args: argparse.Namespace,
) -> list[FileOutcome]:
    """``--batch-size N``: the segments of every file through the batch path, each file
    written (and explained) as soon as its last segment is done."""
    from tqdm import tqdm

    from emotivoice.batch import BatchAnalyzer
    from emotivoice.workflow import write_analysis

    used: set[str] = set()
    outcomes = []
    batch = BatchAnalyzer(analyzer, args.batch_size)
    with tqdm(total=len(files), desc="files", unit="file", disable=args.quiet or None) as bar:
        for path, result in zip(files, batch.analyze_many(files), strict=True):
            bar.update()
            stem = _unique_stem(path, used)
            if result.analysis is None or result.audio is None:
                error = result.error or EmotiVoiceError(f"{path}: not analysed")
                outcomes.append(_failed(path, error))
                continue
            try:
                write_analysis(
                    analyzer,
                    result.audio,
                    result.analysis,
                    result.spans,
                    out,
                    stem,
                    formats,
                    explain=explain,
                    subtitles=subtitles,
                )
            except EmotiVoiceError as e:
                outcomes.append(_failed(path, e))
                continue
            outcomes.append(_outcome(path, result.analysis))
    return outcomes


def _language_cell(analysis: Analysis) -> str:
    """``en`` for a one-language file; ``en 51 %, de 49 %`` for a mixed one."""
    if len(analysis.languages) < 2:
        return analysis.language or "-"
    return ", ".join(f"{s.language} {s.share:.0%}".replace("%", " %") for s in analysis.languages)


def _error_line(path: Path, error: EmotiVoiceError) -> str:
    """``emotivoice: PATH: reason [CODE]``, the file named once even where the engine's message
    already starts with it."""
    reason = error.message
    for prefix in (f"{path}: ", f"{path.name}: "):
        reason = reason.removeprefix(prefix)
    return f"emotivoice: {path}: {reason} [{error.code}]"


def _print_summary(outcomes: list[FileOutcome]) -> None:
    width = max([len(o.path.name) for o in outcomes] + [4])
    lang_width = max([len(o.language) for o in outcomes] + [4])
    print(
        f"{'file':<{width}}  {'status':<6}  {'duration':>8}  {'lang':<{lang_width}}  {'segs':>4}"
        f"  {'words':>5}  {'spk':>3}  emotion"
    )
    for o in outcomes:
        if o.ok:
            print(
                f"{o.path.name:<{width}}  {'ok':<6}  {o.duration:>7.1f}s  "
                f"{o.language:<{lang_width}}  {o.segments:>4}  {o.words:>5}  "
                f"{o.speakers or '-':>3}  {o.emotion}"
            )
        else:  # the reason is on stderr already; the table names only its code
            print(f"{o.path.name:<{width}}  {'FAILED':<6}  {o.error}")


def _explain_options(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> ExplainOptions | None:
    """The explanation options asked for (``None`` without ``--explain``), checked up front."""
    from emotivoice.explain.attribution import AttributionOptions
    from emotivoice.explain.options import ExplainOptions

    if not args.explain:
        return None
    if args.no_emotion:
        parser.error("--explain explains emotions; it cannot be used with --no-emotion")
    try:
        return ExplainOptions(
            methods=tuple(m.strip() for m in args.explain_methods.split(",") if m.strip()),
            attribution=AttributionOptions(n_windows=args.explain_windows),
            budget=args.explain_budget,
            emotion_model=args.emotion_model,
            device=args.device,
        )
    except EmotiVoiceError as e:
        parser.error(f"--explain: {e.message}")


def _formats(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    """The ``--format`` list, checked up front."""
    from emotivoice.export import EXPORT_FORMATS

    formats = [f.strip().lower() for f in args.format.split(",") if f.strip()]
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown or not formats:
        parser.error(f"--format: unknown {unknown}; choose from {','.join(EXPORT_FORMATS)}")
    return formats


def _subtitle_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> SubtitleOptions:
    """How SRT and WebVTT cues are cut, checked up front."""
    from emotivoice.export import SubtitleOptions

    names = ("max_line_width", "max_line_count", "max_cue_duration")
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    try:
        return SubtitleOptions(**given)
    except EmotiVoiceError as e:
        parser.error(f"--{e.message.replace('_', '-')}")


def cmd_analyze(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Analyse files and directories; one bad file is reported and skipped."""
    from tqdm import tqdm

    from emotivoice.pipeline import AnalyzeOptions, Analyzer

    formats = _formats(args, parser)
    subtitles = _subtitle_options(args, parser)
    if args.fast and args.beam_size is not None:
        parser.error("--fast and --beam-size are mutually exclusive (--fast means beam size 1)")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    explain = _explain_options(args, parser)
    files = _collect_inputs(args.inputs)
    if not files:
        parser.error("no audio files found in the given inputs")
    options: dict[str, object] = {
        "model": args.model,
        "language": args.language,
        "device": args.device,
        "beam_size": 1 if args.fast else (args.beam_size or 5),
        "encoder_window": args.encoder_window,
        "max_segment_s": args.max_segment,
        "max_duration": args.max_duration,
        "features": not args.no_features,
        "emotion": not args.no_emotion,
        "emotion_model": args.emotion_model,
        "taxonomy": args.taxonomy,
        "diarization": not args.no_diarization,
        # the emotion head's batched prefix runs on the GPU only when it is asked for
        "emotion_device": "cuda" if args.device == "cuda" else "cpu",
    }
    if not args.no_emotion:
        options.update(
            unit_min_s=args.unit_min,
            unit_max_s=args.unit_max,
            window_s=args.window,
        )
    if not args.no_diarization:
        options.update(
            speakers=args.speakers,
            min_speakers=args.min_speakers,
            max_speakers=args.max_speakers,
            channels=args.channels,
            diarization_backend=args.diarization_backend,
        )
    if args.compute_type:
        options["compute_type"] = args.compute_type
    try:
        analyzer = Analyzer(AnalyzeOptions.from_kwargs(**options))
    except EmotiVoiceError as e:
        print(f"emotivoice: error: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.output)
    if args.batch_size > 1:
        outcomes = _analyze_batched(analyzer, files, out, formats, explain, subtitles, args)
    else:
        outcomes = []
        used: set[str] = set()
        # the files' bar only on a terminal; in a log each file's own lines name it
        show_bar = len(files) > 1 and not args.quiet and sys.stderr.isatty()
        for path in tqdm(files, desc="files", unit="file", disable=not show_bar):
            try:
                outcomes.append(
                    _analyze_one(
                        analyzer,
                        path,
                        out,
                        _unique_stem(path, used),
                        formats,
                        explain,
                        subtitles,
                        quiet=args.quiet,
                    )
                )
            except EmotiVoiceError as e:
                outcomes.append(_failed(path, e))
    failed = sum(not o.ok for o in outcomes)
    # one input that failed: its error line says it all
    if not args.quiet and (len(outcomes) > 1 or not failed):
        _print_summary(outcomes)
    if failed and len(outcomes) > 1:
        print(f"emotivoice: {failed} of {len(outcomes)} files failed", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Write saved analyses (their JSON) in other formats, without analysing again."""
    from emotivoice.export import write_outputs
    from emotivoice.results import load_analysis
    from emotivoice.workflow import explain_folder

    formats = _formats(args, parser)
    subtitles = _subtitle_options(args, parser)
    failed = 0
    for path in map(Path, args.inputs):
        explain_dir = explain_folder(path.parent, path.stem)  # where analyze --explain wrote
        try:
            written = write_outputs(
                load_analysis(path),
                Path(args.output),
                path.stem,
                formats,
                explain_dir if explain_dir.is_dir() else None,
                subtitles,
            )
        except EmotiVoiceError as e:
            print(_error_line(path, e), file=sys.stderr)
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


def _add_subtitle_options(p: argparse.ArgumentParser) -> None:
    # The defaults are SubtitleOptions' (tests check the help text against them); importing
    # emotivoice.export here would slow every --help.
    group = p.add_argument_group("subtitles (srt, vtt: cues cut at word times)")
    group.add_argument(
        "--max-line-width", type=int, metavar="N", help="most characters a line (default 42)"
    )
    group.add_argument(
        "--max-line-count", type=int, metavar="N", help="most lines a cue (default 2)"
    )
    group.add_argument(
        "--max-cue-duration",
        type=float,
        metavar="S",
        help="most seconds a cue stays on screen (default 7)",
    )


def _add_speaker_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("speakers (diarization is on by default)")
    group.add_argument(
        "--no-diarization",
        action="store_true",
        help="treat the recording as one voice: no speaker labels",
    )
    group.add_argument(
        "--speakers", type=int, default=None, metavar="N", help="exact number of speakers"
    )
    group.add_argument(
        "--min-speakers", type=int, default=1, metavar="N", help="fewest speakers (default 1)"
    )
    group.add_argument(
        "--max-speakers", type=int, default=8, metavar="N", help="most speakers (default 8)"
    )
    group.add_argument(
        "--channels",
        choices=["auto", "mix", "split"],
        default="auto",
        help="split: one speaker per channel (stereo calls); mix: tell voices apart in the "
        "mixed signal; auto (default): split when the channels carry different talkers",
    )
    group.add_argument(
        "--diarization-backend",
        choices=["ge2e", "pyannote"],
        default="ge2e",
        help="ge2e (default, offline) or pyannote (needs pyannote.audio, HF_TOKEN, a network)",
    )


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("analyze", help="analyse audio files or directories")
    p.add_argument("inputs", nargs="+", metavar="FILE|DIR", help="audio files or directories")
    p.add_argument("-o", "--output", default=".", help="output directory (default: .)")
    p.add_argument(
        "--format",
        default="json",
        help="output formats, comma-separated, from json,csv,srt,vtt,pdf (default: json)",
    )
    p.add_argument("--language", default=None, help="force a language (ISO code); default: detect")
    p.add_argument(
        "--model", default="base", help="Whisper model name or directory (default: base)"
    )
    p.add_argument("--beam-size", type=int, default=None, help="beam width (default 5)")
    p.add_argument("--fast", action="store_true", help="greedy decoding (beam size 1)")
    p.add_argument(
        "--encoder-window",
        default="fit",
        choices=["fit", "full"],
        help="Whisper's encoder window per segment: fit (just longer than the segment, about "
        "twice as fast) or full (always 30 s, as Whisper was trained) (default: fit)",
    )
    p.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="where models run (default: auto, a GPU when there is one)",
    )
    p.add_argument(
        "--compute-type", default=None, help="CTranslate2 compute type (int8, float16, ...)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=1,
        metavar="N",
        help="analyse the segments of all inputs N at a time (batched encoder, decoder and "
        "emotion head; features in a process pool): for many files, above all on a GPU. "
        "Batched decoding uses no fallback and no previous text (default 1: segment by "
        "segment)",
    )
    p.add_argument(
        "--max-segment", type=float, default=15.0, help="max segment length, s (default 15)"
    )
    p.add_argument(
        "--max-duration",
        type=float,
        default=4 * 3600.0,
        help="longest accepted input, s (default 14400: 4 hours)",
    )
    p.add_argument("--no-features", action="store_true", help="skip acoustic features")
    p.add_argument(
        "--emotion-model",
        default="default",
        help="emotion backend: default (shipped head), a head .npz, or hf:<hub id or folder>",
    )
    p.add_argument("--taxonomy", default=None, help="your own emotion taxonomy YAML file")
    p.add_argument("--no-emotion", action="store_true", help="skip emotion recognition")
    from emotivoice.emotion.backends import EmotionOptions  # the engine's defaults

    emotion = EmotionOptions()
    p.add_argument(
        "--unit-max",
        type=float,
        default=emotion.unit_max_s,
        metavar="S",
        help="longest sentence-level emotion unit, s (units are cut at sentence ends and "
        f"pauses; default {emotion.unit_max_s:g})",
    )
    p.add_argument(
        "--unit-min",
        type=float,
        default=emotion.unit_min_s,
        metavar="S",
        help=f"shortest unit, s (shorter ones join a neighbour; default {emotion.unit_min_s:g})",
    )
    p.add_argument(
        "--window",
        type=float,
        default=emotion.window_s,
        metavar="S",
        help=f"emotion timeline window, s, stepped by a quarter of it (default "
        f"{emotion.window_s:g})",
    )
    _add_speaker_options(p)
    p.add_argument(
        "--explain",
        action="store_true",
        help="explain each segment's emotion: JSON and plots in OUT/NAME-explain/",
    )
    p.add_argument(
        "--explain-methods",
        default="shapley,counterfactual",
        help="comma-separated, from shapley,counterfactual,attention,gradients "
        "(default: shapley,counterfactual)",
    )
    p.add_argument(
        "--explain-windows",
        type=int,
        default=6,
        help="windows per segment (2^N evaluations; default 6)",
    )
    p.add_argument(
        "--explain-budget",
        type=int,
        default=100,
        metavar="N",
        help="most model evaluations per explained segment: time attribution, LIME, deletion "
        "curves and counterfactuals together (default 100; the defaults use 72)",
    )
    _add_subtitle_options(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary table")
    p.set_defaults(func=cmd_analyze)
    sub.add_parser("models", help="list Whisper models").set_defaults(func=cmd_models)
    sub.add_parser("languages", help="list language codes").set_defaults(func=cmd_languages)
    sub.add_parser("schema", help="print the analysis JSON Schema").set_defaults(func=cmd_schema)
    e = sub.add_parser("export", help="write saved analyses (JSON) as csv, srt, vtt or pdf")
    e.add_argument("inputs", nargs="+", metavar="ANALYSIS.json", help="analyze's JSON output")
    e.add_argument("-o", "--output", default=".", help="output directory (default: .)")
    e.add_argument(
        "--format",
        default="pdf",
        help="output formats, comma-separated, from json,csv,srt,vtt,pdf (default: pdf)",
    )
    _add_subtitle_options(e)
    e.set_defaults(func=cmd_export)
