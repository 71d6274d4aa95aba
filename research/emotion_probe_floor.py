"""The issue's linear-probe floor, reproduced on a CPU: how much do the fold count and a second
training corpus move it?

Every clip (speech-cropped as the recipe crops it) goes through the pipeline's own encoder pass
(:meth:`emotivoice.transcription.Transcriber.encode`, the padded 30 s window, final layer); the
mean and standard deviation of its speech positions (:attr:`EncodedSegment.states`) are probed
by an L2-regularised, class-balanced logistic regression (full-batch L-BFGS on standardised
features). RAVDESS is scored on speaker-disjoint folds, trained on RAVDESS alone and on RAVDESS
plus every ``--nemo-step``-th nEMO clip. Pooled states are cached in ``OUT/``; about 15 minutes
for RAVDESS and 20 for a third of nEMO on two busy cores, then seconds per probe.

    python research/emotion_probe_floor.py OUT [--data ../shared/data] [--nemo-step 3]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from emotivoice.emotion.labels import BASE_EMOTIONS
from emotivoice.metrics import classification_report
from emotivoice.training.corpora import read_corpus
from emotivoice.training.recipe import speaker_folds
from emotivoice.training.states import prepare_clips
from emotivoice.transcription import Transcriber

Pooled = tuple[np.ndarray, np.ndarray, np.ndarray]  # features, label indices, speakers


def pooled_states(root: Path, layout: str, step: int, cache: Path) -> Pooled:
    """Mean+std pooled final encoder states of every ``step``-th clip (cached in ``cache``)."""
    if not cache.exists():
        clips = prepare_clips(read_corpus(root, layout)[::step])
        transcriber = Transcriber()
        rows = []
        for clip in tqdm(clips, desc=f"encoding {layout}"):
            states = transcriber.encode(clip.samples).states.astype(np.float32)
            rows.append(np.concatenate([states.mean(0), states.std(0)]))
        labels = [BASE_EMOTIONS.index(c.emotion) for c in clips]
        np.savez(cache, x=np.array(rows), y=np.array(labels), s=[c.speaker for c in clips])
    data = np.load(cache)
    return data["x"], data["y"], data["s"]


def fit_predict(x: np.ndarray, y: np.ndarray, test: np.ndarray, c: float) -> np.ndarray:
    """Class-balanced multinomial logistic regression with an L2 penalty 1/(2·C·n)."""
    import torch

    mean, std = x.mean(0), x.std(0) + 1e-5
    a = torch.tensor((x - mean) / std, dtype=torch.float64)
    b = torch.tensor(y)
    counts = np.bincount(y, minlength=len(BASE_EMOTIONS))
    balance = torch.tensor(len(y) / (len(BASE_EMOTIONS) * np.maximum(counts, 1)))
    w = torch.zeros(a.shape[1], len(BASE_EMOTIONS), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(len(BASE_EMOTIONS), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([w, bias], max_iter=150, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        logits = a @ w + bias
        loss = torch.nn.functional.cross_entropy(logits, b, weight=balance)
        loss = loss + (w**2).sum() / (2 * c * len(y))
        loss.backward()
        return loss

    optimiser.step(closure)
    t = torch.tensor((test - mean) / std, dtype=torch.float64)
    return (t @ w + bias).argmax(1).numpy()


def folds_ua(data: Pooled, n_folds: int, c: float, extra: Pooled | None = None) -> float:
    """UA pooled over ``n_folds`` speaker-disjoint folds (``extra`` joins every training set)."""
    x, y, speakers = data
    truth, predicted = [], []
    for fold in speaker_folds(speakers, n_folds):  # the recipe's folds
        held = np.isin(speakers, fold)
        train_x, train_y = x[~held], y[~held]
        if extra is not None:
            train_x, train_y = (
                np.concatenate([train_x, extra[0]]),
                np.concatenate([train_y, extra[1]]),
            )
        truth.append(y[held])
        predicted.append(fit_predict(train_x, train_y, x[held], c))
    report = classification_report(np.concatenate(truth), np.concatenate(predicted), BASE_EMOTIONS)
    return float(report["ua"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--nemo-step", type=int, default=3)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ravdess = pooled_states(args.data / "ravdess", "ravdess", 1, args.out / "ravdess.npz")
    nemo = pooled_states(args.data / "nemo", "nemo", args.nemo_step, args.out / "nemo.npz")
    actors = len(set(ravdess[2].tolist()))
    rows = []
    for c in (0.01, 0.1, 1.0, 10.0, 100.0):
        for folds in (4, 5, actors):
            for name, extra in (("ravdess", None), ("ravdess+nemo", nemo)):
                ua = folds_ua(ravdess, folds, c, extra)
                rows.append({"C": c, "folds": folds, "train": name, "ua": round(ua, 3)})
                print(json.dumps(rows[-1]), flush=True)
    (args.out / "probe.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
