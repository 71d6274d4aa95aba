"""``emotivoice wakeword``: the wake-word studio (generate, train, evaluate, compare, export,
listen, models), each subcommand one call into :mod:`emotivoice.wakeword`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from emotivoice.cli.common import EXIT_OK

# flags whose default is the options' own (None here: the library's default applies)
GENERATE_FLAGS = (
    "positives",
    "confusables",
    "sentences",
    "val_positives",
    "test_positives",
    "seed",
)
TRAIN_FLAGS = (
    "epochs",
    "batch_size",
    "learning_rate",
    "seed",
    "device",
    "threads",
    "hard_negatives",
    "distill",
)
REFRACTORY_S = 2.0  # the detector's REFRACTORY_S (not imported: the parser stays light)


def _verifier(args: argparse.Namespace) -> Any:
    """The ``--verify`` options, or ``None`` without ``--verify``."""
    if not args.verify:
        return None
    from emotivoice.wakeword.verify import VerifierOptions

    given = {
        "whisper_model": args.verify_model,
        "gate": args.verify_gate,
        "threshold": args.verify_threshold,
    }
    return VerifierOptions(**{k: v for k, v in given.items() if v is not None})


def _verify_flags(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--verify",
        action="store_true",
        help=f"{what} with the Whisper verifier as a second stage (docs/wakeword.md)",
    )
    parser.add_argument("--verify-model", default=None, help="its Whisper model (tiny.en)")
    parser.add_argument("--verify-gate", type=float, default=None, help="first-stage score")
    parser.add_argument("--verify-threshold", type=float, default=None, help="its threshold")


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _stage(stage: str, fraction: float, *_: object) -> None:
    print(f"{stage}: {fraction:.0%}", file=sys.stderr, flush=True)


def cmd_generate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Generate the training data of a phrase."""
    from emotivoice.wakeword import GenerateOptions, generate_dataset

    given = _given(args, GENERATE_FLAGS)
    if args.engines:
        given["engines"] = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    options = GenerateOptions(**given)
    root = None
    if not args.no_real_speech:
        from emotivoice.evaluation.datasets import data_dir

        root = data_dir(Path(args.data) if args.data else None)
    card = generate_dataset(args.phrase, Path(args.output), root, options, _stage)
    print(card.to_markdown())
    print(f"data set written to {args.output}")
    return EXIT_OK


def cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Train a model on a generated data set; the run folder holds the ONNX files."""
    from emotivoice.wakeword import TrainOptions, train_model

    options = TrainOptions(**_given(args, TRAIN_FLAGS))

    def show(stage: str, fraction: float, metrics: dict[str, float]) -> None:
        figures = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "epoch")
        print(f"{stage}: {fraction:.0%} {figures}".rstrip(), file=sys.stderr, flush=True)

    result = train_model(Path(args.data), Path(args.output), options, show)
    print(
        f"trained {result.parameters} parameters in {result.seconds:.0f} s "
        f"(best epoch {result.best_epoch}, threshold {result.threshold:.3f})"
    )
    print(f"model: {result.onnx}\nint8 model: {result.onnx_int8}")
    return EXIT_OK


def cmd_search(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """A hyperparameter search (Optuna) on a data set; running it again continues the study."""
    from emotivoice.extras import import_extra
    from emotivoice.wakeword.search import SearchOptions, TrialRecord, search
    from emotivoice.wakeword.train import TrainOptions

    optuna = import_extra("optuna", "wakeword", "The wake-word hyperparameter search")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is printed below
    base = TrainOptions(**_given(args, ("batch_size", "device", "threads")))
    options = SearchOptions(
        base=base,
        epochs=(args.epochs[0], args.epochs[1]),
        seed=args.seed,
        timeout_s=args.timeout,
        prune=not args.no_prune,
    )

    def show(record: TrialRecord) -> None:
        if record.state == "complete":
            figures = (
                f"false rejects {record.false_reject_rate:.1%} at <= "
                f"{options.target_fa_per_hour:g} FA/h, EER {record.eer:.1%}"
            )
        elif record.state == "pruned":
            figures = f"pruned after epoch {record.pruned_at}"
        else:
            figures = record.state
        seconds = f" ({record.seconds:.0f} s)" if record.seconds is not None else ""
        print(f"trial {record.number}: {figures}{seconds}", file=sys.stderr, flush=True)

    result = search(Path(args.data), Path(args.output), args.trials, options, show)
    print(f"{len(result.trials)} trials in {args.output}/study.db ({result.new_trials} new)")
    if result.best is None:
        print("no trial has completed yet")
    else:
        best = result.best
        print(
            f"best: trial {best.number}, false rejects {best.false_reject_rate:.1%} at <= "
            f"{options.target_fa_per_hour:g} FA/h on {result.validation_hours:.2f} h of "
            f"validation speech, EER {best.eer:.1%}; model: {args.output}/best/model.onnx"
        )
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Streaming evaluation of a model on a data set's test split."""
    from emotivoice.wakeword import EvaluationOptions, evaluate_model, write_report

    options = EvaluationOptions(
        refractory_s=args.refractory, max_negative_hours=args.max_negative_hours
    )
    report = evaluate_model(args.model, Path(args.data), options, _stage, _verifier(args))
    print(report.summary())
    for path in write_report(report, Path(args.output)):
        print(f"wrote {path}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Several models, ours and the peers', on one test set."""
    from emotivoice.wakeword import EvaluationOptions
    from emotivoice.wakeword.peers import compare_models, format_comparison

    options = EvaluationOptions(
        refractory_s=args.refractory, max_negative_hours=args.max_negative_hours
    )
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        parser.error("--models names no model")
    if args.verify:  # each of our models also with its second stage, next to it
        models = [
            n
            for m in models
            for n in ([m] if ":" in m or m.endswith("+verify") else [m, m + "+verify"])
        ]

    def say(message: str) -> None:
        print(f"{message} ...", file=sys.stderr, flush=True)

    peers = Path(args.peers_env) if args.peers_env else None
    reports = compare_models(models, Path(args.data), options, peers, say, _verifier(args))
    print(format_comparison(reports))
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in reports], indent=2))
        print(f"wrote {args.json}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Export a training run's model to ONNX (int8 with --int8)."""
    from emotivoice.wakeword.export import export_run

    path = export_run(Path(args.run), Path(args.output), int8=args.int8)
    print(f"wrote {path}")
    return EXIT_OK


def cmd_listen(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Print a line (or a JSON object) per detection in a file, stdin or the microphone."""
    from emotivoice.wakeword import Detection, load_model
    from emotivoice.wakeword.listen import listen_file, listen_microphone, listen_pcm

    sources = [bool(args.file), args.stdin, args.mic]
    if sum(sources) != 1:
        parser.error("give exactly one of --file FILE, --stdin and --mic")
    model = load_model(args.model)
    options = _verifier(args)
    verifier = None
    if options is not None:
        from emotivoice.wakeword.verify import load_verifier

        verifier = load_verifier(model.phrase, options)
    detector = model.detector(args.threshold, args.refractory, verifier)

    def show(detection: Detection) -> None:
        if args.json:
            print(json.dumps({"type": "wake", **dataclasses.asdict(detection)}), flush=True)
        else:
            print(f"{detection.time_s:8.2f} s  {detection.phrase!r}  score {detection.score:.3f}")
            sys.stdout.flush()

    if args.file:
        listen_file(Path(args.file), detector, show, realtime=args.realtime)
    elif args.stdin:
        listen_pcm(sys.stdin.buffer, detector, show)
    else:
        listen_microphone(detector, show, seconds=args.seconds)
    return EXIT_OK


def cmd_models(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """List the shipped wake-word models."""
    from emotivoice.wakeword import available_models, load_model

    for name in available_models():
        model = load_model(name)
        print(f"{name}\t{model.phrase!r}\tthreshold {model.threshold:.3f}")
    return EXIT_OK


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    w = sub.add_parser("wakeword", help="the wake-word studio: train and run a wake word")
    modes = w.add_subparsers(dest="wakeword_command", required=True)
    g = modes.add_parser("generate", help="make a phrase's training data (TTS + real speech)")
    g.add_argument("phrase", help='the wake phrase, e.g. "hey jarvis"')
    g.add_argument("-o", "--output", required=True, help="the data set folder to create")
    g.add_argument("--data", default=None, help="shared real-speech folder (default: shared)")
    g.add_argument("--no-real-speech", action="store_true", help="TTS negatives only")
    g.add_argument("--positives", type=int, default=None)
    g.add_argument("--confusables", type=int, default=None)
    g.add_argument("--sentences", type=int, default=None)
    g.add_argument("--val-positives", type=int, default=None)
    g.add_argument("--test-positives", type=int, default=None)
    g.add_argument("--engines", default=None, help="TTS engines (default espeak-ng,flite,piper)")
    g.add_argument("--seed", type=int, default=None)
    g.set_defaults(func=cmd_generate)

    t = modes.add_parser("train", help="train a model on a data set (needs emotivoice[torch])")
    t.add_argument("data", help="a data set folder made by generate")
    t.add_argument("-o", "--output", required=True, help="the run folder to create")
    t.add_argument("--epochs", type=int, default=None, help="default 8")
    t.add_argument("--batch-size", type=int, default=None, help="default 128")
    t.add_argument("--learning-rate", type=float, default=None, help="default 3e-3")
    t.add_argument("--device", default=None, choices=["cpu", "cuda"])
    t.add_argument("--threads", type=int, default=None, help="PyTorch CPU threads (default 1)")
    t.add_argument("--seed", type=int, default=None)
    t.add_argument(
        "--hard-negatives",
        type=int,
        default=None,
        help="windows of the training speech the model scores highest, added for a second stage"
        " (default 6000; 0: off)",
    )
    t.add_argument(
        "--distill",
        type=float,
        default=None,
        help="weight of the Whisper teacher's scores in the targets (default 0: no teacher;"
        " slow on a CPU)",
    )
    t.set_defaults(func=cmd_train)

    s = modes.add_parser(
        "search", help="search the training recipe's settings with Optuna (resumable)"
    )
    s.add_argument("data", help="a data set folder made by generate (train and val splits)")
    s.add_argument(
        "-o", "--output", required=True, help="the search folder (again: continue its study)"
    )
    s.add_argument("--trials", type=int, default=20, help="trials to add (default 20)")
    s.add_argument("--timeout", type=float, default=None, help="start no trial after S seconds")
    s.add_argument("--seed", type=int, default=0, help="the sampler's seed (default 0)")
    s.add_argument(
        "--epochs",
        type=int,
        nargs=2,
        default=(4, 16),
        metavar=("LOW", "HIGH"),
        help="range of epochs searched (default 4 16)",
    )
    s.add_argument("--no-prune", action="store_true", help="let every trial finish")
    s.add_argument("--batch-size", type=int, default=None, help="default 128")
    s.add_argument("--device", default=None, choices=["cpu", "cuda"])
    s.add_argument("--threads", type=int, default=None, help="PyTorch CPU threads (default 1)")
    s.set_defaults(func=cmd_search)

    e = modes.add_parser("evaluate", help="streaming false rejects, false accepts/h, EER, DET")
    e.add_argument("model", help="hey_jarvis or an ONNX file made by train/export")
    e.add_argument("data", help="a data set folder made by generate (its test split is used)")
    e.add_argument("-o", "--output", default="wakeword-evaluation", help="folder for JSON/PNG")
    e.add_argument("--max-negative-hours", type=float, default=None, help="cut the negatives")
    e.add_argument("--refractory", type=float, default=REFRACTORY_S, help="seconds")
    _verify_flags(e, "evaluate the model")
    e.set_defaults(func=cmd_evaluate)

    c = modes.add_parser("compare", help="ours and the peers' models on one test set")
    c.add_argument("data", help="a data set folder made by generate (its test split is used)")
    c.add_argument(
        "--models",
        default="hey_jarvis,openwakeword:hey_jarvis,microwakeword:hey_jarvis",
        help="comma-separated: our model names or ONNX files, and peers (openwakeword:NAME, "
        "microwakeword:NAME) (default: hey_jarvis and both peers' hey_jarvis)",
    )
    c.add_argument("--max-negative-hours", type=float, default=None, help="cut the negatives")
    c.add_argument("--refractory", type=float, default=REFRACTORY_S, help="seconds")
    c.add_argument(
        "--peers-env",
        default=None,
        help="the peers' virtual environment, built on first use (default: in the model cache)",
    )
    c.add_argument("--json", default=None, help="also write every model's figures here")
    _verify_flags(c, "also score each of our models (or name one NAME+verify)")
    c.set_defaults(func=cmd_compare)

    x = modes.add_parser("export", help="export a training run's model to ONNX")
    x.add_argument("run", help="a run folder made by train")
    x.add_argument("-o", "--output", required=True, help="the ONNX file to write")
    x.add_argument("--int8", action="store_true", help="quantise the weights to int8")
    x.set_defaults(func=cmd_export)

    li = modes.add_parser("listen", help="detect the wake word in a file, stdin or the mic")
    li.add_argument("--model", default="hey_jarvis", help="hey_jarvis or an ONNX file")
    li.add_argument("--file", default=None, help="an audio file of any supported format")
    li.add_argument("--stdin", action="store_true", help="raw s16le 16 kHz mono on stdin")
    li.add_argument("--mic", action="store_true", help="the microphone (needs sounddevice)")
    li.add_argument("--seconds", type=float, default=None, help="stop the mic after this")
    li.add_argument("--realtime", action="store_true", help="pace a file at recording speed")
    li.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="default: the model's (with --verify: the score that asks the verifier)",
    )
    li.add_argument("--refractory", type=float, default=REFRACTORY_S, help="seconds")
    li.add_argument("--json", action="store_true", help="one JSON wake event per line")
    _verify_flags(li, "detect")
    li.set_defaults(func=cmd_listen)

    m = modes.add_parser("models", help="list the shipped wake-word models")
    m.set_defaults(func=cmd_models)
