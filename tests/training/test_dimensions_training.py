"""The dimensions trainer: targets from the corpora, balanced logistic models, the head file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emotivoice.emotion.dimensions import DIMENSIONS, DimensionHead
from emotivoice.training import dimensions as dims


def test_targets_from_the_shared_corpora(data_dir: Path) -> None:
    clips = dims.read_clips(data_dir)
    ravdess = [c for c in clips if c.corpus == "ravdess"]
    assert len(ravdess) == 20 * 60 - 20 * 8  # disgust (8 clips an actor) left out
    assert {c.emotion for c in ravdess} == {*dims.AROUSAL} and len(clips) > 5000
    strong = [c for c in ravdess if c.intensity == 1.0]
    assert strong and all(c.path.stem.split("-")[3] == "02" for c in strong)
    assert all(c.intensity == 0.0 for c in ravdess if c.emotion in ("neutral", "calm"))
    assert all(c.intensity is None for c in clips if c.corpus == "nemo")
    table = dims.FeatureTable({}, np.zeros((len(clips), 6)), tuple(clips))
    arousal, valence = table.targets("arousal"), table.targets("valence")
    angry = np.array([c.emotion == "anger" for c in clips])
    assert (arousal[angry] == 1).all() and (valence[angry] == 0).all()
    assert np.isnan(table.targets("intensity")[table.corpora == "nemo"]).all()


def test_agreement_figures() -> None:
    t = np.array([0.0, 0.0, 1.0, 1.0, 0.5])
    p = np.array([0.1, 0.4, 0.6, 0.9, 0.5])
    report = dims.dimension_report(p, t)
    assert report["accuracy"] == 1.0 and report["auc"] == 1.0 and report["n"] == 5
    assert 0.5 < report["ccc"] < 1
    assert dims.concordance(t, t) == 1.0
    assert dims.auc(np.array([0.2, 0.1]), np.array([False, True])) == 0.0


def test_a_head_file_from_the_trainer_runs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n, width = 240, 8
    emotions = np.array(["anger", "sadness", "happiness", "neutral"] * (n // 4))
    clips = tuple(
        dims.DimensionClip(
            Path(f"{i}.wav"),
            "ravdess" if i % 2 else "nemo",
            f"s{i % 6}",
            e,
            1.0 if e == "anger" else 0.0,
        )
        for i, e in enumerate(emotions)
    )
    table = dims.FeatureTable(
        {"adapted": np.zeros((n, 2 * width), np.float32)}, np.zeros((n, 6)), clips
    )
    x = rng.normal(size=(n, 2 * width)).astype(np.float32)
    x[:, 0] += 2 * table.targets("arousal")  # a feature that carries arousal
    table.features["adapted"] = x
    arrays = dims.fit_head(table, "adapted", 1.0, {"dimensions": list(DIMENSIONS)})
    np.savez(tmp_path / "dims.npz", **arrays)
    head = DimensionHead.load(tmp_path / "dims.npz")
    states = rng.normal(size=(30, width)).astype(np.float32)
    calm, aroused = states.copy(), states.copy()
    aroused[:, 0] += 4.0
    assert head.predict(aroused)["arousal"] > head.predict(calm)["arousal"]


def test_calibration_taken_over_from_the_honest_prefix_unsaturates(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n, width = 240, 8
    emotions = ["anger", "sadness", "happiness", "neutral"] * (n // 4)
    clips = tuple(
        dims.DimensionClip(
            Path(f"{i}.wav"), "ravdess" if i % 2 else "nemo", f"s{i % 6}", e, float(e == "anger")
        )
        for i, e in enumerate(emotions)
    )
    arousal = np.array([dims.AROUSAL[e] for e in emotions])
    adapted = rng.normal(size=(n, 2 * width))
    adapted[:, 0] += 12 * arousal  # as separable as the adapted prefix makes its speakers
    frozen = rng.normal(size=(n, 2 * width))
    frozen[:, 0] += arousal  # the honest prefix: overlapping classes
    table = dims.FeatureTable(
        {"adapted": adapted.astype(np.float32), "frozen": frozen.astype(np.float32)},
        np.zeros((n, 6)),
        clips,
    )
    meta = {"dimensions": list(DIMENSIONS)}
    for name, calibrate_on in (("own", None), ("matched", "frozen")):
        arrays = dims.fit_head(table, "adapted", 1.0, meta, calibrate_on=calibrate_on)
        np.savez(tmp_path / f"{name}.npz", **arrays)
    own, matched = (DimensionHead.load(tmp_path / f"{k}.npz") for k in ("own", "matched"))
    states = rng.normal(size=(30, width)).astype(np.float32)
    states[:, 0] += 12.0
    assert own.predict(states)["arousal"] > 0.99  # saturated
    assert 0.5 < matched.predict(states)["arousal"] < 0.99  # same side, honest confidence
    report = dims.calibration_report(np.array([0.0, 0.2, 0.9, 1.0]), np.array([0, 0, 1, 1.0]))
    assert report["saturated"] == 0.5 and 0 < report["brier"] < 0.02
