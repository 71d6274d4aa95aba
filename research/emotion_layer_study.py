"""Which Whisper-base encoder states carry emotion across corpora? (accelerator study)

Inputs as ``research/train_emotion_device.py`` (``.emodata/`` and ``.emocarry/encoder.npz``).
Every clip and ``--copies`` augmented copies run through the encoder twice: padded to the 30 s
window as the pipeline's fast runtime does (``pad``), and on the clip's own frames only
(``own``). Mean+std pooled states of every tap (input embedding, layers 1–6, final layer norm)
are probed with the recipe's protocol (RAVDESS 4 actor folds, nEMO 3 speaker folds, both
cross-corpus directions) by a linear and an MLP head. Prints one line per feature set.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from emotivoice.emotion.labels import BASE_EMOTIONS
from emotivoice.metrics import classification_report
from emotivoice.models.torch_whisper import load_packed_encoder, log_mel, speech_positions
from emotivoice.training.augment import augment
from emotivoice.training.recipe import speaker_folds
from emotivoice.training.states import encoder_taps
from train_emotion_device import load_packed_clips

N_TAPS = 8  # embedding, 6 layers, final layer norm


def pooled_taps(encoder, bank, waves, device):
    """(n, 2, N_TAPS, 2*d) pooled mean+std: [:, 0] padded pass, [:, 1] own-frames pass."""
    import torch

    out = []
    for start in range(0, len(waves), 64):
        chunk = waves[start : start + 64]
        keeps = [speech_positions(len(w)) for w in chunk]
        cuda = device == "cuda"
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=cuda):
            mels = torch.cat([log_mel(torch.from_numpy(w), bank, "features") for w in chunk])
            padded = encoder_taps(encoder, mels)
            for i, keep in enumerate(keeps):
                own = encoder_taps(encoder, mels[i : i + 1, :, : 2 * keep])
                rows = []
                for taps, j in ((padded, i), (own, 0)):
                    states = torch.stack([t[j, :keep].float() for t in taps])  # (taps, T, d)
                    rows.append(torch.cat([states.mean(1), states.std(1, unbiased=False)], -1))
                out.append(torch.stack(rows))
    return torch.stack(out)


def train_probe(x, y, w, hidden, device, epochs=40, seed=0, batch=1024, lr=5e-3):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    mu, sd = x.mean(0), x.std(0) + 1e-5
    layers: list[nn.Module] = [nn.Dropout(0.3)]
    if hidden:
        layers += [nn.Linear(x.shape[1], hidden), nn.GELU(), nn.Dropout(0.3)]
    layers.append(nn.Linear(hidden or x.shape[1], len(BASE_EMOTIONS)))
    model = nn.Sequential(*layers).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * ((len(y) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss(reduction="none", label_smoothing=0.1)
    xs = (x - mu) / sd
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), device=device)
        for s in range(0, len(y), batch):
            idx = order[s : s + batch]
            loss = (loss_fn(model(xs[idx]), y[idx]) * w[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return lambda z: model((z - mu) / sd).argmax(1)


def balanced_weights(labels, corpora):
    weights = np.zeros(len(labels))
    for c in np.unique(corpora):
        for lab in np.unique(labels[corpora == c]):
            m = (corpora == c) & (labels == lab)
            weights[m] = 1.0 / m.sum()
    return weights / weights.mean()


def protocol(x, meta, hidden, device):
    """UA of the four evaluations for features x (n, f)."""
    import torch

    labels, speakers, corpora, augmented = meta
    yt = torch.tensor(labels, device=device)

    def run(train_mask, test_mask):
        tr = np.flatnonzero(train_mask)
        te = np.flatnonzero(test_mask & ~augmented)
        w = torch.tensor(balanced_weights(labels[tr], corpora[tr]), device=device).float()
        predict = train_probe(x[tr], yt[tr], w, hidden, device)
        with torch.no_grad():
            return labels[te], predict(x[te]).cpu().numpy()

    result = {}
    for corpus, n in (("ravdess", 4), ("nemo", 3)):
        true, pred = [], []
        for fold in speaker_folds(speakers[corpora == corpus], n):
            held = np.isin(speakers, fold)
            t, p = run(~held, held)
            true.append(t)
            pred.append(p)
        rep = classification_report(np.concatenate(true), np.concatenate(pred), BASE_EMOTIONS)
        result[corpus] = rep["ua"]
    for src, dst in (("ravdess", "nemo"), ("nemo", "ravdess")):
        t, p = run(corpora == src, corpora == dst)
        result[f"{src[0]}->{dst[0]}"] = classification_report(t, p, BASE_EMOTIONS)["ua"]
    return result


def main(copies: int = 2) -> None:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    started = time.time()
    clips = load_packed_clips(Path(".emodata"))
    if "--quick" in sys.argv:  # a smoke run: a few clips of every speaker
        clips = clips[::60]
    encoder, filters = load_packed_encoder(Path(".emocarry/encoder.npz"))
    encoder = encoder.to(device)
    bank = torch.from_numpy(filters).to(device)
    rng = np.random.default_rng(0)
    waves, labels, speakers, corpora, augmented = [], [], [], [], []
    for clip in clips:
        for i in range(copies + 1):
            waves.append(clip.samples if i == 0 else augment(clip.samples, rng))
            labels.append(BASE_EMOTIONS.index(clip.emotion))
            speakers.append(clip.speaker)
            corpora.append(clip.corpus)
            augmented.append(i > 0)
    meta = tuple(np.array(v) for v in (labels, speakers, corpora, augmented))
    print(f"{len(waves)} waves after {time.time() - started:.0f} s", flush=True)
    pooled = pooled_taps(encoder, bank, waves, device)  # (n, 2, taps, 2d)
    print(f"pooled {tuple(pooled.shape)} after {time.time() - started:.0f} s", flush=True)

    own, pad = pooled[:, 1], pooled[:, 0]
    sets: dict[str, object] = {
        "pad-final": pad[:, 7],
        "own-3": own[:, 3],
        "own-2+3": own[:, 2:4].flatten(1),
        "own-2..4": own[:, 2:5].flatten(1),
        "own-2..5": own[:, 2:6].flatten(1),
        "own-1..7": own[:, 1:8].flatten(1),
        "pad-final+own-3": torch.cat([pad[:, 7], own[:, 3]], 1),
        "pad-3": pad[:, 3],
    }
    rows = []
    for name, x in sets.items():
        for hidden in (0,):
            ua = protocol(x, meta, hidden, device)
            row = {"features": name, "hidden": hidden, **{k: round(v, 3) for k, v in ua.items()}}
            rows.append(row)
            print(json.dumps(row), f"{time.time() - started:.0f}s", flush=True)
    out = Path(next((a for a in sys.argv[1:] if not a.startswith("--")), "out"))
    out.mkdir(exist_ok=True, parents=True)
    (out / "study.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
