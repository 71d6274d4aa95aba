"""The arousal/valence/intensity head: its file, its runtime, and what it says on real speech."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emotivoice.emotion.dimensions import DIMENSIONS, DimensionHead, pool_states
from emotivoice.errors import ModelIntegrityError, ModelNotFoundError


def _states(path: Path) -> np.ndarray:
    from emotivoice.audio import load_audio
    from emotivoice.emotion.head import EmotionHead, own_log_mel
    from emotivoice.training.states import crop_to_speech

    samples = crop_to_speech(load_audio(path).samples)
    return EmotionHead.load().prefix_states(own_log_mel(samples))[0]


def test_pooling_is_the_heads_mean_and_std() -> None:
    states = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    pooled = pool_states(states)
    np.testing.assert_allclose(pooled[:4], states.mean(0), atol=1e-6)
    np.testing.assert_allclose(pooled[4:], states.std(0), atol=1e-5)
    with pytest.raises(ValueError):
        pool_states(np.zeros((0, 4)))


def test_packaged_head_loads_once_and_is_small() -> None:
    head = DimensionHead.load()
    assert head is DimensionHead.load()  # cached
    assert head.features == 512 and head.weight.shape == (3, 1024)
    assert tuple(head.metadata["dimensions"]) == DIMENSIONS
    # its stored held-out figures, on the adapted and on the frozen (unseen) prefix
    for key in ("evaluations", "frozen_prefix_evaluations"):
        assert {"cross_ravdess_to_nemo", "cross_nemo_to_ravdess"} <= set(head.metadata[key])
    # calibration taken over from the frozen prefix (the adapted one's saturated); the study
    assert "frozen prefix" in head.metadata["calibration"]
    assert head.metadata["arousal_study"]["frozen"]["nemo_to_ravdess"]["auc"] > 0.8


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        DimensionHead.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", metadata=np.array(json.dumps({"dimensions": list(DIMENSIONS)})))
    with pytest.raises(ModelIntegrityError):
        DimensionHead.load(tmp_path / "bad.npz")
    with pytest.raises(ValueError):
        DimensionHead.load().predict(np.zeros((10, 384), np.float32))  # Whisper tiny's width


@pytest.mark.slow
def test_jfk_reads_as_aroused_and_calm_reading_does_not(data_dir: Path, jfk_path: Path) -> None:
    head = DimensionHead.load()
    jfk = head.predict(_states(jfk_path))
    assert set(jfk) == set(DIMENSIONS) and all(0 <= v <= 1 for v in jfk.values())
    calm = [
        head.predict(_states(p))["arousal"] for p in sorted((data_dir / "librivox").glob("*.flac"))
    ]
    assert jfk["arousal"] > 0.5
    assert np.mean(calm) < 0.5 and jfk["arousal"] > max(calm)


@pytest.mark.slow
def test_acted_anger_is_more_aroused_and_less_pleasant_than_calm(data_dir: Path) -> None:
    head = DimensionHead.load()
    actor = data_dir / "ravdess" / "Actor_01"
    angry = head.predict(_states(actor / "03-01-05-02-01-01-01.flac"))
    happy = head.predict(_states(actor / "03-01-03-02-01-01-01.flac"))
    calm = head.predict(_states(actor / "03-01-02-01-01-01-01.flac"))
    assert angry["arousal"] > calm["arousal"] and angry["intensity"] > calm["intensity"]
    assert happy["valence"] > angry["valence"]


@pytest.mark.slow
def test_calm_reading_is_less_aroused_than_acted_anger_and_neither_saturates(
    data_dir: Path,
) -> None:
    head = DimensionHead.load()
    calm = head.predict(_states(data_dir / "librispeech" / "2830-3980-0029.flac"))
    angry = head.predict(_states(data_dir / "ravdess" / "Actor_01" / "03-01-05-02-01-01-01.flac"))
    assert calm["arousal"] < 0.5 < angry["arousal"]
    # calibrated on held-out speakers of the frozen prefix: no hard 0 or 1 any more (the
    # previous calibration gave 0.06 and 1.000 here)
    for value in (*calm.values(), *angry.values()):
        assert 0.01 < value < 0.99
