"""Explanation cost on a GPU: Shapley + LIME + deletion + counterfactuals of a 10 s segment.

Runs on an accelerator machine with the packed encoder (``pack_emotion_corpus.py --encoder``)
and a saved 10 s segment (``.emocarry/seg10.npy``); the model function is the PyTorch encoder
plus the default head (:func:`emotivoice.explain.gradients.torch_emotion_scorer`), batched.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from emotivoice.explain import ExplainOptions, explain_segment
from emotivoice.explain.gradients import torch_emotion_scorer
from emotivoice.models.torch_whisper import load_packed_encoder


def main(carry: Path = Path(".emocarry"), device: str = "cuda") -> None:
    encoder, filters = load_packed_encoder(carry / "encoder.npz")
    scorer = torch_emotion_scorer(encoder, filters, device=device, batch_size=72)
    segment = np.load(carry / "seg10.npy")
    explain_segment(segment, scorer, ExplainOptions())  # warm-up (kernels, caches)
    for run in range(3):
        started = time.perf_counter()
        explanation = explain_segment(segment, scorer, ExplainOptions())
        total = time.perf_counter() - started
        costs = ", ".join(
            f"{m}: {int(c['evaluations'])} evals {c['seconds']:.2f} s"
            for m, c in explanation.cost.items()
        )
        print(f"run {run}: {total:.2f} s in all ({costs}); predicted {explanation.predicted}")


if __name__ == "__main__":
    main(device=sys.argv[1] if len(sys.argv) > 1 else "cuda")
