"""The emotivoice command: outputs per input, bad files reported and skipped, usage errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from emotivoice.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main


def test_analyze_writes_every_format(
    jfk_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    formats = "json,csv,srt,vtt,pdf"
    code = main(["analyze", str(jfk_path), "-o", str(tmp_path), "--format", formats])
    assert code == EXIT_OK
    data = json.loads((tmp_path / "jfk.json").read_text())
    assert "fellow Americans" in data["text"]
    rows = list(csv.DictReader((tmp_path / "jfk.csv").open()))
    assert rows and rows[0]["file"] == "jfk.flac" and float(rows[0]["end"]) > 10
    assert "mfcc_means_13" in rows[0]
    srt = (tmp_path / "jfk.srt").read_text()
    assert srt.startswith("1\n00:00:00,") and "fellow Americans" in srt
    assert (tmp_path / "jfk.vtt").read_text().startswith("WEBVTT\n\n00:00:00.")
    assert (tmp_path / "jfk.pdf").read_bytes().startswith(b"%PDF")
    table = capsys.readouterr().out
    assert "jfk.flac" in table and "ok" in table
    # the saved JSON exports again without analysing again; a broken file does not stop the rest
    (tmp_path / "broken.json").write_text('{"segments": "no"}')
    again = tmp_path / "again"
    inputs = [str(tmp_path / "broken.json"), str(tmp_path / "jfk.json")]
    assert main(["export", *inputs, "-o", str(again), "--format", "srt,csv"]) == EXIT_FAILED
    assert (again / "jfk.srt").read_text() == srt
    assert (again / "jfk.csv").read_text() == (tmp_path / "jfk.csv").read_text()
    printed = capsys.readouterr()
    assert str(again / "jfk.srt") in printed.out and "broken.json: Not an EmotiVoice" in printed.err
    assert "[RESULT_UNREADABLE]" in printed.err and "Traceback" not in printed.err


def test_directory_with_bad_files_completes_the_rest(
    jfk_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.flac").write_bytes(jfk_path.read_bytes())
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.mp3").write_text("not audio at all\n" * 40)
    (folder / "cut.flac").write_bytes(jfk_path.read_bytes()[:200_000])
    (folder / "readme.txt").write_text("ignored: not an audio extension")
    out = tmp_path / "out"
    code = main(["analyze", str(folder), "-o", str(out), "--fast", "--no-features", "-q"])
    assert code == EXIT_FAILED
    assert sorted(p.name for p in out.iterdir()) == ["good.json"]
    err = capsys.readouterr().err
    assert "empty.wav: " in err and "[EMPTY_AUDIO]" in err
    assert "notes.mp3: " in err and "[INVALID_AUDIO]" in err
    assert "cut.flac: " in err and "truncated" in err
    assert "3 of 4 file(s) failed" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "docx"], "--format: unknown ['docx']"),
        (["--fast", "--beam-size", "3"], "mutually exclusive"),
    ],
)
def test_usage_errors(
    jfk_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["analyze", str(jfk_path), "-o", str(tmp_path), *args])
    assert exc.value.code == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_invalid_option_value_is_a_usage_error(
    jfk_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["analyze", str(jfk_path), "-o", str(tmp_path), "--language", "xx"])
    assert code == EXIT_USAGE
    assert "Unknown language 'xx'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--speakers", "0"], "speakers must be at least 1 (got 0)"),
        (["--min-speakers", "3", "--max-speakers", "2"], "must be at least 1 and at most"),
    ],
)
def test_bad_speaker_counts_are_usage_errors(
    jfk_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    code = main(["analyze", str(jfk_path), "-o", str(tmp_path), *args])
    assert code == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing analysed, nothing written


@pytest.mark.slow
def test_split_channels_of_a_mono_file_fails_that_file_only(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--channels split``: the stereo call is analysed per channel; a mono clip fails with
    a message naming it, and the batch completes."""
    import wave

    from emotivoice.audio import SAMPLE_RATE, load_audio

    mono = tmp_path / "mono.wav"
    samples = load_audio(data_dir / "speech" / "jfk.flac").samples[: 3 * SAMPLE_RATE]
    with wave.open(str(mono), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((samples * 32767).astype("<i2").tobytes())
    stereo = data_dir / "speech" / "stereo_diarization.wav"
    out = tmp_path / "out"
    code = main(
        [
            "analyze",
            str(stereo),
            str(mono),
            "-o",
            str(out),
            "--format",
            "srt,json",
            "--channels",
            "split",
            "--no-features",
        ]
    )
    assert code == EXIT_FAILED
    captured = capsys.readouterr()
    assert "mono.wav: channels='split' needs a recording with two or more channels" in captured.err
    assert "[INVALID_OPTIONS]" in captured.err
    srt = (out / "stereo_diarization.srt").read_text()
    assert "[SPEAKER_1]" in srt and "[SPEAKER_2]" in srt
    assert not (out / "mono.json").exists()


def test_models_languages_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == EXIT_OK
    assert "base" in capsys.readouterr().out
    assert main(["languages"]) == EXIT_OK
    assert " de " in capsys.readouterr().out
    assert main(["schema"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["title"] == "EmotiVoice analysis"


def test_python_dash_m_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "emotivoice", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("emotivoice ")


@pytest.mark.parametrize(
    ("argv", "command", "expected"),
    [
        (["bench"], "cmd_bench", {"model": "base", "threads": 2}),
        (["bench", "--model", "tiny", "rtf"], "cmd_bench", {"model": "tiny"}),
        (["bench", "rtf", "--threads", "4"], "cmd_bench", {"threads": 4}),
        (["bench", "stream", "--max-files", "2"], "cmd_bench_stream", {"max_files": 2}),
        # the first parser took options anywhere: those command lines still work
        (["bench", "--max-files", "1", "stream"], "cmd_bench_stream", {"max_files": 1}),
        (["bench", "--data", "X", "stream", "--modes", "fit"], "cmd_bench_stream", {"data": "X"}),
    ],
)
def test_bench_modes_are_subcommands(
    argv: list[str], command: str, expected: dict[str, object]
) -> None:
    from emotivoice.cli import build_parser

    args = build_parser().parse_args(argv)
    assert args.func.__name__ == command
    assert {k: getattr(args, k) for k in expected} == expected
