"""A tiny wake-word data set and training run, shared by the studio's tests (real TTS voices,
real speech from the shared data; a few hundred windows, two epochs)."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY = {
    "positives": 60,
    "confusables": 50,
    "sentences": 10,
    "val_positives": 16,
    "test_positives": 16,
    "engines": ("espeak-ng", "flite"),
}


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    from emotivoice.wakeword import GenerateOptions, generate_dataset

    folder = tmp_path_factory.mktemp("wakeword") / "data"
    generate_dataset("hey jarvis", folder, data_dir, GenerateOptions(**TINY))  # type: ignore[arg-type]
    return folder


@pytest.fixture(scope="session")
def tiny_run(tiny_dataset: Path) -> Path:
    from emotivoice.wakeword import TrainOptions, train_model
    from emotivoice.wakeword.augment import AugmentOptions

    run = tiny_dataset.parent / "run"
    options = TrainOptions(  # hard negatives: tests/wakeword/test_recipe_options.py
        epochs=2,
        real_windows=0.5,
        hard_negatives=0,
        threads=2,
        augment=AugmentOptions(codec=0.05),
    )
    train_model(tiny_dataset, run, options)
    return run
