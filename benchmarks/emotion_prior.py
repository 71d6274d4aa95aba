"""Fit and check the natural-speech prior correction of the default emotion head (issue 24).

1. The shipped head: per-class biases of its calibrated logits fitted on the acted corpora
   (RAVDESS 01–20 + nEMO, every clip, class-balanced) and on calm read speech that is *not* in
   the natural-speech benchmark (:func:`~emotivoice.evaluation.natural_speech.calibration_clips`:
   other texts and other TTS voices, plus Debian ``pocketsphinx-testdata``'s calm human clips),
   taken as neutral with the weight of one class (:mod:`emotivoice.training.prior`). Acted
   figures before/after are on clips the head was trained on (fit, not generalisation).
2. The honest check of the method: the same correction on a linear category head over the
   *frozen* encoder prefix (which saw none of the speakers), trained and tested speaker-disjoint
   and across corpora; UA and per-class recall before and after, and the share of confident
   non-neutral pieces of the benchmark's calm speech (scored directly, no transcription).

Usage: ``python benchmarks/emotion_prior.py --cache /tmp/emotivoice-dimensions
[--export head.npz] [--json report.json]`` (the cache is
``python -m emotivoice.training.dimensions``'s).
"""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from emotivoice.emotion.head import DEFAULT_HEAD, EmotionHead
from emotivoice.emotion.labels import BASE_EMOTIONS
from emotivoice.evaluation.datasets import data_dir
from emotivoice.evaluation.natural_speech import (
    CALM_GROUPS,
    CONFIDENT,
    NaturalClip,
    benchmark_clips,
    calibration_clips,
    head_units,
)
from emotivoice.metrics import classification_report
from emotivoice.training import dimensions as dims
from emotivoice.training.prior import fit_prior_correction

POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data")
NEUTRAL = BASE_EMOTIONS.index("neutral")


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return np.asarray(e / e.sum(1, keepdims=True))


def confident_share(logits: np.ndarray) -> float:
    """Share of rows whose top class is not neutral at a probability ≥ 0.5."""
    p = _softmax(logits)
    return round(float(((p.argmax(1) != NEUTRAL) & (p.max(1) >= CONFIDENT)).mean()), 4)


def _frozen_pooled(units: Any, clips: list[NaturalClip]) -> np.ndarray:
    """Pooled frozen-prefix layer 4 of the same speech pieces as :func:`head_units`."""
    from emotivoice.audio import load_audio
    from emotivoice.emotion.dimensions import pool_states
    from emotivoice.emotion.head import own_log_mel
    from emotivoice.models.encoder_prefix import load_encoder_prefix
    from emotivoice.segmentation import VadOptions, detect_speech

    prefix = load_encoder_prefix("base", 4)
    rows = []
    for clip in clips:
        samples = load_audio(clip.path).samples
        for span in detect_speech(samples, VadOptions(max_segment_s=8.0)):
            mel = own_log_mel(samples[span.start_sample : span.end_sample])
            rows.append(pool_states(prefix(mel).layers[4][0]))
    out = np.asarray(rows)
    assert len(out) == len(units.logits)  # same VAD, same pieces
    return out


def natural_sets(data: Path, cache: Path) -> dict[str, Any]:
    """Head outputs and frozen features of the calibration and benchmark pieces (cached)."""
    file = cache / "natural.pkl"
    if file.exists():
        return dict(pickle.loads(file.read_bytes()))
    calibration = calibration_clips(data, cache / "tts-calibration")
    calibration += [
        NaturalClip(f"pocketsphinx/cards/{p.stem}", "real_calm", p)
        for p in sorted((POCKETSPHINX / "cards").glob("*.wav"))
    ]
    bench = benchmark_clips(data, cache / "tts-benchmark")
    out: dict[str, Any] = {}
    for name, clips in (("calibration", calibration), ("benchmark", bench)):
        units = head_units(clips)
        out[name] = {
            "logits": units.logits,
            "groups": np.array(units.groups),
            "clips": np.array(units.clips),
            "frozen": _frozen_pooled(units, clips),
        }
    file.write_bytes(pickle.dumps(out))
    return out


def _labels(table: dims.FeatureTable) -> np.ndarray:
    return np.array(
        [BASE_EMOTIONS.index("neutral" if c.emotion == "calm" else c.emotion) for c in table.clips]
    )


def _report(truth: np.ndarray, logits: np.ndarray) -> dict[str, Any]:
    r = classification_report(truth, logits.argmax(1), BASE_EMOTIONS)
    return {"ua": r["ua"], "recall": r["recall"]}


def shipped(table: dims.FeatureTable, natural: dict[str, Any]) -> dict[str, Any]:
    """The shipped head's correction and its figures before and after."""
    head = EmotionHead.load()
    t = head.temperature
    labels, corpora = _labels(table), table.corpora
    acted = table.logits / t
    fit = fit_prior_correction(acted, labels, corpora, natural["calibration"]["logits"] / t)
    result: dict[str, Any] = {
        "bias": [round(float(b), 4) for b in fit.bias],
        "acted_loss": fit.acted_loss,
        "natural_loss": fit.natural_loss,
    }
    for corpus in ("ravdess", "nemo"):
        m = corpora == corpus
        result[f"{corpus}_fit"] = {
            "before": _report(labels[m], acted[m]),
            "after": _report(labels[m], acted[m] + fit.bias),
        }
    bench = natural["benchmark"]
    for group in (*CALM_GROUPS, "acted_neutral", "animated"):
        m = bench["groups"] == group
        z = bench["logits"][m] / t
        result[f"pieces_{group}"] = {
            "n": int(m.sum()),
            "before": confident_share(z),
            "after": confident_share(z + fit.bias),
        }
    return result


def _linear_head(x: np.ndarray, y: np.ndarray, corpora: np.ndarray, c: float) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    weights = np.zeros(len(y))
    names = np.unique(corpora)
    for corpus in names:
        for label in np.unique(y[corpora == corpus]):
            m = (corpora == corpus) & (y == label)
            weights[m] = 1.0 / m.sum()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))
    model.fit(x, y, logisticregression__sample_weight=weights / weights.mean())
    return model


def frozen_proxy(table: dims.FeatureTable, natural: dict[str, Any], c: float) -> dict[str, Any]:
    """The correction on linear heads over the frozen prefix, speaker-disjoint and cross-corpus."""
    labels, corpora, speakers = _labels(table), table.corpora, table.speakers
    x = table.features["frozen"]
    splits: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for corpus, n in (("ravdess", 4), ("nemo", 3)):
        splits[f"{corpus}_speaker_disjoint"] = [
            (~np.isin(speakers, held), np.isin(speakers, held))
            for held in dims.speaker_folds(speakers[corpora == corpus], n)
        ]
    splits["cross_ravdess_to_nemo"] = [(corpora == "ravdess", corpora == "nemo")]
    splits["cross_nemo_to_ravdess"] = [(corpora == "nemo", corpora == "ravdess")]
    bench = natural["benchmark"]
    calm = np.isin(bench["groups"], CALM_GROUPS)
    out: dict[str, Any] = {}
    for name, folds in splits.items():
        truth, before, after, shares = [], [], [], []
        for train, test in folds:
            model = _linear_head(x[train], labels[train], corpora[train], c)

            def logits(features: np.ndarray, model: Any = model) -> np.ndarray:
                return np.asarray(model.decision_function(features))

            fit = fit_prior_correction(
                logits(x[train]),
                labels[train],
                corpora[train],
                logits(natural["calibration"]["frozen"]),
            )
            z = logits(x[test])
            truth.append(labels[test])
            before.append(z)
            after.append(z + fit.bias)
            zc = logits(bench["frozen"][calm])
            shares.append((confident_share(zc), confident_share(zc + fit.bias)))
        t = np.concatenate(truth)
        out[name] = {
            "before": _report(t, np.concatenate(before)),
            "after": _report(t, np.concatenate(after)),
            "calm_pieces_confident_non_neutral": {
                "before": round(float(np.mean([s[0] for s in shares])), 4),
                "after": round(float(np.mean([s[1] for s in shares])), 4),
            },
        }
    return out


def export(bias: np.ndarray, out: Path, summary: dict[str, Any]) -> None:
    """The shipped head with ``T · bias`` added to its output bias (one ordinary head file)."""
    from importlib import resources

    source = resources.files("emotivoice.emotion").joinpath("weights", DEFAULT_HEAD)
    with resources.as_file(source) as file, np.load(file) as arrays:
        data = dict(arrays)
    metadata = json.loads(str(data["metadata"]))
    if "prior_correction" in metadata:
        raise SystemExit("the packaged head is already corrected")
    t = float(data["temperature"])
    metadata["prior_correction"] = {
        "bias": [round(float(b), 6) for b in bias],
        "uncorrected_out_bias": [float(v) for v in data["out.bias"]],
        "method": "emotivoice.training.prior (benchmarks/emotion_prior.py)",
        **summary,
    }
    data["out.bias"] = (data["out.bias"] + t * bias).astype(data["out.bias"].dtype)
    data["metadata"] = np.array(json.dumps(metadata))
    np.savez(out, **data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="shared data folder")
    parser.add_argument("--cache", default="/tmp/emotivoice-dimensions")
    parser.add_argument("--c", type=float, default=0.01, help="inverse L2 of the linear proxy")
    parser.add_argument("--export", default=None, help="write the corrected default head here")
    parser.add_argument("--json", default=None, help="write the report here")
    args = parser.parse_args()
    data = data_dir(Path(args.data) if args.data else None)
    cache = Path(args.cache)
    table = dims.load_table(dims.read_clips(data), sorted(cache.glob("features-*.npz")))
    natural = natural_sets(data, cache)
    report = {
        "shipped": shipped(table, natural),
        "frozen_proxy": frozen_proxy(table, natural, args.c),
    }
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    if args.export:
        s = report["shipped"]
        summary = {k: s[k] for k in s if k.startswith("pieces_")}
        export(np.asarray(report["shipped"]["bias"]), Path(args.export), summary)


if __name__ == "__main__":
    main()
