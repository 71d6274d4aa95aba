"""Training and evaluating the arousal/valence/intensity head (`emotion.dimensions`).

Data: RAVDESS actors 01–20 and nEMO, the emotion recipe's corpora. Targets (the model card
states them with their sources):

- arousal, from the category's quadrant on Russell's (1980) circumplex: high for anger, fear,
  happiness and surprise; low for neutral, calm and sadness (disgust is not on it: left out);
- valence: positive for happiness and calm, negative for anger, fear and sadness; neutral and
  surprise (on the middle of the valence axis) are a target of 0.5, one example counted half
  positive and half negative;
- intensity: RAVDESS's own label, strong (``02``) = 1, normal (``01``) = 0, neutral (only
  recorded normal) and calm = 0; nEMO has no intensity label and does not train it.

Inputs: each clip speech-cropped (the recipe's :func:`~emotivoice.training.states.crop_to_speech`),
its own log-mel frames through an encoder prefix, layer 4 pooled to mean + std. Two prefixes:
the default emotion head's fine-tuned one (what the product runs; it saw every speaker of both
corpora with category labels while being fine-tuned, so figures on it are optimistic), and the
frozen Whisper-base prefix, which saw none of them (the honest estimate of generalisation).
Features are cached per corpus, so that refitting is seconds.

Models: a class-balanced, corpus-balanced L2 logistic regression per dimension on the
standardised statistics, then Platt scaling fitted on out-of-fold (speaker-disjoint) scores. The
exported head (adapted states) takes its calibration over from the frozen prefix
(:func:`matched_calibration`): the adapted prefix saw every speaker, so its own out-of-fold
scores are training scores and calibrating on them saturates the probabilities.

``python -m emotivoice.training.dimensions --cache /tmp/dims --export weights.npz`` extracts,
evaluates and writes the head.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emotivoice.emotion.dimensions import DIMENSIONS, pool_states

logger = logging.getLogger(__name__)

# RAVDESS emotion codes (file name field 3); 07 disgust has no place on the circumplex
RAVDESS_CODES = {"01": "neutral", "02": "calm", "03": "happiness", "04": "sadness"}
RAVDESS_CODES |= {"05": "anger", "06": "fear", "08": "surprise"}

# Russell 1980 quadrants: 1 high / positive, 0 low / negative, 0.5 on the axis
AROUSAL = {"anger": 1.0, "fear": 1.0, "happiness": 1.0, "surprise": 1.0}
AROUSAL |= {"neutral": 0.0, "calm": 0.0, "sadness": 0.0}
VALENCE = {"happiness": 1.0, "calm": 1.0, "anger": 0.0, "fear": 0.0, "sadness": 0.0}
VALENCE |= {"neutral": 0.5, "surprise": 0.5}

PREFIX_LAYER = 4  # the default emotion head's tap (``prefix4``)
FEATURE_SETS = ("adapted", "frozen")


@dataclass(frozen=True)
class DimensionClip:
    """A recording with what its file says about it."""

    path: Path
    corpus: str
    speaker: str
    emotion: str  # a base emotion, or ``calm``
    intensity: float | None  # RAVDESS: 1 strong, 0 normal; None where the corpus has no label


def read_clips(root: Path) -> list[DimensionClip]:
    """RAVDESS (``root/ravdess``, disgust left out) and nEMO (``root/nemo``) clips."""
    clips = []
    for path in sorted((root / "ravdess").glob("Actor_*/03-*-*-*-*-*-*.flac")):
        parts = path.stem.split("-")
        emotion = RAVDESS_CODES.get(parts[2])
        if emotion is None:
            continue
        strong = 1.0 if parts[3] == "02" and emotion not in ("neutral", "calm") else 0.0
        clips.append(DimensionClip(path, "ravdess", f"ravdess-{parts[6]}", emotion, strong))
    with (root / "nemo" / "data.tsv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            emotion = "surprise" if row["emotion"] == "surprised" else row["emotion"]
            path = root / "nemo" / "samples" / row["file_id"]
            if emotion in AROUSAL and path.exists():
                clips.append(
                    DimensionClip(path, "nemo", f"nemo-{row['speaker_id']}", emotion, None)
                )
    return clips


def _pooled_features(samples: np.ndarray) -> dict[str, np.ndarray]:
    """Pooled layer-4 statistics of both prefixes and the emotion head's logits for a clip."""
    from emotivoice.emotion.head import EmotionHead, own_log_mel
    from emotivoice.models.encoder_prefix import load_encoder_prefix

    head = EmotionHead.load()
    mel = own_log_mel(samples)
    adapted = head.prefix_states(mel)[0]
    frozen = load_encoder_prefix("base", PREFIX_LAYER)(mel).layers[PREFIX_LAYER][0]
    return {
        "adapted": pool_states(adapted),
        "frozen": pool_states(frozen),
        "logits": head.logits(adapted).astype(np.float32),
    }


def extract_features(clips: Sequence[DimensionClip], cache: Path, shard: str = "all") -> Path:
    """Pooled statistics of every clip into ``cache/features-<shard>.npz`` (kept: a second call
    reads it back)."""
    from emotivoice.audio import load_audio
    from emotivoice.errors import AudioError
    from emotivoice.training.states import crop_to_speech

    out = cache / f"features-{shard}.npz"
    if out.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[Any]] = {"adapted": [], "frozen": [], "logits": [], "path": []}
    for number, clip in enumerate(clips):
        try:
            samples = crop_to_speech(load_audio(clip.path).samples)
        except AudioError as error:
            logger.warning("Skipping %s: %s", clip.path, error.message)
            continue
        for key, value in _pooled_features(samples).items():
            rows[key].append(value)
        rows["path"].append(str(clip.path))
        if number % 200 == 0:
            logger.info("%s: %d of %d clips", shard, number, len(clips))
    np.savez(out, **{k: np.asarray(v) for k, v in rows.items()})  # type: ignore[arg-type]
    return out


@dataclass(frozen=True)
class FeatureTable:
    """Pooled features of the clips that were read, with their targets."""

    features: dict[str, np.ndarray]  # feature set → (clips, 2 · features)
    logits: np.ndarray  # the default emotion head's logits (clips, 6)
    clips: tuple[DimensionClip, ...]

    @property
    def corpora(self) -> np.ndarray:
        return np.array([c.corpus for c in self.clips])

    @property
    def speakers(self) -> np.ndarray:
        return np.array([c.speaker for c in self.clips])

    def targets(self, dimension: str) -> np.ndarray:
        """Target per clip in [0, 1]; NaN where the clip does not train that dimension."""
        if dimension == "intensity":
            return np.array([np.nan if c.intensity is None else c.intensity for c in self.clips])
        table = AROUSAL if dimension == "arousal" else VALENCE
        return np.array([table.get(c.emotion, np.nan) for c in self.clips])


def load_table(clips: Sequence[DimensionClip], files: Sequence[Path]) -> FeatureTable:
    """Join cached feature files back onto their clips (clips that failed to decode drop out).

    Files of ``research/arousal_study.py extract`` (no logits) load too."""
    by_path = {str(c.path.resolve()): c for c in clips}
    features: dict[str, list[np.ndarray]] = {k: [] for k in FEATURE_SETS}
    logits, kept = [], []
    for file in files:
        with np.load(file) as stored:  # each access to a key reads the whole array
            arrays = {key: stored[key] for key in stored.files}
        for i, stored_path in enumerate(arrays["path"]):
            path = str(Path(str(stored_path)).resolve())  # the data folder may be named otherwise
            if path in by_path:
                kept.append(by_path[path])
                logits.append(arrays["logits"][i] if "logits" in arrays else np.full(6, np.nan))
                for key in FEATURE_SETS:
                    features[key].append(arrays[key][i])
    return FeatureTable(
        {k: np.asarray(v, np.float32) for k, v in features.items()},
        np.asarray(logits),
        tuple(kept),
    )


def _balanced_weights(target: np.ndarray, corpora: np.ndarray) -> np.ndarray:
    """Each corpus counts equally and, within it, both ends of the dimension."""
    weights = np.zeros(len(target))
    names = np.unique(corpora)
    for corpus in names:
        for high in (False, True):
            members = (corpora == corpus) & ((target > 0.5) == high) & (target != 0.5)
            if members.any():
                weights[members] = 1.0 / (members.sum() * 2 * len(names))
        middle = (corpora == corpus) & (target == 0.5)
        if middle.any():  # on the axis: as much weight as one end
            weights[middle] = 1.0 / (middle.sum() * 2 * len(names))
    return weights / weights[weights > 0].mean()


@dataclass(frozen=True)
class LogisticModel:
    """Standardisation and one logistic regression (raw logit = weight · z + bias)."""

    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray
    bias: float

    def raw(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(((x - self.mean) / self.scale) @ self.weight + self.bias)


def fit_logistic(
    x: np.ndarray, target: np.ndarray, corpora: np.ndarray, c: float = 0.01
) -> LogisticModel:
    """L2 logistic regression on standardised ``x`` with soft targets (0, 0.5 or 1): a 0.5
    example enters once as each class with half its weight."""
    from sklearn.linear_model import LogisticRegression

    keep = ~np.isnan(target)
    x, target, corpora = x[keep], target[keep], corpora[keep]
    mean = x.mean(0)
    scale = x.std(0) + 1e-6
    z = (x - mean) / scale
    weights = _balanced_weights(target, corpora)
    z2 = np.concatenate([z, z])
    y2 = np.concatenate([np.ones(len(z)), np.zeros(len(z))])
    w2 = np.concatenate([weights * target, weights * (1 - target)])
    use = w2 > 0
    model = LogisticRegression(C=c, solver="newton-cholesky", max_iter=100)
    model.fit(z2[use], y2[use], sample_weight=w2[use])
    return LogisticModel(mean, scale, model.coef_[0], float(model.intercept_[0]))


def fit_platt(raw: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Slope and offset mapping raw logits to calibrated ones (soft targets, log loss)."""
    from scipy.optimize import minimize

    keep = ~np.isnan(target)
    s, t = raw[keep], target[keep]

    def loss(p: np.ndarray) -> float:
        z = p[0] * s + p[1]
        return float(np.mean(np.logaddexp(0, z) - t * z))

    result = minimize(loss, np.array([1.0, 0.0]), method="L-BFGS-B")
    return float(result.x[0]), float(result.x[1])


def speaker_folds(speakers: np.ndarray, n: int) -> list[np.ndarray]:
    """The emotion recipe's folds: sorted distinct speakers dealt in turn."""
    unique = sorted(set(speakers.tolist()))
    return [np.array(unique[i::n]) for i in range(n)]


def out_of_fold(
    table: FeatureTable,
    feature_set: str,
    dimension: str,
    train: np.ndarray,
    test: np.ndarray,
    c: float,
) -> np.ndarray:
    """Raw logits of the ``test`` clips from a model fitted on the ``train`` clips."""
    x, target = table.features[feature_set], table.targets(dimension)
    model = fit_logistic(x[train], target[train], table.corpora[train], c)
    return model.raw(x[test])


def concordance(x: np.ndarray, y: np.ndarray) -> float:
    """Lin's concordance correlation coefficient."""
    mx, my = x.mean(), y.mean()
    cov = ((x - mx) * (y - my)).mean()
    return float(2 * cov / (x.var() + y.var() + (mx - my) ** 2))


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (ties count half)."""
    from scipy.stats import rankdata

    ranks = rankdata(score)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def dimension_report(probability: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Agreement of predicted probabilities with targets: binary accuracy and balanced accuracy
    on the clips with a hard target, AUC, CCC against the targets (0, 0.5, 1)."""
    keep = ~np.isnan(target)
    p, t = probability[keep], target[keep]
    hard = t != 0.5
    truth, said = t[hard] > 0.5, p[hard] > 0.5
    recall_high = float((said & truth).sum() / max(truth.sum(), 1))
    recall_low = float((~said & ~truth).sum() / max((~truth).sum(), 1))
    return {
        "n": int(keep.sum()),
        "accuracy": round(float((said == truth).mean()), 4),
        "balanced_accuracy": round((recall_high + recall_low) / 2, 4),
        "auc": round(auc(p[hard], truth), 4),
        "ccc": round(concordance(p, t), 4),
    }


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1 / (1 + np.exp(-np.clip(x, -50, 50))))


def evaluate(
    table: FeatureTable,
    feature_set: str,
    c: float = 0.01,
    ravdess_folds: int = 4,
    nemo_folds: int = 3,
) -> dict[str, Any]:
    """Speaker-disjoint (both corpora in training, one corpus's speakers held out) and
    cross-corpus figures of every dimension; Platt scaling fitted on the out-of-fold scores of
    the training side only (calibration inside each evaluation would see the test clips)."""
    evaluations: dict[str, Any] = {}
    for name, folds in _splits(table, ravdess_folds, nemo_folds).items():
        evaluations[name] = {}
        for dimension in DIMENSIONS:
            target = table.targets(dimension)
            trains = [train & ~np.isnan(target) for train, _ in folds]
            tested = np.zeros(len(target), bool)
            for _, test in folds:
                tested |= test
            if not all(train.any() for train in trains) or np.isnan(target[tested]).all():
                continue  # intensity: no labels on nEMO, to train on or to test
            test_all = np.zeros(len(target), bool)
            probability = np.full(len(target), np.nan)
            for train, test in zip(trains, [t for _, t in folds], strict=True):
                raw = out_of_fold(table, feature_set, dimension, train, test, c)
                slope, offset = _inner_platt(table, feature_set, dimension, train, c)
                probability[test] = _sigmoid(slope * raw + offset)
                test_all |= test
            p, t = probability[test_all], target[test_all]
            evaluations[name][dimension] = dimension_report(p, t) | calibration_report(p, t)
    return evaluations


def _splits(
    table: FeatureTable, ravdess_folds: int = 4, nemo_folds: int = 3
) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """(train, test) masks: speaker folds of each corpus (the other corpus trains too) and
    each corpus to the other."""
    corpora, speakers = table.corpora, table.speakers
    splits: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for corpus, n in (("ravdess", ravdess_folds), ("nemo", nemo_folds)):
        held_out = []
        for held in speaker_folds(speakers[corpora == corpus], n):
            test = np.isin(speakers, held)
            held_out.append((~test, test))
        splits[f"{corpus}_speaker_disjoint"] = held_out
    splits["cross_ravdess_to_nemo"] = [(corpora == "ravdess", corpora == "nemo")]
    splits["cross_nemo_to_ravdess"] = [(corpora == "nemo", corpora == "ravdess")]
    return splits


def _inner_platt(
    table: FeatureTable, feature_set: str, dimension: str, train: np.ndarray, c: float
) -> tuple[float, float]:
    """Platt scaling from speaker-disjoint out-of-fold scores within ``train`` (3 folds)."""
    return _held_out_calibration(table, feature_set, dimension, train, c)[1:]


def _held_out_calibration(
    table: FeatureTable, feature_set: str, dimension: str, train: np.ndarray, c: float
) -> tuple[np.ndarray, float, float]:
    """Speaker-disjoint out-of-fold raw logits within ``train`` (3 folds; NaN elsewhere) and the
    Platt scaling fitted on them."""
    target = table.targets(dimension)
    raw = np.full(len(target), np.nan)
    for held in speaker_folds(table.speakers[train], 3):
        test = train & np.isin(table.speakers, held)
        fit_on = train & ~test
        if (fit_on & ~np.isnan(target)).any():
            raw[test] = out_of_fold(table, feature_set, dimension, fit_on, test, c)
    keep = train & ~np.isnan(raw) & ~np.isnan(target)
    raw[~keep] = np.nan
    return raw, *fit_platt(raw[keep], target[keep])


def calibration_report(probability: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Expected calibration error (10 equal-width bins), Brier score and the share of
    saturated probabilities (under 0.01 or over 0.99) on the clips with a hard target."""
    hard = (target == 0) | (target == 1)
    p, t = probability[hard], target[hard]
    which = np.clip((p * 10).astype(int), 0, 9)
    ece = sum(
        abs(p[which == b].mean() - t[which == b].mean()) * (which == b).mean()
        for b in range(10)
        if (which == b).any()
    )
    return {
        "ece": round(float(ece), 4),
        "brier": round(float(((p - t) ** 2).mean()), 4),
        "saturated": round(float(((p < 0.01) | (p > 0.99)).mean()), 4),
    }


def fit_head(
    table: FeatureTable,
    feature_set: str,
    c: float,
    metadata: dict[str, Any],
    calibrate_on: str | None = None,
) -> dict[str, Any]:
    """The arrays of a :class:`~emotivoice.emotion.dimensions.DimensionHead` trained on every
    clip (Platt scaling from speaker-disjoint out-of-fold scores).

    ``calibrate_on``: another feature set whose held-out calibration the head takes over
    (:func:`matched_calibration`): the adapted prefix saw every speaker, so its out-of-fold
    scores are as confident as training scores and its probabilities exactly 0 or 1.
    """
    everything = np.ones(len(table.clips), bool)
    x = table.features[feature_set]
    mean, scale = x.mean(0), x.std(0) + 1e-6
    weights, biases, platt = [], [], []
    for dimension in DIMENSIONS:
        target = table.targets(dimension)
        model = fit_logistic(x, target, table.corpora, c)
        # same standardisation for the three dimensions: fold each model's own into its weight
        w = model.weight / model.scale
        b = model.bias - float(w @ model.mean)
        weights.append(w * scale)
        biases.append(b + float(w @ mean))
        if calibrate_on is None:
            platt.append(_inner_platt(table, feature_set, dimension, everything, c))
        else:
            own = model.raw(x)
            platt.append(matched_calibration(table, calibrate_on, dimension, own, c))
    return {
        "mean": mean.astype(np.float32),
        "scale": scale.astype(np.float32),
        "weight": np.asarray(weights, np.float32),
        "bias": np.asarray(biases, np.float32),
        "platt": np.asarray(platt, np.float32),
        "metadata": np.array(json.dumps(metadata)),
    }


def matched_calibration(
    table: FeatureTable, honest_set: str, dimension: str, own_raw: np.ndarray, c: float
) -> tuple[float, float]:
    """Slope and offset that give a head's raw logits ``own_raw`` (one per clip of ``table``)
    the centre and spread, over the clips with a target, of the speaker-disjoint calibrated
    logits of a model on ``honest_set`` (the frozen prefix, which saw none of these speakers).

    A head on states that saw every training speaker cannot be calibrated on them: its
    held-out scores are training scores. Matching the honest model's logit distribution keeps
    the head's ranking and makes it as confident as held-out speakers warrant on the honest
    states; how well that holds on the adapted states cannot be measured on these corpora.
    """
    everything = np.ones(len(table.clips), bool)
    raw, slope, offset = _held_out_calibration(table, honest_set, dimension, everything, c)
    keep = ~np.isnan(raw)
    honest = slope * raw[keep] + offset
    spread = float(honest.std() / own_raw[keep].std())
    return spread, float(honest.mean() - spread * own_raw[keep].mean())


def _extract_all(root: Path, cache: Path, shards: int, shard: int | None) -> list[Path]:
    clips = read_clips(root)
    names = [f"{i}of{shards}" for i in range(shards)]
    if shard is not None:
        return [extract_features(clips[shard::shards], cache, names[shard])]
    return [extract_features(clips[i::shards], cache, names[i]) for i in range(shards)]


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = logger.info) -> int:
    """Extract (cached), evaluate both feature sets, and export the head on the adapted one."""
    import os

    parser = argparse.ArgumentParser(prog="python -m emotivoice.training.dimensions")
    parser.add_argument(
        "--data",
        default=os.environ.get("EMOTIVOICE_DATA_DIR", "../shared/data"),
        help="shared data folder (default: EMOTIVOICE_DATA_DIR or ../shared/data)",
    )
    parser.add_argument("--cache", default="/tmp/emotivoice-dimensions")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--shard", type=int, default=None, help="extract only this shard")
    parser.add_argument("--c", type=float, default=0.01, help="inverse L2 strength")
    parser.add_argument(
        "--features", nargs="*", default=None, help="cached feature files to use (no extraction)"
    )
    parser.add_argument("--export", default=None, help="write the head here")
    parser.add_argument("--report", default=None, help="write the evaluations (JSON) here")
    args = parser.parse_args(argv)
    root = Path(args.data)
    if args.features:
        files = [Path(f) for f in args.features]
    else:
        files = _extract_all(root, Path(args.cache), args.shards, args.shard)
    if args.shard is not None:
        return 0
    table = load_table(read_clips(root), files)
    report = {fs: evaluate(table, fs, args.c) for fs in FEATURE_SETS}
    for fs, evaluations in report.items():
        for name, dims in evaluations.items():
            for dimension, figures in dims.items():
                out(f"{fs:15} {name:26} {dimension:9} {figures}")
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=1))
    if args.export:
        metadata = {
            "dimensions": list(DIMENSIONS),
            "states": "the default emotion head's prefix4 (EmotionHead.prefix_states)",
            "regularisation_c": args.c,
            "calibration": "the frozen prefix's speaker-disjoint calibration (fit_head)",
            "targets": {"arousal": AROUSAL, "valence": VALENCE, "intensity": "RAVDESS II field"},
            "evaluations": report["adapted"],
            "frozen_prefix_evaluations": report["frozen"],
            "training_speakers": sorted(set(table.speakers.tolist())),
            "training_clips": len(table.clips),
        }
        arrays = fit_head(table, "adapted", args.c, metadata, calibrate_on="frozen")
        np.savez(args.export, **arrays)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    raise SystemExit(main())
