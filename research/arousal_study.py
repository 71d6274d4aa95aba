"""Arousal across corpora (issue 24): encoder states, prosody/voice-quality features, or both.

``extract`` pools, per clip (speech-cropped as the recipe does), the frozen Whisper-base layer-4
states (honest: they saw no speaker here), the shipped head's adapted states (what the product
runs; optimistic) and the product's own :class:`~emotivoice.results.AcousticFeatures`
(``emotivoice.features.extract_features``; speaking rate from the transcript's syllables over
the cropped duration, as the pipeline's words over their span). ``evaluate`` then scores arousal
high/low accuracy and AUC speaker-disjoint and cross-corpus (RAVDESS ↔ nEMO) for each input and
normalisation, with the threshold from a Platt scaling fitted on held-out speakers of the
training side only, and writes the figures as JSON.

    python research/arousal_study.py extract --cache /tmp/arousal --shards 2 --shard 0  # and 1
    python research/arousal_study.py evaluate --cache /tmp/arousal --report arousal.json
    python research/arousal_study.py export --cache /tmp/arousal --report arousal.json \
        --export src/emotivoice/emotion/weights/whisper-base-dimensions.npz

``export`` gives the packaged head the frozen prefix's calibration (its models unchanged): what
issue 24 shipped, since no arousal variant here transferred better both ways (figures in
``docs/emotion-model-card.md``). 2026-12-07: extraction about 27 minutes for 3,281 clips on two
shared CPU cores (load 5–10), evaluation about 2 minutes, export seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from emotivoice.training.dimensions import DimensionClip, read_clips

logger = logging.getLogger("arousal_study")

RAVDESS_TEXT = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
NEMO_EVERY = 2  # every second nEMO clip (2,2xx of 4,481): extraction fits the session's CPU


def transcripts(root: Path) -> dict[str, str]:
    with (root / "nemo" / "data.tsv").open(encoding="utf-8") as f:
        return {row["file_id"]: row["raw_text"] for row in csv.DictReader(f, delimiter="\t")}


def clip_text(clip: DimensionClip, nemo_text: dict[str, str]) -> str:
    if clip.corpus == "ravdess":
        return RAVDESS_TEXT[clip.path.stem.split("-")[4]]
    return nemo_text.get(clip.path.name, "")


def study_clips(root: Path) -> list[DimensionClip]:
    clips = read_clips(root)
    nemo = [c for c in clips if c.corpus == "nemo"][::NEMO_EVERY]
    return [c for c in clips if c.corpus == "ravdess"] + nemo


def extract(root: Path, cache: Path, shards: int, shard: int) -> None:
    from emotivoice.audio import load_audio
    from emotivoice.emotion.dimensions import pool_states
    from emotivoice.emotion.head import EmotionHead, own_log_mel
    from emotivoice.features import extract_features
    from emotivoice.models.encoder_prefix import load_encoder_prefix
    from emotivoice.training.states import crop_to_speech

    out = cache / f"study-{shard}of{shards}.npz"
    if out.exists():
        return
    cache.mkdir(parents=True, exist_ok=True)
    head, frozen = EmotionHead.load(), load_encoder_prefix("base", 4)
    nemo_text = transcripts(root)
    rows: dict[str, list[Any]] = {"path": [], "adapted": [], "frozen": [], "acoustic": []}
    names: list[str] = []
    clips = study_clips(root)[shard::shards]
    for number, clip in enumerate(clips):
        samples = crop_to_speech(load_audio(clip.path).samples)
        words = clip_text(clip, nemo_text).split()
        features = extract_features(samples, words=words)
        row = features.to_row()
        names = list(row)
        mel = own_log_mel(samples)
        rows["adapted"].append(pool_states(head.prefix_states(mel)[0]))
        rows["frozen"].append(pool_states(frozen(mel).layers[4][0]))
        rows["acoustic"].append([np.nan if v is None else v for v in row.values()])
        rows["path"].append(str(clip.path))
        if number % 100 == 0:
            logger.info("shard %d: %d of %d", shard, number, len(clips))
    arrays = {k: np.asarray(v) for k, v in rows.items()}
    np.savez(out, acoustic_names=np.asarray(names), **arrays)  # type: ignore[arg-type]


# the product's prosody and voice-quality cues of arousal (AcousticFeatures fields)
PROSODY = (
    "f0_mean_hz",
    "f0_std_hz",
    "f0_range_semitones",
    "voiced_fraction",
    "energy_db_mean",
    "energy_db_std",
    "syllable_rate_sps",
    "spectral_centroid_hz",
    "zero_crossing_rate",
    "mfcc_means_1",
    "mfcc_means_2",
    "jitter_local",
    "shimmer_local",
    "hnr_db",
    "f1_hz",
)
# the ones that do not depend on the recording's level or the speaker's register
# (the speaking rate needs the transcript, which the segment's emotion does not wait for)
LEVEL_FREE = (
    "f0_range_semitones",
    "voiced_fraction",
    "energy_db_std",
    "jitter_local",
    "shimmer_local",
    "hnr_db",
    "f1_hz",
    "mfcc_means_2",
    "zero_crossing_rate",
)


def clip_table(root: Path, cache: Path, paths: np.ndarray) -> list[DimensionClip]:
    """The clips of the cached paths; ``cache/clips.json`` stands in for the data folder where
    the figures are computed on a machine without it."""
    table = cache / "clips.json"
    if table.exists():
        rows = json.loads(table.read_text())
        return [DimensionClip(Path(r[0]), r[1], r[2], r[3], r[4]) for r in rows]
    by_path = {str(c.path.resolve()): c for c in study_clips(root)}
    clips = [by_path[str(Path(str(p)).resolve())] for p in paths]
    rows = [[str(c.path), c.corpus, c.speaker, c.emotion, c.intensity] for c in clips]
    table.write_text(json.dumps(rows))
    return clips


def load(root: Path, cache: Path) -> tuple[list[DimensionClip], dict[str, np.ndarray]]:
    parts: dict[str, list[np.ndarray]] = {}
    for file in sorted(cache.glob("study-*.npz")):
        with np.load(file) as stored:
            names = [str(n) for n in stored["acoustic_names"]]
            for key in ("path", "adapted", "frozen", "acoustic"):
                parts.setdefault(key, []).append(stored[key])
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    clips = clip_table(root, cache, arrays["path"])
    acoustic = arrays["acoustic"].astype(np.float64)
    columns = {n: acoustic[:, i] for i, n in enumerate(names)}
    # pitch on a log scale (semitones re 100 Hz), as hearing and the range already are
    columns["f0_mean_hz"] = 12 * np.log2(columns["f0_mean_hz"] / 100)
    columns["f0_std_hz"] = np.log(columns["f0_std_hz"] + 1)
    columns["jitter_local"] = np.log(columns["jitter_local"])
    columns["shimmer_local"] = np.log(columns["shimmer_local"])
    inputs = {
        "frozen": arrays["frozen"].astype(np.float64),
        "adapted": arrays["adapted"].astype(np.float64),
        "prosody": np.stack([columns[n] for n in PROSODY], 1),
        "level_free": np.stack([columns[n] for n in LEVEL_FREE], 1),
        "level_free+rate": np.stack([columns[n] for n in (*LEVEL_FREE, "syllable_rate_sps")], 1),
        "prosody-rate": np.stack([columns[n] for n in PROSODY if n != "syllable_rate_sps"], 1),
    }
    return clips, inputs


def impute(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Undefined values (no voiced frame) → the training side's median."""
    x = x.copy()
    median = np.nanmedian(x[train], 0)
    rows, cols = np.where(np.isnan(x))
    x[rows, cols] = median[cols]
    return x


def normalise(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """z-scores within each group (corpus or speaker)."""
    x = x.copy()
    for g in np.unique(groups):
        m = groups == g
        x[m] = (x[m] - np.nanmean(x[m], 0)) / (np.nanstd(x[m], 0) + 1e-9)
    return x


def clip_norm(x: np.ndarray) -> np.ndarray:
    """Each half of a clip's pooled vector (mean, std) z-scored over its own features: a gain
    or channel offset common to every feature drops out (what inference can do per clip)."""
    half = x.shape[1] // 2
    parts = [x[:, :half], x[:, half:]]
    return np.concatenate(
        [(p - p.mean(1, keepdims=True)) / p.std(1, keepdims=True) for p in parts], 1
    )


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    return float(
        sum(
            abs(p[which == b].mean() - y[which == b].mean()) * (which == b).mean()
            for b in range(bins)
            if (which == b).any()
        )
    )


def fit_score(
    x: np.ndarray,
    y: np.ndarray,
    corpora: np.ndarray,
    speakers: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    c: float,
) -> np.ndarray:
    """Calibrated P(high) on ``test`` from a model on ``train``; Platt from speaker-disjoint
    out-of-fold scores inside ``train`` (3 folds)."""
    from emotivoice.training.dimensions import fit_logistic, fit_platt, speaker_folds

    raw = np.full(len(y), np.nan)
    for held in speaker_folds(speakers[train], 3):
        inner_test = train & np.isin(speakers, held)
        inner_train = train & ~inner_test
        model = fit_logistic(x[inner_train], y[inner_train], corpora[inner_train], c)
        raw[inner_test] = model.raw(x[inner_test])
    slope, offset = fit_platt(raw[train], y[train])
    model = fit_logistic(x[train], y[train], corpora[train], c)
    return np.asarray(1 / (1 + np.exp(-(slope * model.raw(x[test]) + offset))))


def figures(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from emotivoice.training.dimensions import auc

    truth = y > 0.5
    return {
        "accuracy": round(float(((p > 0.5) == truth).mean()), 3),
        "auc": round(auc(p, truth), 3),
        "ece": round(ece(p, truth.astype(float)), 3),
        "brier": round(float(((p - truth) ** 2).mean()), 3),
        "saturated": round(float(((p < 0.01) | (p > 0.99)).mean()), 3),
    }


def _split_scores(
    x: np.ndarray,
    y: np.ndarray,
    corpora: np.ndarray,
    speakers: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    c: float,
) -> np.ndarray:
    p = np.full(len(y), np.nan)
    for train, test in folds:
        p[test] = fit_score(impute(x, train), y, corpora, speakers, train, test, c)
    return p


def evaluate(
    root: Path, cache: Path, c_states: float, c_prosody: float, quick: bool = False
) -> dict[str, Any]:
    from emotivoice.training.dimensions import AROUSAL, speaker_folds

    clips, inputs = load(root, cache)
    y = np.array([AROUSAL.get(c.emotion, np.nan) for c in clips])
    keep = ~np.isnan(y)
    clips = [c for c, k in zip(clips, keep, strict=True) if k]
    y = y[keep]
    inputs = {k: v[keep] for k, v in inputs.items()}
    corpora = np.array([c.corpus for c in clips])
    speakers = np.array([c.speaker for c in clips])
    splits: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {
        "ravdess_to_nemo": [(corpora == "ravdess", corpora == "nemo")],
        "nemo_to_ravdess": [(corpora == "nemo", corpora == "ravdess")],
    }
    for corpus, n in (("ravdess", 4), ("nemo", 3)):
        splits[f"{corpus}_speaker_disjoint"] = [
            (~np.isin(speakers, held), np.isin(speakers, held))
            for held in speaker_folds(speakers[corpora == corpus], n)
        ]
    variants: dict[str, tuple[np.ndarray, float]] = {}
    for name in ("frozen", "adapted"):
        variants[name] = (inputs[name], c_states)
    half = inputs["frozen"].shape[1] // 2
    if quick:  # the encoder-state variants cost seconds a fit: only the frozen prefix
        variants.pop("adapted")
    variants["frozen/mean_only"] = (inputs["frozen"][:, :half], c_states)
    variants["frozen/std_only"] = (inputs["frozen"][:, half:], c_states)
    variants["frozen/clip_norm"] = (clip_norm(inputs["frozen"]), c_states)
    variants["frozen/c=0.0001"] = (inputs["frozen"], c_states / 10)
    variants["frozen+prosody/raw (concatenated)"] = (
        np.concatenate([inputs["frozen"], inputs["prosody"]], 1),
        c_states,
    )
    if quick:
        for name in [v for v in variants if v.startswith("frozen/") or "concatenated" in v]:
            variants.pop(name)
    for name in ("prosody", "prosody-rate", "level_free", "level_free+rate"):
        variants[f"{name}/raw"] = (inputs[name], c_prosody)
        variants[f"{name}/speaker_z (oracle)"] = (normalise(inputs[name], speakers), c_prosody)
        variants[f"{name}/corpus_z (oracle)"] = (normalise(inputs[name], corpora), c_prosody)
    report: dict[str, Any] = {"n": {k: int((corpora == k).sum()) for k in ("ravdess", "nemo")}}
    late: dict[str, dict[str, np.ndarray]] = {}
    jobs = [(v, split) for v in variants for split in splits]
    with ProcessPoolExecutor(min(len(jobs), os.cpu_count() or 1)) as pool:
        futures = {
            job: pool.submit(
                _split_scores,
                variants[job[0]][0],
                y,
                corpora,
                speakers,
                splits[job[1]],
                variants[job[0]][1],
            )
            for job in jobs
        }
        for (variant, split), future in futures.items():
            p = future.result()
            tested = ~np.isnan(p)
            late.setdefault(variant, {})[split] = p
            report.setdefault(variant, {})[split] = figures(p[tested], y[tested])
    for variant in variants:
        logger.info("%s %s", variant, report[variant])
    for states in [s for s in ("frozen", "frozen/clip_norm", "adapted") if s in variants]:
        for prosody in ("prosody/raw", "prosody-rate/raw", "level_free/raw"):
            name = f"{states}+{prosody} (mean of calibrated logits)"
            report[name] = {}
            for split in splits:
                a, b = (np.clip(late[k][split], 1e-9, 1 - 1e-9) for k in (states, prosody))
                tested = ~np.isnan(a)
                logit = (np.log(a / (1 - a)) + np.log(b / (1 - b))) / 2
                report[name][split] = figures(1 / (1 + np.exp(-logit[tested])), y[tested])
            logger.info("%s %s", name, report[name])
    return report


def export(root: Path, cache: Path, head: str, study: str | None) -> None:
    """The packaged head with its calibration taken over from the frozen prefix
    (:func:`~emotivoice.training.dimensions.matched_calibration`), written to ``head``: same
    standardisation and logistic models, new Platt slopes and offsets, this study's arousal
    figures (``study``: the JSON that ``evaluate`` wrote) in the metadata."""
    from emotivoice.emotion.dimensions import DEFAULT_DIMENSIONS, DimensionHead
    from emotivoice.training import dimensions as trainer

    files = sorted(cache.glob("study-*.npz"))
    clips = clip_table(root, cache, np.concatenate([np.load(f)["path"] for f in files]))
    table = trainer.load_table(clips, files)
    packaged = Path(trainer.__file__).parents[1] / "emotion" / "weights" / DEFAULT_DIMENSIONS
    with np.load(packaged) as stored:
        arrays = {k: stored[k] for k in stored.files}
    old = DimensionHead(arrays)
    z = (table.features["adapted"] - old.mean) / old.scale
    own = z @ old.weight.T + old.bias  # raw logits (clips, 3)
    c = float(old.metadata["regularisation_c"])
    platt = [
        trainer.matched_calibration(table, "frozen", dimension, own[:, i], c)
        for i, dimension in enumerate(trainer.DIMENSIONS)
    ]
    metadata = dict(old.metadata)
    metadata["calibration"] = (
        "Platt slopes and offsets matched to the frozen prefix's speaker-disjoint calibrated "
        f"logits (training.dimensions.matched_calibration) on {len(table.clips)} clips "
        "(research/arousal_study.py export); previously fitted on the adapted prefix's "
        "out-of-fold scores, which saturated"
    )
    metadata["previous_platt"] = old.platt.tolist()
    if study:
        metadata["arousal_study"] = json.loads(Path(study).read_text())
    arrays["platt"] = np.asarray(platt, np.float32)
    arrays["metadata"] = np.array(json.dumps(metadata))
    np.savez(head, **arrays)
    new = DimensionHead(arrays)
    for name, h in (("before", old), ("after", new)):
        p = 1 / (1 + np.exp(-(z @ h.weight.T + h.bias) * h.platt[:, 0] - h.platt[:, 1]))
        saturated = ((p < 0.01) | (p > 0.99)).mean(0).round(3).tolist()
        logger.info("%s: saturated share per dimension on the study clips %s", name, saturated)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=("extract", "evaluate", "export"))
    parser.add_argument("--export", default=None, help="export: write the head here")
    parser.add_argument("--data", default=os.environ.get("EMOTIVOICE_DATA_DIR", "../shared/data"))
    parser.add_argument("--cache", default="/tmp/emotivoice-arousal")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--report", default=None)
    parser.add_argument("--quick", action="store_true", help="evaluate: frozen states only")
    parser.add_argument("--c-states", type=float, default=0.001)
    parser.add_argument("--c-prosody", type=float, default=0.1)
    args = parser.parse_args()
    root, cache = Path(args.data), Path(args.cache)
    if args.command == "extract":
        extract(root, cache, args.shards, args.shard)
    elif args.command == "export":
        export(root, cache, args.export or "whisper-base-dimensions.npz", args.report)
    else:
        report = evaluate(root, cache, args.c_states, args.c_prosody, args.quick)
        if args.report:
            Path(args.report).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    raise SystemExit(main())
