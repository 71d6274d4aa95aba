"""The emotivoice command: outputs per input, bad files reported and skipped, usage errors."""

from __future__ import annotations

import argparse
import csv
import json
import re
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
    assert "3 of 4 files failed" in err
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


def test_a_missing_file_is_one_clean_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["analyze", "nosuchfile.wav"]) == EXIT_FAILED
    captured = capsys.readouterr()
    assert captured.err == "emotivoice: nosuchfile.wav: no such file. [FILE_NOT_FOUND]\n"
    assert captured.out == ""  # no table for the one file that failed
    assert not list(tmp_path.iterdir())


def _options_help(command: str) -> dict[str, str]:
    """``--option``: its help text, for each option of ``emotivoice COMMAND``."""
    from emotivoice.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {
        a.option_strings[-1]: a.help or ""
        for a in sub.choices[command]._actions
        if a.option_strings and a.option_strings[-1] != "--help"
    }


def test_help_describes_every_option_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    from emotivoice.export import SubtitleOptions

    serve = _options_help("serve")
    assert set(serve) == {"--host", "--port", "--workers", "--home"}
    assert all("default" in text for text in serve.values()), serve
    assert "127.0.0.1" in serve["--host"] and "8000" in serve["--port"]
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "(default: 8000)" in capsys.readouterr().out
    analyze = _options_help("analyze")
    assert all(text for text in analyze.values()), analyze
    assert "(default: json)" in analyze["--format"]
    assert "(default: pdf)" in _options_help("export")["--format"]
    # the subtitle options' defaults as the help gives them are SubtitleOptions' own
    defaults = SubtitleOptions()
    assert f"(default {defaults.max_line_width})" in analyze["--max-line-width"]
    assert f"(default {defaults.max_line_count})" in analyze["--max-line-count"]
    assert f"(default {defaults.max_cue_duration:g})" in analyze["--max-cue-duration"]


def test_bad_subtitle_option_is_a_usage_error(
    jfk_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["analyze", str(jfk_path), "-o", str(tmp_path), "--max-line-width", "0"])
    assert exc.value.code == EXIT_USAGE
    assert "--max-line-width must be at least 1" in capsys.readouterr().err


def _run(
    args: list[str], cwd: Path, tty: bool, log_every: float | None = None
) -> tuple[int, str, str]:
    """Run ``emotivoice ARGS`` in a child process, its stderr a terminal (a pseudo-terminal)
    or a file; returns the exit code, stdout and stderr. ``log_every`` sets the child's
    :data:`~emotivoice.cli.progress.LOG_EVERY_S` and shows feedback from the start, so that
    what the plain lines say does not depend on how fast the machine is."""
    import fcntl
    import os
    import pty
    import struct
    import termios
    import threading

    command = [sys.executable, "-m", "emotivoice", *args]
    if log_every is not None:
        command[1:3] = [
            "-c",
            "import sys; import emotivoice.cli.progress as p; from emotivoice.cli import main; "
            f"p.SHOW_AFTER_S = 0.0; p.LOG_EVERY_S = {log_every}; sys.argv[0] = 'emotivoice'; "
            "sys.exit(main())",
        ]
    if not tty:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
        return result.returncode, result.stdout, result.stderr
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    child = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:  # read as it comes, or the child blocks on a full terminal buffer
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # the child closed its end
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    stdout, _ = child.communicate(timeout=600)
    reader.join(timeout=10)
    os.close(master)
    return child.returncode, stdout, b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
def test_progress_bar_on_a_terminal_plain_lines_in_a_log(jfk_path: Path, tmp_path: Path) -> None:
    """A single short file shows progress (the run takes more than 2 s): a bar updated in
    place on a terminal, and plain lines, without carriage returns, when stderr is a file
    (feedback from the start here, and plain lines every 0.25 s, so that each stage is seen
    however fast the machine: JFK takes about 2 s)."""
    args = ["analyze", str(jfk_path), "-o", str(tmp_path), "--format", "json", "--no-features"]
    code, out, err = _run(args, tmp_path, tty=False, log_every=0.25)
    assert code == EXIT_OK and "jfk.flac" in out
    assert "\r" not in err and "\x1b" not in err
    lines = err.splitlines()
    assert len(lines) >= 2 and all(line.startswith("emotivoice: jfk.flac: ") for line in lines)
    assert "segment found" in err and lines[-1].startswith("emotivoice: jfk.flac: done [")
    code, out, err = _run(args, tmp_path, tty=True, log_every=0.25)
    assert code == EXIT_OK and "jfk.flac" in out
    assert "\r" in err and re.search(r"jfk\.flac: +\d+%\|", err), err
    assert "emotivoice: jfk.flac:" not in err  # no log lines on a terminal


@pytest.mark.slow
def test_mixed_language_file_shares_and_subtitle_cues(data_dir: Path, tmp_path: Path) -> None:
    """The table gives each language's share of a mixed file; SRT cues keep to 42 characters a
    line, two lines and 7 s a cue, the speaker tag on each."""
    from emotivoice.results import load_analysis

    path = data_dir / "speech" / "multilingual.mp3"
    code, out, err = _run(
        ["analyze", str(path), "-o", str(tmp_path), "--format", "json,srt", "--no-features"],
        tmp_path,
        tty=False,
    )
    assert code == EXIT_OK, err
    shares = re.search(r"en (\d+) %, de (\d+) %", out)
    assert shares is not None, out
    assert 40 <= int(shares[1]) <= 60 and int(shares[1]) + int(shares[2]) in (99, 100, 101)
    analysis = load_analysis(tmp_path / "multilingual.json")
    assert max(s.end - s.start for s in analysis.segments) > 7  # segments longer than a cue
    blocks = (tmp_path / "multilingual.srt").read_text().strip().split("\n\n")
    assert len(blocks) > len(analysis.segments)
    for block in blocks:
        _, times, *lines = block.split("\n")
        start, end = (_seconds(t) for t in times.split(" --> "))
        assert 0 < end - start <= 7.0 and 1 <= len(lines) <= 2
        assert re.match(r"\[SPEAKER_\d\] ", lines[0])
        assert all(len(re.sub(r"^\[SPEAKER_\d\] ", "", line)) <= 42 for line in lines)


def _seconds(timestamp: str) -> float:
    hours, minutes, seconds = timestamp.replace(",", ".").split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def test_batch_size_analyses_many_files_and_skips_a_bad_one(
    jfk_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.flac").write_bytes(jfk_path.read_bytes())
    (folder / "b.mp3").write_text("not audio at all\n" * 40)
    (folder / "c.flac").write_bytes(jfk_path.read_bytes())
    out = tmp_path / "out"
    args = ["analyze", str(folder), "-o", str(out), "--fast", "--no-diarization", "--format"]
    code = main([*args, "json,srt", "--batch-size", "4", "--no-features"])
    assert code == EXIT_FAILED
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "a.srt", "c.json", "c.srt"]
    for name in ("a.json", "c.json"):
        assert "fellow Americans" in json.loads((out / name).read_text())["text"]
    printed = capsys.readouterr()
    assert "b.mp3: " in printed.err and "[INVALID_AUDIO]" in printed.err
    assert "1 of 3 files failed" in printed.err and "Traceback" not in printed.err
    assert "a.flac" in printed.out and "FAILED" in printed.out
    with pytest.raises(SystemExit) as exc:
        main(["analyze", str(jfk_path), "-o", str(out), "--batch-size", "0"])
    assert exc.value.code == EXIT_USAGE
    assert "--batch-size must be at least 1" in capsys.readouterr().err
    assert main(["analyze", str(jfk_path), "-o", str(out), "--device", "cuda"]) == EXIT_USAGE
    assert "no CUDA GPU" in capsys.readouterr().err
