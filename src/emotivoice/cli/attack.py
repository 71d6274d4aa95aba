"""``emotivoice attack``: targeted adversarial audio against Whisper (the robustness lab)."""

from __future__ import annotations

import argparse
from pathlib import Path

from emotivoice.cli.common import EXIT_FAILED, EXIT_OK


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


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
