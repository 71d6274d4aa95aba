"""Targeted attack benchmark on Qin et al.'s 10 LibriSpeech test-clean utterances.

Three modes:

* default: a reduced run on this machine (the ``--limit`` shortest utterances, small step
  budgets), attack and scoring end to end through :func:`emotivoice.robustness.run_lab`.
* ``--pack DIR``: write what the GPU machine needs (audio, targets, mel filters, tokenizer and
  the CTranslate2 ``model.bin`` in parts that fit the transfer limit) for
  ``research/attack_gpu.py``.
* ``--from-gpu DIR``: score the adversarial audio that ``research/attack_gpu.py`` returned, on
  CPU: the attacked model's transcript (PyTorch copy, fp32), PESQ, STOI, masking, transfer to the
  int8 CTranslate2 runtime and tiny.en, for stage 1 alone and with stage 2.

Every mode prints, beside the adversarial figures, the reference run: the clean audio through
the same models (its WER against the reference text and against the target).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from emotivoice.evaluation.datasets import data_dir
from emotivoice.metrics import word_error_rate
from emotivoice.robustness import AttackOptions, LabOptions, load_attack_csv, run_lab
from emotivoice.robustness.attack import AttackResult
from emotivoice.robustness.lab import AttackItem, score_examples, transcribe_with
from emotivoice.robustness.report import ExampleReport, summarize, summary_table

PART_BYTES = 48_500_000  # three parts of Whisper base's model.bin, each under the 64 MiB carry


def _csv() -> Path:
    return data_dir() / "librispeech" / "transcripts.csv"


def _reference(items: list[AttackItem], models: dict[str, object]) -> None:
    """The clean audio through the attacked and transfer models (the reference run)."""
    print("\nreference run: clean audio")
    refs = [i.reference or "" for i in items]
    for name, transcribe in models.items():
        texts = [transcribe(i.samples) for i in items]  # type: ignore[operator]
        to_ref = word_error_rate(refs, texts)
        to_target = word_error_rate([i.target for i in items], texts)
        print(f"  {name:>12}: WER to reference {to_ref:.1%}, WER to target {to_target:.1%}")


def _print(title: str, reports: list[ExampleReport]) -> None:
    print(f"\n## {title}\n")
    print(summary_table(reports))


def pack(out: Path) -> None:
    from emotivoice.models.registry import resolve_whisper_model
    from emotivoice.models.torch_whisper import mel_filters

    items = load_attack_csv(_csv())
    out.mkdir(parents=True, exist_ok=True)
    arrays = {f"audio_{i}": item.samples for i, item in enumerate(items)}
    arrays["names"] = np.array([i.path.name for i in items])
    arrays["targets"] = np.array([i.target for i in items])
    np.savez(out / "utterances.npz", **arrays)  # type: ignore[arg-type]  # numpy's stub
    np.save(out / "mel_filters.npy", mel_filters(80))
    ct2 = resolve_whisper_model("base")
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(ct2 / name, out / name)
    data = (ct2 / "model.bin").read_bytes()
    for i, start in enumerate(range(0, len(data), PART_BYTES)):
        part = out.parent / f"{out.name}-w{i + 1}" / f"model.bin.part{i}"
        part.parent.mkdir(exist_ok=True)
        part.write_bytes(data[start : start + PART_BYTES])
        print(f"wrote {part} ({part.stat().st_size / 2**20:.1f} MiB)")


def _attacked_cpu() -> object:
    import torch

    from emotivoice.models.torch_whisper import load_torch_whisper
    from emotivoice.robustness.whisper_loss import greedy_transcripts

    model = load_torch_whisper("base", device="cpu")

    def transcribe(samples: np.ndarray) -> str:
        return greedy_transcripts(model, [torch.from_numpy(np.asarray(samples, np.float32))], "en")[
            0
        ]

    return transcribe


def from_gpu(folder: Path) -> None:
    items = load_attack_csv(_csv())
    by_name = {i.path.name: i for i in items}
    attack = json.loads((folder / "attack.json").read_text())
    audio = np.load(folder / "adversarial.npz")
    examples = attack["examples"]
    chosen = [by_name[e["file"]] for e in examples]
    attacked = _attacked_cpu()
    transfer = {m: transcribe_with(m) for m in ("base-int8", "tiny.en")}
    print(
        f"GPU attack: {attack['device']}, torch {attack['torch']}, TF32 {attack['tf32']}, "
        f"stage 1 {attack['stage1_steps']} + stage 2 {attack['stage2_steps']} steps, batch "
        f"{attack['batch_size']}, {attack['wall_seconds']:.0f} s wall"
    )
    runs = {}
    for key, title in (("stage1", "stage 1 only (C&W, L∞)"), ("adv", "stage 1 + stage 2 (Qin)")):
        results = [
            AttackResult(
                adversarial=audio[f"{key}_{i}"],
                kind="targeted",
                goal=e["target"],
                succeeded=e["succeeded"],
                stage1_success_step=e["stage1_success_step"],
                stage2_applied=key == "adv" and e["stage2_applied"],
                linf_bound=e["linf_bound"],
                iterations=e["iterations"] if key == "adv" else attack["stage1_steps"],
                seconds=e["seconds"],
            )
            for i, e in enumerate(examples)
        ]
        reports = score_examples(chosen, results, attacked, transfer, attack["device"])  # type: ignore[arg-type]
        _print(f"GPU run, {title}; scored on CPU", reports)
        runs[key] = [r.to_dict() for r in reports] + [summarize(reports)]
    gpu_texts = sum(
        e["gpu_fp32_transcript"] == r["transcript"]
        for e, r in zip(examples, runs["adv"], strict=False)
    )
    print(f"\nGPU fp32 and CPU greedy transcripts identical for {gpu_texts}/{len(examples)}")
    _reference(chosen, {"base (torch)": attacked, **transfer})
    (folder / "scored.json").write_text(json.dumps(runs, indent=2, default=float))


def cpu(limit: int, stage1: int, stage2: int, lr: float) -> None:
    items = sorted(load_attack_csv(_csv()), key=lambda i: i.samples.size)[:limit]  # shortest
    options = LabOptions(
        targeted=AttackOptions(
            stage1_steps=stage1, stage1_lr=lr / 32768, stage2_steps=stage2, device="cpu"
        )
    )
    started = time.perf_counter()
    _, reports = run_lab(items, options)
    print(f"\nreduced CPU run: {len(items)} utterances in {time.perf_counter() - started:.0f} s")
    _print(f"CPU run, stage 1 {stage1} + stage 2 {stage2} steps", reports)
    _reference(
        items,
        {
            "base (torch)": _attacked_cpu(),
            **{m: transcribe_with(m) for m in ("base-int8", "tiny.en")},
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pack", type=Path, help="write the GPU carry folder here")
    parser.add_argument("--from-gpu", type=Path, help="score research/attack_gpu.py output")
    parser.add_argument("--limit", type=int, default=1, help="CPU run: utterances")
    parser.add_argument("--stage1", type=int, default=100, help="CPU run: stage-1 steps")
    parser.add_argument("--stage2", type=int, default=50, help="CPU run: stage-2 steps")
    parser.add_argument("--lr", type=float, default=100.0, help="CPU run: stage-1 rate (int16)")
    args = parser.parse_args()
    if args.pack:
        pack(args.pack)
    elif args.from_gpu:
        from_gpu(args.from_gpu)
    else:
        cpu(args.limit, args.stage1, args.stage2, args.lr)


if __name__ == "__main__":
    main()
