"""``emotivoice train-emotion`` and ``benchmark-emotion``: the emotion recipe and its evaluation."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from emotivoice.cli.common import EXIT_OK, EXIT_USAGE
from emotivoice.errors import EmotiVoiceError


def cmd_train_emotion(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Train the emotion head with the recipe on corpora in the shared data layout."""
    import numpy as np

    from emotivoice.emotion.torch_head import encoder_variables
    from emotivoice.evaluation.datasets import data_dir
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


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
