"""The hyperparameter search: a tiny real study (real TTS data, real training, streamed
validation), resumed from its SQLite file; bad input refused before anything is written."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from emotivoice.errors import InvalidConfigError
from emotivoice.wakeword.augment import AugmentOptions
from emotivoice.wakeword.data import WakeDataset
from emotivoice.wakeword.search import Knob, SearchOptions, search
from emotivoice.wakeword.train import TrainOptions

TINY_SEARCH = SearchOptions(
    base=TrainOptions(
        real_windows=0.5, hard_negatives=0, threads=2, augment=AugmentOptions(codec=0.0)
    ),
    epochs=(1, 1),
    space=(
        Knob("learning_rate", 1e-3, 1e-2, log=True),
        Knob("partial_share", 0.1, 0.6),
        Knob("shape.channels", kind="choice", choices=(32, 48)),
        Knob("shape.depth", 4, 6, "int"),
        Knob("not_a_recipe_field", 0, 1),  # skipped, as a field the recipe lacks yet would be
    ),
    seed=3,
)


@pytest.fixture(scope="module")
def small_val(tiny_dataset: Path) -> WakeDataset:
    """The tiny data set with an eighth of its validation speech (about 3 minutes): each trial
    streams it twice (the training run's threshold, then the search's objective)."""
    from emotivoice.wakeword import load_dataset

    dataset = load_dataset(tiny_dataset, ("train", "val"))
    val = [r for r in dataset.real if r.split == "val"]
    return replace(
        dataset, real=tuple(r for r in dataset.real if r.split != "val") + tuple(val[::8])
    )


def _trials_in(db: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT number, state FROM trials ORDER BY number").fetchall()


@pytest.mark.slow
def test_a_search_keeps_its_study_and_best_model_and_resumes(
    small_val: WakeDataset, tmp_path: Path
) -> None:
    from emotivoice.wakeword import load_model

    out = tmp_path / "search"
    seen: list[int] = []
    first = search(small_val, out, 1, TINY_SEARCH, lambda record: seen.append(record.number))
    assert seen == [0] and first.new_trials == 1
    assert _trials_in(out / "study.db") == [(0, "COMPLETE")]
    assert 0.02 < first.validation_hours < 0.1  # the validation speech kept, streamed
    for record in first.trials:
        assert record.state == "complete" and record.value is not None
        assert 0.0 <= record.false_reject_rate <= 1.0 and 0.0 <= record.eer <= 1.0  # type: ignore[operator]
        assert record.value == pytest.approx(record.false_reject_rate + record.eer / 1000)  # type: ignore[operator]
        assert set(record.params) == {
            "learning_rate",
            "partial_share",
            "shape.channels",
            "shape.depth",
            "epochs",
        }
        config = json.loads((out / f"trials/{record.number:03d}/config.json").read_text())
        assert config["options"]["learning_rate"] == record.params["learning_rate"]
        assert len(config["options"]["shape"]["dilations"]) == record.params["shape.depth"]
    best = first.best
    assert best is not None and best.number == 0
    assert json.loads((out / "best" / "trial.json").read_text())["number"] == best.number
    assert load_model(out / "best" / "model.onnx").phrase == "hey jarvis"
    summary = json.loads((out / "search.json").read_text())
    assert [t["number"] for t in summary["trials"]] == [0]
    assert summary["best"]["number"] == 0
    assert "| trial | state |" in (out / "search.md").read_text()

    # a process killed mid-trial leaves trial 1 running in the study
    import optuna

    optuna.load_study(study_name="wakeword", storage=f"sqlite:///{out / 'study.db'}").ask()
    assert _trials_in(out / "study.db")[1] == (1, "RUNNING")

    # again: the same study goes on (trial 2), the first one kept as it was, 1 marked failed
    again = search(small_val, out, 1, TINY_SEARCH)
    assert again.new_trials == 1
    assert [(r.number, r.state) for r in again.trials] == [
        (0, "complete"),
        (1, "fail"),
        (2, "complete"),
    ]
    assert again.trials[0] == first.trials[0]
    assert again.trials[2].params != first.trials[0].params  # the sampler went on, not anew
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["000", "002"]
    assert again.best is not None and again.best.number in (0, 2)
    assert again.best.value == min(r.value for r in again.trials if r.value is not None)
    assert json.loads((out / "best" / "trial.json").read_text())["number"] == again.best.number
    assert len(json.loads((out / "search.json").read_text())["trials"]) == 3
    assert not [p for p in out.rglob("*partial*")]

    # another data set cannot continue this study
    other = replace(small_val, card=replace(small_val.card, phrase="okay emoti"))
    with pytest.raises(InvalidConfigError, match="another data set"):
        search(other, out, 1, TINY_SEARCH)
    assert len(_trials_in(out / "study.db")) == 3


def test_bad_input_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match="trials must be at least 1"):
        search(tmp_path / "data", tmp_path / "new", 0)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    with pytest.raises(InvalidConfigError, match="not a wake-word search"):
        search(tmp_path / "data", taken, 1)
    assert [p.name for p in taken.iterdir()] == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidConfigError, match="is a file"):
        search(tmp_path / "data", tmp_path / "file", 1)
    with pytest.raises(InvalidConfigError, match="epochs must be a range"):
        SearchOptions(epochs=(5, 2))
    with pytest.raises(InvalidConfigError, match="timeout must be positive"):
        SearchOptions(timeout_s=0)
    with pytest.raises(InvalidConfigError, match="needs choices"):
        SearchOptions(space=(Knob("shape.kernel", kind="choice"),))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "taken"]


def test_the_command_names_the_error_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from emotivoice.cli import EXIT_FAILED, main

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "model.onnx").write_bytes(b"someone else's")
    code = main(["wakeword", "search", str(tmp_path / "data"), "-o", str(taken), "--trials", "2"])
    assert code == EXIT_FAILED
    err = capsys.readouterr().err
    assert "not a wake-word search" in err and "[INVALID_OPTIONS]" in err
    assert "Traceback" not in err
    assert [p.name for p in taken.iterdir()] == ["model.onnx"]
    code = main(["wakeword", "search", str(tmp_path / "data"), "-o", str(tmp_path / "n")])
    assert code == EXIT_FAILED  # the default 20 trials, but no data set there
    err = capsys.readouterr().err
    assert "is not a wake-word data set" in err and "[NO_TRAINING_DATA]" in err
    assert not (tmp_path / "n").exists()
