"""The recipe's optional stages: speed perturbation, hard-negative mining and distillation from
the Whisper teacher."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emotivoice.errors import InvalidConfigError


def test_speed_perturbation_resamples_a_share_of_clips_and_is_inert_at_zero() -> None:
    from emotivoice.wakeword.train import _speed_perturb

    clip = np.sin(np.linspace(0, 200, 16000)).astype(np.float32)
    rng = np.random.default_rng(0)
    assert _speed_perturb(clip, rng, 0.0) is clip
    assert rng.random() == np.random.default_rng(0).random()  # nothing was drawn
    lengths = {len(_speed_perturb(clip, rng, 1.0)) for _ in range(20)}
    assert len(lengths) > 10
    assert all(16000 / 1.15 - 1 <= n <= 16000 / 0.85 + 1 for n in lengths)


def test_hard_negatives_are_the_windows_the_model_scores_highest(
    jfk_samples: np.ndarray,
) -> None:
    import torch

    from emotivoice.wakeword.features import WINDOW_SAMPLES, log_mel
    from emotivoice.wakeword.model import build_model
    from emotivoice.wakeword.train import _hop_windows, _pad_front, mine_hard_negatives, predict

    torch.manual_seed(3)
    model = build_model()
    recordings = [jfk_samples[: 16000 * 5], jfk_samples[16000 * 5 :], jfk_samples[:8000]]
    mined = mine_hard_negatives(model, recordings, 4)
    assert len(mined) == 4 and all(len(w) == WINDOW_SAMPLES for w in mined)
    every = np.concatenate([predict(model, _hop_windows(_pad_front(r))[0]) for r in recordings])
    mined_scores = predict(model, np.stack([log_mel(w) for w in mined]))
    assert mined_scores[0] == pytest.approx(every.max(), abs=1e-5)
    assert np.all(np.diff(mined_scores) <= 1e-6)  # highest first
    assert mined_scores[-1] >= np.median(every)


def test_recipe_options_are_checked() -> None:
    from emotivoice.wakeword import TrainOptions
    from emotivoice.wakeword.teacher import TeacherOptions

    with pytest.raises(InvalidConfigError):
        TrainOptions(distill=1.5)
    with pytest.raises(InvalidConfigError):
        TrainOptions(hard_negatives=-1)
    with pytest.raises(InvalidConfigError):
        TeacherOptions(layers=0)


@pytest.mark.slow
def test_a_run_with_hard_negatives_and_a_teacher(tiny_dataset: Path, tmp_path: Path) -> None:
    from emotivoice.wakeword import TrainOptions, load_model, train_model
    from emotivoice.wakeword.teacher import TeacherOptions

    stages: list[str] = []
    options = TrainOptions(
        epochs=1,
        real_windows=0.5,
        threads=2,
        hard_negatives=40,
        hard_epochs=1,
        distill=0.5,
        teacher=TeacherOptions(layers=1, epochs=2),
    )
    result = train_model(
        tiny_dataset, tmp_path / "run", options, lambda stage, *_: stages.append(stage)
    )
    assert "teacher" in stages and "hard negatives" in stages
    epochs = [json.loads(line) for line in (result.run / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1, 2]  # one epoch, then one on the hard negatives
    config = json.loads((result.run / "config.json").read_text())
    assert config["options"]["distill"] == 0.5 and config["options"]["teacher"]["layers"] == 1
    assert load_model(result.onnx_int8).phrase == "hey jarvis"
