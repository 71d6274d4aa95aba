"""Robustness lab: targeted, imperceptible adversarial examples against Whisper, and their metrics.

Typical use::

    from emotivoice.robustness import LabOptions, load_attack_csv, run_lab, write_outputs

    items = load_attack_csv(Path("transcripts.csv"))
    results, reports = run_lab(items, LabOptions())
    write_outputs(Path("adversarial"), items, results, reports)

Needs the ``robustness`` extra (PyTorch, transformers, pesq, pystoi).
"""

from __future__ import annotations

from emotivoice.robustness.attack import AttackOptions, AttackResult, targeted_attack
from emotivoice.robustness.lab import (
    AttackItem,
    LabOptions,
    load_attack_csv,
    load_attack_dir,
    load_items,
    run_lab,
    write_outputs,
)
from emotivoice.robustness.masking import MaskingThreshold, masking_threshold
from emotivoice.robustness.report import Distortion, ExampleReport, Transfer, summary_table
from emotivoice.robustness.rooms import RoomOptions
from emotivoice.robustness.untargeted import UntargetedOptions, untargeted_attack

__all__ = [
    "AttackItem",
    "AttackOptions",
    "AttackResult",
    "Distortion",
    "ExampleReport",
    "LabOptions",
    "MaskingThreshold",
    "RoomOptions",
    "Transfer",
    "UntargetedOptions",
    "load_attack_csv",
    "load_attack_dir",
    "load_items",
    "masking_threshold",
    "run_lab",
    "summary_table",
    "targeted_attack",
    "untargeted_attack",
    "write_outputs",
]
