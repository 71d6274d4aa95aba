"""End to end on a tiny data set: generate, train, export (float and int8), evaluate as a
stream; the ONNX files score like the PyTorch model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emotivoice.errors import InvalidConfigError, NoTrainingDataError

pytestmark = pytest.mark.slow


def test_generate_writes_a_voice_disjoint_data_set_and_its_card(tiny_dataset: Path) -> None:
    from emotivoice.wakeword import load_dataset

    names = {p.name for p in tiny_dataset.iterdir()}
    assert {
        "clips.npz",
        "clips.jsonl",
        "real_speech.json",
        "data_card.json",
        "data_card.md",
    } <= names
    card = json.loads((tiny_dataset / "data_card.json").read_text())
    assert card["clips"]["train"]["positive"] == 60 and card["clips"]["test"]["positive"] == 16
    train, test = set(card["speakers"]["train"]), set(card["speakers"]["test"])
    assert train and test and not train & test
    assert card["real_speech_hours"]["test"] > 1.0  # hours of negatives to count false accepts
    dataset = load_dataset(tiny_dataset)
    test_speakers = {c.speaker for c in dataset.clips if c.split == "test"}
    assert not test_speakers & {c.speaker for c in dataset.clips if c.split == "train"}
    real = {(r.corpus, r.speaker) for r in dataset.real if r.split == "train"}
    assert not real & {(r.corpus, r.speaker) for r in dataset.real if r.split == "test"}


def test_training_writes_a_complete_run_folder(tiny_run: Path) -> None:
    names = {p.name for p in tiny_run.iterdir()}
    expected = {"config.json", "data_card.json", "metrics.jsonl", "model.pt", "model.onnx"}
    assert expected | {"model.int8.onnx", "calibration.npy", "threshold.json"} <= names
    epochs = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert all(np.isfinite(e["train_loss"]) and "val_frr" in e for e in epochs)
    assert not [p for p in tiny_run.parent.iterdir() if ".partial-" in p.name]


def test_onnx_scores_like_the_torch_model(tiny_run: Path) -> None:
    import torch

    from emotivoice.wakeword import load_model
    from emotivoice.wakeword.model import ModelShape, build_model
    from emotivoice.wakeword.train import predict

    model = build_model(ModelShape())
    model.load_state_dict(torch.load(tiny_run / "model.pt"))
    windows = np.random.default_rng(0).normal(0, 1, (32, 150, 40)).astype(np.float32)
    reference = predict(model, windows)
    exported = load_model(tiny_run / "model.onnx").score_windows(windows)
    np.testing.assert_allclose(exported, reference, atol=1e-5)
    quantised = load_model(tiny_run / "model.int8.onnx").score_windows(windows)
    assert np.max(np.abs(quantised - reference)) < 0.1


def test_export_from_a_run_folder(tiny_run: Path, tmp_path: Path) -> None:
    from emotivoice.wakeword import export_run, load_model

    for int8 in (False, True):
        out = export_run(tiny_run, tmp_path / f"m{int(int8)}.onnx", int8=int8)
        model = load_model(out)
        assert model.phrase == "hey jarvis"
        assert 0 < model.threshold < 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m0.onnx", "m1.onnx"]


def test_streaming_evaluation_reports_honest_figures(
    tiny_run: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    from emotivoice.wakeword import EvaluationOptions, evaluate_model, write_report

    report = evaluate_model(
        tiny_run / "model.onnx", tiny_dataset, EvaluationOptions(max_negative_hours=0.03)
    )
    assert report.positives == 16 and 0.02 < report.negative_hours < 0.05
    assert set(report.at_target) == {"0.5", "1.0"}
    for point in report.at_target.values():
        assert point.fa_per_hour <= float(
            next(k for k, v in report.at_target.items() if v is point)
        )
    assert 0.0 <= report.eer <= 1.0
    frr = [p.false_reject_rate for p in report.det]
    # not monotonic in general: with a refractory period, an early false detection at a low
    # threshold can hide a positive; but the strictest threshold misses the most
    assert frr[-1] >= frr[0] and frr[-1] == max(frr)
    fa = [p.false_accepts for p in report.det]
    assert fa == sorted(fa, reverse=True)
    assert "fewer than" in report.notes[0]
    json.dumps(report.to_dict(), allow_nan=False)  # strict JSON, also without detections
    written = {p.name for p in write_report(report, tmp_path)}
    assert written == {"evaluation.json", "det.json", "det.png"}
    assert (tmp_path / "det.png").read_bytes().startswith(b"\x89PNG")


def test_a_data_set_without_positives_is_refused_and_no_run_is_left(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    from dataclasses import replace

    from emotivoice.wakeword import TrainOptions, load_dataset, train_model

    dataset = load_dataset(tiny_dataset)
    keep = [i for i, c in enumerate(dataset.clips) if c.kind != "positive"]
    empty = replace(
        dataset,
        clips=tuple(dataset.clips[i] for i in keep),
        audio=tuple(dataset.audio[i] for i in keep),
    )
    with pytest.raises(NoTrainingDataError, match="no train positives"):
        train_model(empty, tmp_path / "run", TrainOptions(epochs=1))
    assert list(tmp_path.iterdir()) == []


def test_compare_scores_every_model_on_the_same_streams(tiny_run: Path, tiny_dataset: Path) -> None:
    from emotivoice.wakeword import EvaluationOptions, compare_models, evaluate_model
    from emotivoice.wakeword.peers import format_comparison

    options = EvaluationOptions(max_negative_hours=0.03)
    trained = str(tiny_run / "model.onnx")
    reports = compare_models(["hey_jarvis", trained], tiny_dataset, options)
    assert [r.model.endswith(".onnx") for r in reports] == [True, True]
    assert len({(r.positives, r.confusables, r.negative_hours) for r in reports}) == 1
    # the same figures as evaluating the model alone: the same streams, the same code
    alone = evaluate_model(trained, tiny_dataset, options)
    assert reports[1].at_target == alone.at_target and reports[1].eer == alone.eer
    assert 0 < reports[0].cpu_share < 0.2  # a share of one core per stream
    table = format_comparison(reports)
    assert "FR @0.5 FA/h" in table and table.count("\n") == 3  # heading, columns, 2 rows
    with pytest.raises(InvalidConfigError, match="Unknown peer model 'openwakeword:nope'"):
        compare_models(["openwakeword:nope"], tiny_dataset, options)
