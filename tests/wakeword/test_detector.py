"""The streaming detector: the shipped model, chunk-size invariance, refractory period, and the
errors for files that are not our models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emotivoice.errors import ModelNotFoundError, WakeWordModelError
from emotivoice.wakeword import available_models, detections, load_model, score_samples
from emotivoice.wakeword.features import HOP_SAMPLES, WINDOW_SAMPLES, log_mel


def test_the_default_model_ships() -> None:
    assert "hey_jarvis" in available_models()
    model = load_model("hey_jarvis")
    assert model.phrase == "hey jarvis" and 0 < model.threshold < 1
    assert model is load_model("hey_jarvis")  # loaded once per process
    assert model.path.stat().st_size < 1_000_000


def test_the_same_audio_in_any_chunk_size_gives_the_same_scores(jfk_samples: np.ndarray) -> None:
    model = load_model("hey_jarvis")
    _, whole = score_samples(model, jfk_samples)
    rng = np.random.default_rng(0)
    for sizes in ([1], [HOP_SAMPLES], [160, 7, 5000], list(rng.integers(1, 9000, 50))):
        if sizes == [1]:
            samples = jfk_samples[:4000]  # one sample at a time is slow: a short piece
            reference = whole[: len(score_samples(model, samples)[1])]
        else:
            samples, reference = jfk_samples, whole
        detector = model.detector()
        got, position, i = [], 0, 0
        while position < len(samples):
            size = int(sizes[i % len(sizes)])
            got.append(detector.scores(samples[position : position + size])[1])
            position, i = position + size, i + 1
        np.testing.assert_allclose(np.concatenate(got), reference, atol=1e-5)


def test_detections_do_not_depend_on_chunking(jfk_samples: np.ndarray) -> None:
    model = load_model("hey_jarvis")
    times, scores = score_samples(model, jfk_samples)
    # low enough to fire on ordinary speech (the model gives most of it a score of 0)
    threshold = float(np.quantile(scores[scores > 0], 0.2))
    expected = detections(times, scores, threshold, 2.0, model.phrase)
    assert expected
    for size in (HOP_SAMPLES, 333, 16000):
        detector = model.detector(threshold, refractory_s=2.0)
        found = []
        for start in range(0, len(jfk_samples), size):
            found += detector.feed(jfk_samples[start : start + size])
        assert [(d.time_s, round(d.score, 5)) for d in found] == [
            (d.time_s, round(d.score, 5)) for d in expected
        ]
    gaps = np.diff([d.time_s for d in expected])
    assert (gaps >= 2.0).all()


def test_streams_keep_their_own_state(jfk_samples: np.ndarray) -> None:
    model = load_model("hey_jarvis")
    a, b = model.detector(), model.detector()
    a.feed(jfk_samples[:32000])
    assert b.time_s == 0.0 and a.time_s == 2.0
    _, alone = score_samples(model, jfk_samples[:8000])
    np.testing.assert_allclose(b.scores(jfk_samples[:8000])[1], alone, atol=1e-5)


def test_the_front_end_frames_at_absolute_positions() -> None:
    x = np.random.default_rng(1).normal(0, 0.1, WINDOW_SAMPLES).astype(np.float32)
    whole = log_mel(x)
    assert whole.shape == (150, 40)
    np.testing.assert_allclose(log_mel(x[160:]), whole[1:], atol=1e-5)


def test_silence_gives_low_scores() -> None:
    _, scores = score_samples(load_model("hey_jarvis"), np.zeros(48000, np.float32))
    assert scores.max() < 0.5


def test_a_corrupt_onnx_file_is_named(tmp_path: Path) -> None:
    good = load_model("hey_jarvis").path.read_bytes()
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(good[: len(good) // 3])
    with pytest.raises(WakeWordModelError, match="corrupt or truncated") as raised:
        load_model(broken)
    assert raised.value.code == "INVALID_WAKEWORD_MODEL"
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not a model" * 100)
    with pytest.raises(WakeWordModelError):
        load_model(garbage)


def test_an_onnx_model_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("mel", TensorProto.FLOAT, ["batch", 150, 40])
    y = helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 150, 40])
    graph = helper.make_graph([helper.make_node("Relu", ["mel"], ["score"])], "other", [x], [y])
    foreign = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), foreign)
    with pytest.raises(WakeWordModelError, match="not an EmotiVoice wake-word model"):
        load_model(foreign)
    proto = onnx.load(str(foreign))
    entry = proto.metadata_props.add()
    entry.key, entry.value = (
        "emotivoice.wakeword",
        json.dumps({"format": 99, "phrase": "x", "threshold": 0.5}),
    )
    newer = tmp_path / "newer.onnx"
    onnx.save(proto, newer)
    with pytest.raises(WakeWordModelError, match="another front end or a newer"):
        load_model(newer)


def test_a_missing_model_lists_the_shipped_ones(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="hey_jarvis"):
        load_model(tmp_path / "nothing.onnx")
