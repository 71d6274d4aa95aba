"""``emotivoice wakeword``: listen on a file and on standard input, the shipped models, and the
errors a user sees (each named by its code, nothing left in the output folder)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emotivoice.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main


def test_models_lists_the_shipped_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wakeword", "models"]) == EXIT_OK
    assert "hey_jarvis" in capsys.readouterr().out


def test_listen_on_a_file_prints_wake_events(
    jfk_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a threshold low enough to fire on ordinary speech, so that events are printed
    code = main(["wakeword", "listen", "--file", str(jfk_path), "--threshold", "0.01", "--json"])
    assert code == EXIT_OK
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events and all(e["type"] == "wake" and e["phrase"] == "hey jarvis" for e in events)
    times = [e["time_s"] for e in events]
    assert times == sorted(times) and np.all(np.diff(times) >= 2.0)


def test_listen_on_stdin_reads_raw_pcm(jfk_samples: np.ndarray) -> None:
    pcm = (np.clip(jfk_samples, -1, 1) * 32767).astype("<i2").tobytes()
    command = [sys.executable, "-m", "emotivoice", "wakeword", "listen", "--stdin"]
    done = subprocess.run(
        [*command, "--threshold", "0.01", "--json"], input=pcm, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stdout.decode().splitlines()
    assert lines and json.loads(lines[0])["type"] == "wake"


def test_listen_needs_exactly_one_source(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["wakeword", "listen"])
    assert raised.value.code == EXIT_USAGE
    assert "exactly one of --file" in capsys.readouterr().err


def test_a_corrupt_model_is_a_named_error(
    tmp_path: Path, jfk_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not an onnx file" * 64)
    code = main(["wakeword", "listen", "--model", str(model), "--file", str(jfk_path)])
    assert code == EXIT_FAILED
    assert "[INVALID_WAKEWORD_MODEL]" in capsys.readouterr().err


def test_a_phrase_without_letters_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "data"
    assert (
        main(["wakeword", "generate", "1 2 3", "-o", str(out), "--no-real-speech"]) == EXIT_FAILED
    )
    assert "[INVALID_PHRASE]" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_training_on_a_folder_without_a_data_set_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    code = main(["wakeword", "train", str(tmp_path), "-o", str(tmp_path / "run")])
    assert code == EXIT_FAILED
    assert "[NO_TRAINING_DATA]" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
