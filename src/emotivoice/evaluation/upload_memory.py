"""Memory and time of the API process under hostile uploads, over a real ``emotivoice serve``.

Two measurements (issue 26, items 1 and 2):

* **parallel worst-case uploads**: N clients at once upload the recording that costs the most
  memory per byte to decode (8-bit mono WAV at 1 kHz, just under the 4-hour limit: 14 MB that
  decode to 900 MB of 16 kHz float samples); the API process' peak resident memory (``VmHWM``)
  and the time until every upload was answered;
* **the worker's full decode**: ``load_audio`` of that recording in a fresh process, its peak
  resident memory (what a worker holds to analyse it);
* **a large body with a wrong key**: a 30 MB JSON body (15 million small numbers) posted with an
  API key the server does not know; the time until the ``401`` and the growth of the API
  process' peak memory.

The server runs without workers (nothing is analysed); its code is this checkout's, or the
sources folder given (to measure an older version the same way).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from emotivoice.evaluation.processes import service_env, start_server, stop

__all__ = [
    "BodyReport",
    "DecodeReport",
    "UploadReport",
    "format_memory_report",
    "measure_decode",
    "measure_large_body",
    "measure_uploads",
    "worst_case_wav",
]


@dataclass(frozen=True)
class UploadReport:
    parallel: int
    file_mb: float
    audio_hours: float
    rss_before_mb: float
    peak_rss_mb: float
    seconds: float
    statuses: tuple[int, ...]


@dataclass(frozen=True)
class DecodeReport:
    audio_hours: float
    peak_rss_mb: float
    seconds: float


@dataclass(frozen=True)
class BodyReport:
    body_mb: float
    status: int
    seconds_to_answer: float
    rss_before_mb: float
    peak_rss_mb: float


def worst_case_wav(path: Path, hours: float = 3.9) -> Path:
    """8-bit mono WAV at 1 kHz of ``hours`` (noise, so no codec can shrink it)."""
    rng = np.random.default_rng(0)
    frames = int(hours * 3600 * 1000)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(1000)
        step = 10_000_000
        for start in range(0, frames, step):
            n = min(step, frames - start)
            out.writeframes(rng.integers(100, 156, n, dtype=np.uint8).tobytes())
    return path


def _memory_mb(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory of process ``pid`` (MB)."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def _env(home: Path, sources: Path | None, **settings: object) -> dict[str, str]:
    env = service_env(home, **settings)
    if sources is not None:
        env["PYTHONPATH"] = str(sources)
    return env


def measure_uploads(
    home: Path, wav: Path, parallel: int, sources: Path | None = None
) -> UploadReport:
    """``parallel`` simultaneous uploads of ``wav``; the API process' peak memory."""
    home.mkdir(parents=True, exist_ok=True)
    process, url = start_server(_env(home, sources), home / "serve.log", workers=0)
    try:
        rss_before, _ = _memory_mb(process.pid)

        def upload(_: int) -> int:
            with httpx.Client(base_url=f"{url}/api/v1", timeout=600) as client, wav.open("rb") as f:
                return client.post("/uploads", files={"file": (wav.name, f)}).status_code

        started = time.perf_counter()
        with ThreadPoolExecutor(parallel) as pool:
            statuses = tuple(pool.map(upload, range(parallel)))
        seconds = time.perf_counter() - started
        _, peak = _memory_mb(process.pid)
    finally:
        stop(process)
    with wave.open(str(wav)) as w:
        hours = w.getnframes() / w.getframerate() / 3600
    return UploadReport(
        parallel=parallel,
        file_mb=wav.stat().st_size / 1e6,
        audio_hours=hours,
        rss_before_mb=rss_before,
        peak_rss_mb=peak,
        seconds=seconds,
        statuses=statuses,
    )


_DECODE_SCRIPT = """
import sys, time
from emotivoice.audio import load_audio
started = time.perf_counter()
audio = load_audio(sys.argv[1], max_duration=4 * 3600)
seconds = time.perf_counter() - started
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(audio.duration, int(peak) / 1024, seconds)
"""


def measure_decode(wav: Path, sources: Path | None = None) -> DecodeReport:
    """``load_audio(wav)`` in a fresh process (a worker's decode): its peak memory."""
    import subprocess
    import sys

    env = _env(wav.parent, sources)
    done = subprocess.run(
        [sys.executable, "-c", _DECODE_SCRIPT, str(wav)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    duration, peak, seconds = (float(v) for v in done.stdout.split())
    return DecodeReport(audio_hours=duration / 3600, peak_rss_mb=peak, seconds=seconds)


def measure_large_body(
    home: Path, body_mb: float = 30.0, sources: Path | None = None
) -> BodyReport:
    """POST ``body_mb`` of JSON to ``/analyses`` with a wrong key (keys required)."""
    home.mkdir(parents=True, exist_ok=True)
    env = _env(home, sources, require_api_key="true")
    process, url = start_server(env, home / "serve.log", workers=0)
    try:
        rss_before, _ = _memory_mb(process.pid)
        port = int(url.rsplit(":", 1)[1])
        # many small values: what costs a JSON parser the most memory per byte
        values = int(body_mb * 1e6) // 2
        body = b'{"upload_id": "x", "options": {}, "pad": [' + b"0," * values + b"0]}"
        head = (
            f"POST /api/v1/analyses HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nX-API-Key: ev_wrong\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=300) as sock:
            started = time.perf_counter()

            def send() -> None:
                # the server may answer and close before it has taken the whole body
                with contextlib.suppress(OSError):
                    sock.sendall(head + body)

            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            reply = sock.recv(64)
            seconds = time.perf_counter() - started
        sender.join(timeout=60)
        status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else 0
        time.sleep(0.5)
        _, peak = _memory_mb(process.pid)
    finally:
        stop(process)
    return BodyReport(
        body_mb=len(body) / 1e6,
        status=status,
        seconds_to_answer=seconds,
        rss_before_mb=rss_before,
        peak_rss_mb=peak,
    )


def format_memory_report(
    uploads: UploadReport | None, body: BodyReport | None, decode: DecodeReport | None = None
) -> str:
    lines = []
    if uploads is not None:
        lines += [
            f"{uploads.parallel} parallel uploads of a {uploads.file_mb:.1f} MB, "
            f"{uploads.audio_hours:.2f} h 8-bit 1 kHz WAV:",
            f"  API process RSS before {uploads.rss_before_mb:.0f} MB, "
            f"peak {uploads.peak_rss_mb:.0f} MB "
            f"(+{uploads.peak_rss_mb - uploads.rss_before_mb:.0f} MB); all answered in "
            f"{uploads.seconds:.1f} s; statuses {sorted(set(uploads.statuses))}",
        ]
    if decode is not None:
        lines.append(
            f"worker decode (load_audio) of the {decode.audio_hours:.2f} h WAV: peak RSS "
            f"{decode.peak_rss_mb:.0f} MB, {decode.seconds:.1f} s"
        )
    if body is not None:
        lines.append(
            f"{body.body_mb:.0f} MB JSON body with a wrong key: HTTP {body.status} after "
            f"{body.seconds_to_answer:.2f} s; API process RSS before {body.rss_before_mb:.0f} MB, "
            f"peak {body.peak_rss_mb:.0f} MB (+{body.peak_rss_mb - body.rss_before_mb:.0f} MB)"
        )
    return "\n".join(lines)
