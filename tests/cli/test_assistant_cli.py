"""``emotivoice assistant`` on real speech: a file and standard input in, replies and traces out."""

from __future__ import annotations

import io
import json
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from emotivoice.audio import load_audio
from emotivoice.cli import main

RAVDESS_ANGRY = "ravdess/Actor_01/03-01-05-02-01-01-01.flac"


@pytest.mark.slow
def test_a_file_in_replies_out(data_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("cyllama")
    out = tmp_path / "replies"
    argv = ["assistant", "--input", str(data_dir / RAVDESS_ANGRY), "--output", str(out)]
    assert main([*argv, "--max-tokens", "16", "--voice", "espeak-ng"]) == 0
    printed = capsys.readouterr().out
    assert "you (anger" in printed and "assistant [calm]" in printed and "voice-to-voice" in printed
    record = json.loads((out / "turn-00.json").read_text())
    assert record["style"] == "calm" and record["voice_fields"]["emotion"] == "anger"
    assert record["trace"]["voice_to_voice_s"] > 0
    lines = (out / "turns.jsonl").read_text().splitlines()
    assert [json.loads(line)["index"] for line in lines] == [0]
    with wave.open(str(out / "turn-00.wav")) as reply:
        assert reply.getframerate() == 16000 and reply.getnframes() > 8000


@pytest.mark.slow
def test_standard_input(data_dir: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("cyllama")
    samples = load_audio(data_dir / RAVDESS_ANGRY).samples
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(pcm)))
    assert main(["assistant", "--input", "-", "--max-tokens", "8", "--voice", "espeak-ng"]) == 0
    assert "door" in capsys.readouterr().out.lower()


def test_no_microphone_is_a_clear_error(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    assert main(["assistant"]) == 1
    err = capsys.readouterr().err
    assert "microphone" in err and "MICROPHONE_UNAVAILABLE" in err


def test_usage_errors(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as info:
        main(["assistant", "--input", "x.wav", "--barge-in"])
    assert info.value.code == 2 and "--realtime" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["assistant", "--model", "m.gguf", "--llm-url", "http://127.0.0.1:1/v1"])


def test_browser_usage_errors(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as info:
        main(["assistant", "--input", "x.wav", "--allow-host", "example.org"])
    assert info.value.code == 2 and "need --browser" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["assistant", "--input", "x.wav", "--browser", "--allow-host", "http://a.org/"])
    assert info.value.code == 2 and "host names such as" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["assistant", "--input", "x.wav", "--browser", "--browser-actions", "0"])
    assert info.value.code == 2 and "max_actions" in capsys.readouterr().err


@pytest.mark.slow
def test_the_browser_flags_reach_the_assistant(data_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """With --browser and no host allowed, the warning says so and no browser action can
    succeed (the model is not asked for a page here; a call it writes anyway is refused)."""
    pytest.importorskip("cyllama")
    out = tmp_path / "replies"
    argv = ["assistant", "--input", str(data_dir / RAVDESS_ANGRY), "--output", str(out)]
    assert main([*argv, "--max-tokens", "16", "--voice", "espeak-ng", "--browser"]) == 0
    captured = capsys.readouterr()
    assert "no host is allowed yet" in captured.err and "assistant [calm]" in captured.out
    record = json.loads((out / "turn-00.json").read_text())
    assert not any(action["ok"] for action in record["actions"])
    assert record["error"] is None and record["reply"]
