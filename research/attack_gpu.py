"""Targeted attack of the 10 LibriSpeech utterances on a GPU machine (no internet, no model wheels).

Reads from the carry folder: ``model.bin`` parts (the CTranslate2 Whisper base, split to fit the
transfer limit) or a joined ``model.bin``, ``config.json``, ``tokenizer.json``, ``mel_filters.npy``
and ``utterances.npz`` (16 kHz audio and targets, written by
``benchmarks/attack_librispeech.py --pack``). Rebuilds the PyTorch copy exactly as the library
does (:func:`emotivoice.models.torch_whisper.convert_ct2_to_transformers`), runs
:func:`emotivoice.robustness.targeted_attack` and writes the adversarial audio and the attack's
own figures; ``attack_librispeech.py --from-gpu`` then scores them on CPU (PESQ, STOI, masking,
transfer to the int8 runtime and tiny.en).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"


def _model(carry: Path, parts: Path, device: str) -> tuple[Any, Any]:
    import torch
    from transformers import WhisperForConditionalGeneration

    import emotivoice.models.torch_whisper as tw
    import emotivoice.robustness.whisper_loss as wl

    ct2 = Path("/tmp/whisper-base-ct2")
    ct2.mkdir(exist_ok=True)
    with (ct2 / "model.bin").open("wb") as joined:
        for part in sorted(parts.glob("model.bin.part*")):
            joined.write(part.read_bytes())
    digest = hashlib.sha256((ct2 / "model.bin").read_bytes()).hexdigest()
    if digest != BASE_SHA256:
        raise SystemExit(f"joined model.bin has sha256 {digest}, expected {BASE_SHA256}")
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(carry / name, ct2 / name)
    filters = np.load(carry / "mel_filters.npy")
    tw.mel_filters = lambda n_mels=80: filters  # librosa is not on the GPU machine
    wl.normalize_text = lambda text: text  # targets were validated (normalised) when packed
    target = Path("/tmp/whisper-base-transformers")
    if not (target / "config.json").exists():
        tw.convert_ct2_to_transformers(ct2, target)
    model: Any = WhisperForConditionalGeneration.from_pretrained(target)
    model = model.to(device)
    return tw.TorchWhisper(model, target), torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--carry", type=Path, default=Path(".robcarry"))
    parser.add_argument("--parts", type=Path, default=Path("/root/wparts"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--stage1", type=int, default=1000)
    parser.add_argument("--stage2", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=0, help="attack only the first N")
    parser.add_argument("--margin", type=float, default=0.0, help="success margin (logits)")
    parser.add_argument("--tf32", action="store_true", help="TF32 matmuls during the attack")
    args = parser.parse_args()

    from emotivoice.robustness.attack import AttackOptions, targeted_attack
    from emotivoice.robustness.whisper_loss import greedy_transcripts

    started = time.perf_counter()
    model, torch = _model(args.carry, args.parts, "cuda")
    print(f"model ready in {time.perf_counter() - started:.1f} s on {torch.cuda.get_device_name()}")
    packed = np.load(args.carry / "utterances.npz")
    names = [str(n) for n in packed["names"]]
    targets = [str(t) for t in packed["targets"]]
    audio = [packed[f"audio_{i}"] for i in range(len(names))]
    if args.limit:
        names, targets, audio = names[: args.limit], targets[: args.limit], audio[: args.limit]
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    options = AttackOptions(
        stage1_steps=args.stage1,
        stage2_steps=args.stage2,
        margin=args.margin,
        batch_size=len(names),
        progress=False,
    )
    started = time.perf_counter()
    results = targeted_attack(model, audio, targets, options)
    torch.cuda.synchronize()
    wall = time.perf_counter() - started
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    adversarial = [torch.from_numpy(r.adversarial).cuda() for r in results]
    decoded = greedy_transcripts(model, adversarial, "en")
    args.out.mkdir(parents=True, exist_ok=True)
    arrays = {f"adv_{i}": r.adversarial for i, r in enumerate(results)}
    arrays |= {
        f"stage1_{i}": r.stage1_adversarial
        for i, r in enumerate(results)
        if r.stage1_adversarial is not None
    }
    arrays["names"] = np.array(names)
    np.savez_compressed(args.out / "adversarial.npz", **arrays)  # type: ignore[arg-type]
    report = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "tf32": args.tf32,
        "margin": args.margin,
        "stage1_steps": args.stage1,
        "stage2_steps": args.stage2,
        "batch_size": len(names),
        "wall_seconds": wall,
        "examples": [
            {
                "file": name,
                "target": r.goal,
                "succeeded": r.succeeded,
                "stage1_success_step": r.stage1_success_step,
                "stage2_applied": r.stage2_applied,
                "linf_bound": r.linf_bound,
                "iterations": r.iterations,
                "seconds": r.seconds,
                "gpu_fp32_transcript": text,
            }
            for name, r, text in zip(names, results, decoded, strict=True)
        ],
    }
    (args.out / "attack.json").write_text(json.dumps(report, indent=2))
    for example in report["examples"]:
        print(json.dumps(example))
    print(f"attack wall time {wall:.1f} s for {len(names)} utterances")


if __name__ == "__main__":
    main()
