"""``/api/v1/stream`` over real WebSockets: the real app served by uvicorn on loopback."""

from __future__ import annotations

import asyncio
import io
import json
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emotivoice.audio import load_audio
from emotivoice.cli import main as cli_main
from emotivoice.client.stream import StreamClient, pcm_frames
from emotivoice.service.app import create_app
from emotivoice.service.local_server import serve
from emotivoice.service.settings import load_settings
from emotivoice.service.storage import Store

pytest.importorskip("websockets")

SHORT_CLIP = "librivox/sense_and_sensibility_01_austen_64kb-0880.flac"  # "he was not an ill ..."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app with small stream limits; yields the ``ws://.../api/v1/stream`` URL."""
    home = tmp_path_factory.mktemp("stream-home")
    settings = load_settings(
        home=home, stream_max_backlog_s=1.0, stream_max_frame_bytes=64 * 1024, max_stream_seconds=60
    )
    with serve(create_app(settings, janitor=False)) as base:
        yield base.replace("http://", "ws://") + "/api/v1/stream"


async def raw_session(url: str, *messages: str | bytes, abort: bool = False) -> tuple[list, int]:
    """Send ``messages`` as they are; returns the events and the close code."""
    return await asyncio.wait_for(_raw_session(url, messages, abort), timeout=120)


async def _raw_session(
    url: str, messages: tuple[str | bytes, ...], abort: bool
) -> tuple[list, int]:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    events: list[dict[str, Any]] = []
    async with connect(url) as ws:
        for message in messages:
            try:
                await ws.send(message)
            except ConnectionClosed:
                break
        if abort:
            ws.transport.abort()  # the client vanishes without a closing handshake
            return events, -1
        try:
            async for reply in ws:
                events.append(json.loads(reply))
        except ConnectionClosed:
            pass
        return events, ws.close_code or 0


def start(**fields: Any) -> str:
    return json.dumps({"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000, **fields})


@pytest.mark.slow
def test_real_speech_gives_final_text_saves_the_recording_and_throttles(
    server: str, jfk_path: Path
) -> None:
    session = asyncio.run(StreamClient(server).stream_file(jfk_path))  # faster than real time
    assert session.close_code == 1000 and not session.errors
    text = session.text.lower()
    for phrase in ("my fellow americans", "ask not", "your country"):
        assert phrase in text
    segment = session.segments[0]
    assert segment["words"] and segment["emotion"]["dominant"] and segment["features"]
    assert segment["speech_end"] <= segment["end"]
    assert any(e["type"] == "vad" and e["state"] == "end" for e in session.events)
    assert any(e.get("throttled") for e in session.of_type("stats"))  # backlog limit is 1 s
    assert session.events[-1]["type"] == "stats"
    api = server.replace("ws://", "http://").replace("/stream", "")
    upload = httpx.get(f"{api}/uploads/{session.upload_id}").json()
    assert upload["id"] == session.upload_id
    (saved,) = session.of_type("saved")  # the recording named as the upload list names it
    assert saved["filename"] == upload["filename"] and saved["filename"].startswith("stream-")
    wav = httpx.get(f"{api}/uploads/{session.upload_id}/audio").content
    with wave.open(io.BytesIO(wav)) as recording:
        assert recording.getframerate() == 16000
        assert abs(recording.getnframes() / 16000 - load_audio(jfk_path).duration) < 0.01


@pytest.mark.slow
def test_two_concurrent_clients_never_mix_audio(
    server: str, jfk_path: Path, data_dir: Path
) -> None:
    async def both() -> list[Any]:
        client = StreamClient(server)
        return list(
            await asyncio.gather(
                client.stream_file(jfk_path, frame_ms=200, partials=False),
                client.stream_file(data_dir / SHORT_CLIP, frame_ms=50),
            )
        )

    kennedy, austen = asyncio.run(both())
    assert kennedy.close_code == austen.close_code == 1000
    assert "fellow americans" in kennedy.text.lower() and "disposed" not in kennedy.text.lower()
    assert "disposed young man" in austen.text.lower()
    assert "country" not in austen.text.lower()
    assert kennedy.upload_id != austen.upload_id


@pytest.mark.slow
def test_malformed_sessions_get_error_and_close_code_and_server_stays_healthy(
    server: str, data_dir: Path
) -> None:
    frames = pcm_frames(load_audio(data_dir / SHORT_CLIP).samples, 100)
    cases = [
        (("{not json",), "PROTOCOL_ERROR", 1007),
        ((start(sample_rate="fast"),), "PROTOCOL_ERROR", 1007),
        ((json.dumps({"type": "hello"}),), "PROTOCOL_ERROR", 1007),
        ((start(encoding="mp3"),), "UNSUPPORTED_FORMAT", 1003),
        ((start(wake_word="/etc/passwd"),), "PROTOCOL_ERROR", 1007),  # names only, no paths
        ((frames[0], start()), "PROTOCOL_ERROR", 1008),
        ((start(), frames[0], b"\0" * (64 * 1024 + 2)), "FRAME_TOO_LARGE", 1009),
        ((start(encoding="ogg-opus"), *[b"not an ogg stream " * 2000] * 2), "INVALID_AUDIO", 1007),
    ]
    for messages, code, close in cases:
        events, close_code = asyncio.run(raw_session(server, *messages))
        errors = [e for e in events if e["type"] == "error"]
        assert errors and errors[0]["code"] == code and errors[0]["message"], (messages[:1], events)
        assert close_code == close, (code, close_code)
    # a client that vanishes mid-stream: the server cleans up and serves the next one
    asyncio.run(raw_session(server, start(), *frames[:10], abort=True))
    session = asyncio.run(StreamClient(server).stream_file(data_dir / SHORT_CLIP))
    assert session.close_code == 1000 and "disposed young man" in session.text.lower()


def test_api_key_is_required_when_the_server_says_so(tmp_path: Path, data_dir: Path) -> None:
    settings = load_settings(home=tmp_path / "home", require_api_key=True)
    key = Store(settings).create_key("tester")
    with serve(create_app(settings, janitor=False)) as base:
        url = base.replace("http://", "ws://") + "/api/v1/stream"
        events, code = asyncio.run(raw_session(url, start()))
        assert code == 1008 and events[0]["code"] == "UNAUTHORIZED"
        events, code = asyncio.run(raw_session(f"{url}?api_key=ev_wrong", start()))
        assert code == 1008 and events[0]["code"] == "UNAUTHORIZED"
        events, code = asyncio.run(
            raw_session(f"{url}?api_key={key.secret}", start(), json.dumps({"type": "stop"}))
        )
        assert code == 1000 and [e["type"] for e in events] == ["stats"]  # no audio: no upload


@pytest.mark.slow
def test_session_length_limit_ends_with_error_and_keeps_what_was_heard(
    tmp_path: Path, jfk_path: Path
) -> None:
    settings = load_settings(home=tmp_path / "home", max_stream_seconds=3.0)
    with serve(create_app(settings, janitor=False)) as base:
        url = base.replace("http://", "ws://") + "/api/v1/stream"
        session = asyncio.run(StreamClient(url).stream_file(jfk_path, partials=False))
    assert session.close_code == 1008
    assert [e["code"] for e in session.errors] == ["STREAM_TOO_LONG"]
    assert "fellow americans" in session.text.lower()
    assert session.upload_id is not None


@pytest.mark.slow
def test_cli_stream_prints_partials_and_segments(
    server: str, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main(["stream", "--file", str(data_dir / SHORT_CLIP), "--url", server])
    out = capsys.readouterr().out
    assert code == 0
    assert "disposed young man" in out.lower() and "saved" in out.lower()


def test_cli_mic_without_a_device_is_a_clear_error(
    server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "sounddevice", None)
    code = cli_main(["stream", "--mic", "--url", server])
    assert code != 0 and "sounddevice" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_stream_measures_latency_and_agreement(data_dir: Path) -> None:
    from emotivoice.evaluation.stream import format_stream_report, run_stream_benchmark

    (report,) = run_stream_benchmark(data_dir, max_files=1, modes=("fit+speculative",))
    assert report.files == 1 and report.segments >= 1 and report.mode == "fit+speculative"
    assert 0.0 < report.speculative_share <= 1.0
    assert all(latency > 0 for latency in report.latencies_s)
    assert report.stream_wer <= 0.2 and 0.0 <= report.emotion_agreement_same_span <= 1.0
    assert "end of speech -> final segment, p50" in format_stream_report([report])


def test_bench_stream_rejects_an_unknown_mode(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["bench", "stream", "--modes", "fit+speculative,turbo"])
    err = capsys.readouterr().err
    assert code != 0 and "turbo" in err and "fit+speculative" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_a_stream_longer_than_the_upload_limit_is_saved_compressed(
    tmp_path: Path, jfk_path: Path
) -> None:
    # 0.2 MB holds 6.5 s of 16 kHz 16-bit WAV; the 11 s stream is saved as Ogg/Opus instead
    settings = load_settings(home=tmp_path / "home", max_upload_mb=0.2)
    with serve(create_app(settings, janitor=False)) as base:
        url = base.replace("http://", "ws://") + "/api/v1/stream"
        session = asyncio.run(StreamClient(url).stream_file(jfk_path))
    assert session.close_code == 1000 and not session.errors, session.errors
    assert session.upload_id is not None
    row = Store(settings).get_upload("anonymous", session.upload_id)
    assert row.format == "ogg" and row.codec == "opus" and row.filename.endswith(".opus")
    assert abs(row.duration - 11.0) < 0.2 and row.size_bytes < settings.max_upload_bytes


@pytest.mark.slow
def test_a_stream_started_with_a_wake_word_sends_wake_events(server: str, data_dir: Path) -> None:
    import numpy as np

    from emotivoice.wakeword.tts import Voice, synthesize

    said = synthesize("hey jarvis", Voice("espeak-ng", "en-029+Andy", "Andy"))
    pause = np.zeros(16000, np.float32)
    speech = load_audio(data_dir / SHORT_CLIP).samples
    frames = pcm_frames(np.concatenate([pause, said, pause, speech, pause]), 100)
    session = asyncio.run(
        StreamClient(server).stream_frames(frames, wake_word="hey_jarvis", partials=False)
    )
    (wake,) = session.of_type("wake")
    assert wake["phrase"] == "hey jarvis" and 1.0 < wake["time"] < 3.0 and wake["score"] > 0.9
    assert "young man" in session.text.lower()  # the analysis goes on as usual
